"""Paired block bootstrap of perplexity ratios (the confidence intervals of the claims ledger).

Every causal evaluation stores one NLL per predicted token, in the same order for every method of a
(model, corpus), so the perplexity ratio of method A over method B is R = exp(mean_t δ(t)) with
δ = nll_A − nll_B, and a *paired* comparison resamples the token positions once for both methods
(:func:`ratio_ci`; against the best of several methods, :func:`ratio_to_best_ci`). Token NLLs of running
text are autocorrelated, so the resampling is the circular moving-block bootstrap (Künsch 1989; Politis &
Romano 1992) over the windows concatenated in text order: ``BLOCK = 32`` tokens, ``RESAMPLES = 2000``,
95 % percentile interval, ``SEED = 0`` — fixed here before any interval was computed, never tuned per
claim. One interval is a vectorised gather over precomputed circular block sums (about a millisecond for
2044 tokens). :func:`decide` / :func:`combine` turn intervals into verdicts.

Replicates over a method's own randomness (two levels)
    A method with random choices (QuaRot/RRS: the signs of the residual rotation, and with them its GPTQ
    weights) is run at several seeds, each an evaluation on the same tokens. :func:`seed_ratio_ci` /
    :func:`seed_ratio_to_best_ci` resample both the seeds and the token blocks, paired across methods; with a
    single seed the interval is *exactly* the token-only one of :func:`ratio_ci` / :func:`ratio_to_best_ci`.
    Each call also returns the token-only interval of every seed on its own (``per_seed``), for a per-seed
    verdict beside the pooled one.

Why blocks of 32, the resampling step by step (both levels), the cost and the known answers:
docs/statistics.md.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np

BLOCK = 32
RESAMPLES = 2000
LEVEL = 0.95
SEED = 0


def as_series(token_nll) -> np.ndarray | None:
    """The per-window lists of one evaluation → one float64 series in text order; None if any window is
    missing (non-finite) or nothing was stored."""
    if not token_nll or any(w is None for w in token_nll):
        return None
    return np.concatenate([np.asarray(w, dtype=np.float32) for w in token_nll]).astype(np.float64)


def block_starts(n: int, block: int = BLOCK, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(resamples, ⌈n/block⌉) block start positions, uniform on 0 … n−1 (fixed seed)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, -(-n // block)))


def circular_block_sums(x: np.ndarray, block: int) -> np.ndarray:
    """Sum of x[s], x[s+1], …, x[s+block−1] (indices mod n) for every start s; last axis is tokens."""
    n = x.shape[-1]
    reps = -(-block // n) + 1
    ext = np.concatenate([x] * reps, axis=-1)
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(ext, axis=-1)], axis=-1)
    return c[..., block: block + n] - c[..., :n]


def resampled_means(x: np.ndarray, block: int = BLOCK, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """Bootstrap means of x (last axis tokens; leading axes resampled with the *same* positions —
    that is the pairing). Shape: x.shape[:-1] + (resamples,)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    starts = block_starts(n, block, resamples, seed)
    sums = circular_block_sums(x, block)                  # (..., n)
    return sums[..., starts].sum(-1) / (starts.shape[1] * block)


def _interval(samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a], method="linear")
    return float(lo), float(hi)


def ratio_ci(nll_a: np.ndarray, nll_b: np.ndarray, block: int = BLOCK, resamples: int = RESAMPLES,
             seed: int = SEED, level: float = LEVEL) -> dict:
    """ppl_A / ppl_B on paired tokens: point estimate and percentile CI of the block bootstrap.

    The resampled statistic is exp(mean δ) with δ = nll_A − nll_B; a constant δ gives a constant
    statistic, so the interval collapses onto the point (to rounding)."""
    a, b = np.asarray(nll_a, dtype=np.float64), np.asarray(nll_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"unpaired NLLs: {a.shape} vs {b.shape} tokens")
    delta = a - b
    point = math.exp(delta.mean())
    lo, hi = _interval(np.exp(resampled_means(delta, block, resamples, seed)), level)
    return {"ratio": point, "ci_low": lo, "ci_high": hi, "tokens": int(a.size)}


def ratio_to_best_ci(nll_a: np.ndarray, others: list[np.ndarray], block: int = BLOCK,
                     resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """ppl_A / min_j ppl_j with every method resampled on the same positions (the best competitor is
    re-chosen in every resample)."""
    a = np.asarray(nll_a, dtype=np.float64)
    o = np.stack([np.asarray(x, dtype=np.float64) for x in others])
    if o.shape[1:] != a.shape:
        raise ValueError("unpaired NLLs")
    point = math.exp(a.mean() - o.mean(-1).min())
    m = resampled_means(np.concatenate([a[None], o]), block, resamples, seed)   # (1 + k, resamples)
    lo, hi = _interval(np.exp(m[0] - m[1:].min(0)), level)
    return {"ratio": point, "ci_low": lo, "ci_high": hi, "tokens": int(a.size)}


def perplexity_ci(nll: np.ndarray, block: int = BLOCK, resamples: int = RESAMPLES, seed: int = SEED,
                  level: float = LEVEL) -> dict:
    """Perplexity of one evaluation with its block-bootstrap percentile CI (figure error bars)."""
    x = np.asarray(nll, dtype=np.float64)
    point = math.exp(x.mean())
    lo, hi = _interval(np.exp(resampled_means(x, block, resamples, seed)), level)
    return {"perplexity": point, "ci_low": lo, "ci_high": hi}


def paired_ratio_ci(a, b, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """Ratio of paired positive measurements — e.g. the latencies of two models timed back to back, one
    pair per repeat: the geometric mean of a_i / b_i with the percentile CI of an i.i.d. bootstrap over the
    pairs (block 1: repeats are separate measurements, not a running text). With few pairs (5 repeats) the
    percentile interval is on the narrow side; it still separates a stable difference from timing noise."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"unpaired measurements: {a.shape} vs {b.shape}")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError("ratios need positive measurements")
    d = np.log(a) - np.log(b)
    lo, hi = _interval(np.exp(resampled_means(d, 1, resamples, seed)), level)
    return {"ratio": math.exp(d.mean()), "ci_low": lo, "ci_high": hi, "pairs": int(a.size)}


# ---- replicated methods: resample seeds, then token blocks within each drawn seed -------------------------------
def _seed_sets(methods: Sequence[Mapping[Hashable, np.ndarray]]) -> list:
    """The seeds the replicated methods share (a method with one series is not replicated: it is read at
    every seed). Replicated methods must have been run at the same seeds."""
    sets = [tuple(sorted(m, key=repr)) for m in methods if len(m) > 1]
    if not sets:
        return [None]
    if any(set(s) != set(sets[0]) for s in sets):
        raise ValueError(f"replicated methods were run at different seeds: {sets}")
    return list(sets[0])


def _at(method: Mapping[Hashable, np.ndarray], s) -> np.ndarray:
    return np.asarray(next(iter(method.values())) if len(method) == 1 else method[s], dtype=np.float64)


def _two_level_means(per_seed: list[np.ndarray], block: int, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap means for series stacked per seed: ``per_seed[j]`` has shape (methods, n) for seed j.
    Each resample draws len(per_seed) seeds with replacement, then positions per slot (slot i from
    ``seed + i``); returns (methods, resamples), the mean over slots of each slot's resampled mean."""
    k, n = len(per_seed), per_seed[0].shape[-1]
    by_token = np.stack([circular_block_sums(x, block).T for x in per_seed])   # (k, n, methods)
    draws = np.random.default_rng([seed, 1]).integers(0, k, size=(resamples, k))
    slots = []
    for i in range(k):
        starts = block_starts(n, block, resamples, seed + i)                 # (resamples, blocks)
        # (resamples, blocks, methods) in memory, read as (methods, resamples, blocks): the layout of
        # resampled_means' gather, so that one seed sums in the same order (bit-identical)
        got = by_token[draws[:, i][:, None], starts].transpose(2, 0, 1)
        slots.append(got.sum(-1) / (starts.shape[1] * block))
    return np.mean(np.stack(slots), axis=0)


def _per_seed(nll_a, others, seeds, block, resamples, seed, level) -> dict:
    out = {}
    for s in seeds:
        o = [_at(m, s) for m in others]
        f = ratio_ci(_at(nll_a, s), o[0], block, resamples, seed, level) if len(o) == 1 else \
            ratio_to_best_ci(_at(nll_a, s), o, block, resamples, seed, level)
        out[s] = {k: f[k] for k in ("ratio", "ci_low", "ci_high")}
    return out


def seed_ratio_to_best_ci(nll_a: Mapping[Hashable, np.ndarray], others: Sequence[Mapping[Hashable, np.ndarray]],
                          block: int = BLOCK, resamples: int = RESAMPLES, seed: int = SEED,
                          level: float = LEVEL) -> dict:
    """ppl_A / min_j ppl_j over seeds and tokens (module docstring, "Replicates"): each method is
    ``{seed: per-token NLL series}`` on the same tokens (one entry: not replicated, read at every seed). With
    one competitor it is :func:`seed_ratio_ci`. Returns ratio, ci_low, ci_high, tokens, seeds and
    ``per_seed`` (each seed's token-only ratio and interval)."""
    if len(others) == 1:
        return seed_ratio_ci(nll_a, others[0], block, resamples, seed, level)
    seeds = _seed_sets([nll_a, *others])
    series = [[_at(m, s) for m in (nll_a, *others)] for s in seeds]
    if any(x.shape != series[0][0].shape or x.ndim != 1 for row in series for x in row):
        raise ValueError("unpaired NLLs: every method and seed must cover the same tokens")
    stacks = [np.stack(row) for row in series]
    means = np.array([x.mean(-1) for x in stacks])                          # (k, methods)
    pooled = np.mean(means, axis=0)
    point = math.exp(pooled[0] - pooled[1:].min())
    m = _two_level_means(stacks, block, resamples, seed)
    lo, hi = _interval(np.exp(m[0] - m[1:].min(0)), level)
    return {"ratio": point, "ci_low": lo, "ci_high": hi, "tokens": int(stacks[0].shape[1]), "seeds": seeds,
            "per_seed": _per_seed(nll_a, others, seeds, block, resamples, seed, level)}


def seed_ratio_ci(nll_a: Mapping[Hashable, np.ndarray], nll_b: Mapping[Hashable, np.ndarray], block: int = BLOCK,
                  resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> dict:
    """ppl_A / ppl_B over seeds and tokens, paired by seed and token (module docstring, "Replicates");
    the resampled statistic is the per-seed difference δ = nll_A − nll_B, as in :func:`ratio_ci`."""
    seeds = _seed_sets([nll_a, nll_b])
    pairs = [(_at(nll_a, s), _at(nll_b, s)) for s in seeds]
    if any(x.shape != pairs[0][0].shape or x.ndim != 1 for p in pairs for x in p):
        raise ValueError("unpaired NLLs: every method and seed must cover the same tokens")
    deltas = [a - b for a, b in pairs]
    point = math.exp(np.mean([d.mean() for d in deltas]))
    m = _two_level_means([d[None] for d in deltas], block, resamples, seed)[0]
    lo, hi = _interval(np.exp(m), level)
    return {"ratio": point, "ci_low": lo, "ci_high": hi, "tokens": int(deltas[0].size), "seeds": seeds,
            "per_seed": _per_seed(nll_a, [nll_b], seeds, block, resamples, seed, level)}


def seed_perplexity_ci(nll: Mapping[Hashable, np.ndarray], block: int = BLOCK, resamples: int = RESAMPLES,
                       seed: int = SEED, level: float = LEVEL) -> dict:
    """Perplexity pooled over a method's seeds (exp of the mean over seeds of the mean NLL) with the
    two-level interval (figure error bars); one seed gives :func:`perplexity_ci`'s point and interval."""
    seeds = _seed_sets([nll])
    xs = [_at(nll, s) for s in seeds]
    if any(x.shape != xs[0].shape or x.ndim != 1 for x in xs):
        raise ValueError("every seed must cover the same tokens")
    point = math.exp(np.mean([x.mean() for x in xs]))
    lo, hi = _interval(np.exp(_two_level_means([x[None] for x in xs], block, resamples, seed)[0]), level)
    return {"perplexity": point, "ci_low": lo, "ci_high": hi, "seeds": seeds}


def decide(lo: float, hi: float, claimed: str, threshold: float, upper: float | None = None) -> str:
    """Verdict of one comparison from its CI. ``claimed``: "<=" (the claim says R ≤ threshold), ">="
    or "within" (threshold ≤ R ≤ upper). Reproduced iff the whole CI lies on the claimed side,
    not reproduced iff it lies wholly on the other side, otherwise inconclusive."""
    if claimed == "<=":
        return "reproduced" if hi <= threshold else "not reproduced" if lo > threshold else "inconclusive"
    if claimed == ">=":
        return "reproduced" if lo >= threshold else "not reproduced" if hi < threshold else "inconclusive"
    if claimed == "within":
        if threshold <= lo and hi <= upper:
            return "reproduced"
        if hi < threshold or lo > upper:
            return "not reproduced"
        return "inconclusive"
    raise ValueError(f"unknown claimed side '{claimed}'")


def combine(verdicts: list[str]) -> str:
    """A claim over several comparisons (every model, every competitor): reproduced iff all are, not
    reproduced iff any is, else inconclusive."""
    if any(v == "not reproduced" for v in verdicts):
        return "not reproduced"
    if verdicts and all(v == "reproduced" for v in verdicts):
        return "reproduced"
    return "inconclusive"
