"""Fidelity to FP32: intervals of the per-token metrics, the fidelity tables and the KL check of a comparison.

Reads the per-token lists that :mod:`lpbench.evaluate` stores (``kl``, ``top1_agree``, ``dp``; for encoders
``token_cosine``, ``token_signal_power``, ``token_noise_power``). This module only reads those lists (numpy;
no torch).

Intervals
    The circular moving-block bootstrap of :mod:`lpbench.bootstrap` — its blocks (``BLOCK`` tokens), number
    of resamples, seed and level, through :func:`lpbench.bootstrap.resampled_means` — so an interval here
    and a perplexity interval of the ledger resample the very same token positions. KL ratio A / B:
    :func:`kl_ratio_ci`; A / best of several: :func:`kl_ratio_to_best_ci`; perplexity ratio to FP32:
    :func:`lpbench.bootstrap.ratio_ci`.

    Replicated methods (several seeds of one configuration) are not pooled here: each replicate is its own
    row, and a comparison reads one configured method per side.

The ledger calls :func:`kl_check` for a comparative claim: the same comparison as the claim's perplexity
test, on mean KL, labelled *supporting* — the verdict stays decided on the paper's metric.

What is measured, why these metrics and every interval step by step: docs/metrics.md.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lpbench import bootstrap
from lpbench.bootstrap import as_series, resampled_means

FIDELITY_COLUMNS = ["model", "corpus", "method", "kind", "perplexity", "ppl_ratio", "ppl_ratio_ci_low",
                    "ppl_ratio_ci_high", "mean_kl", "kl_ci_low", "kl_ci_high", "top1_agreement", "top1_ci_low",
                    "top1_ci_high", "dp_p1", "dp_p50", "dp_p99", "tokens", "top_k", "vocab",
                    "reference_tail_mass", "error", "caveat"]
ENCODER_COLUMNS = ["model", "corpus", "method", "kind", "mean_token_cosine", "cosine_ci_low", "cosine_ci_high",
                   "sqnr_db", "sqnr_ci_low", "sqnr_ci_high", "tokens", "error"]


def _percentiles(samples: np.ndarray, level: float = bootstrap.LEVEL) -> tuple[float, float]:
    a = (1 - level) / 2
    lo, hi = np.quantile(samples, [a, 1 - a], method="linear")
    return float(lo), float(hi)


def mean_ci(x: np.ndarray, **kw) -> dict:
    """Mean of a per-token series with the 95 % block-bootstrap percentile interval. ``kw``: block,
    resamples, seed of :func:`lpbench.bootstrap.resampled_means`."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = _percentiles(resampled_means(x, **kw))
    return {"mean": float(x.mean()), "ci_low": lo, "ci_high": hi, "tokens": int(x.size)}


def _paired(a, others) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    o = np.stack([np.asarray(x, dtype=np.float64) for x in others])
    if o.shape[1:] != a.shape:
        raise ValueError(f"unpaired per-token series: {a.shape} vs {o.shape[1:]} tokens")
    return np.concatenate([a[None], o])


def kl_ratio_ci(kl_a: np.ndarray, kl_b: np.ndarray, **kw) -> dict:
    """mean KL(A) / mean KL(B) on paired tokens, with the paired block-bootstrap percentile CI."""
    return kl_ratio_to_best_ci(kl_a, [kl_b], **kw)


def kl_ratio_to_best_ci(kl_a: np.ndarray, others: Sequence[np.ndarray], **kw) -> dict:
    """mean KL(A) / min_j mean KL(B_j), every method resampled on the same positions, the best competitor
    re-chosen in every resample. ``best`` is the index of the best competitor on all tokens. A competitor
    with zero KL (the FP32 reference itself) makes the ratio undefined: ValueError."""
    x = _paired(kl_a, others)
    means = x.mean(-1)
    if (means[1:] <= 0).any():
        raise ValueError("KL ratio against a method with zero mean KL (the FP32 reference itself) is undefined")
    m = resampled_means(x, **kw)                                  # (1 + k, resamples)
    lo, hi = _percentiles(m[0] / m[1:].min(0))
    best = int(means[1:].argmin())
    return {"ratio": float(means[0] / means[1 + best]), "ci_low": lo, "ci_high": hi, "tokens": int(x.shape[1]),
            "best": best}


def sqnr_ci(signal: np.ndarray, noise: np.ndarray, **kw) -> dict:
    """SQNR = 10·log10(Σ signal / Σ noise) in dB with its paired block-bootstrap CI (inf if noise is 0)."""
    x = _paired(signal, [noise])
    if x[1].sum() == 0:                                           # the reference itself: no noise anywhere
        return {"sqnr_db": math.inf, "ci_low": math.inf, "ci_high": math.inf}
    with np.errstate(divide="ignore", invalid="ignore"):
        point = 10 * np.log10(x[0].sum() / x[1].sum())
        m = resampled_means(x, **kw)
        lo, hi = _percentiles(10 * np.log10(m[0] / m[1]))
    return {"sqnr_db": float(point), "ci_low": lo, "ci_high": hi}


# ---- tables ----------------------------------------------------------------------------------------------
def _find(results: list[dict], model: str, corpus: str, method: str) -> dict | None:
    for r in results:
        if (r["model"]["id"], r["corpus"]["id"], r["method"]["name"]) == (model, corpus, method):
            return r
    return None


def _causal_row(r: dict, results: list[dict]) -> dict:
    m = r["metrics"]
    fid = m.get("fidelity") or {}
    row = {"model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
           "kind": r["method"]["kind"], "perplexity": m.get("perplexity"), "top_k": fid.get("top_k"),
           "vocab": fid.get("vocab"), "reference_tail_mass": fid.get("reference_tail_mass"),
           "error": m.get("error") or fid.get("error") or "", "caveat": r["model"].get("caveat", "")}
    ref = _find(results, row["model"], row["corpus"], fid["reference"]) if fid.get("reference") else None
    nll, kl = as_series(m.get("token_nll")), as_series(m.get("kl"))
    ref_nll = as_series(ref["metrics"].get("token_nll")) if ref is not None else None
    if nll is not None and ref_nll is not None and nll.shape == ref_nll.shape:
        ci = bootstrap.ratio_ci(nll, ref_nll)
        row.update(ppl_ratio=ci["ratio"], ppl_ratio_ci_low=ci["ci_low"], ppl_ratio_ci_high=ci["ci_high"])
    if kl is not None:
        ci = mean_ci(kl)
        row.update(mean_kl=ci["mean"], kl_ci_low=ci["ci_low"], kl_ci_high=ci["ci_high"], tokens=ci["tokens"])
        ci = mean_ci(as_series(m["top1_agree"]))
        row.update(top1_agreement=ci["mean"], top1_ci_low=ci["ci_low"], top1_ci_high=ci["ci_high"])
        p1, p50, p99 = np.percentile(as_series(m["dp"]), [1, 50, 99])
        row.update(dp_p1=float(p1), dp_p50=float(p50), dp_p99=float(p99))
    elif fid and not row["error"]:
        row["error"] = "no per-token fidelity metrics"
    return row


def fidelity_table(results: list[dict]) -> pd.DataFrame:
    """One row per causal evaluation that carries fidelity metrics (its FP32 reference included, KL 0):
    perplexity ratio to FP32, mean KL, top-1 agreement (each with its 95 % CI) and Δp percentiles. A run
    with non-finite windows keeps its row with empty metrics and the error (reported, never averaged)."""
    rows = [_causal_row(r, results) for r in results
            if r["metrics"].get("kind") == "perplexity" and "fidelity" in r["metrics"]]
    return pd.DataFrame(rows, columns=FIDELITY_COLUMNS)


def encoder_table(results: list[dict]) -> pd.DataFrame:
    """One row per encoder evaluation: mean per-token cosine and SQNR of the last hidden state vs FP32."""
    rows = []
    for r in results:
        m = r["metrics"]
        if m.get("kind") != "encoder_error" or "token_cosine" not in m:
            continue
        row = {"model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
               "kind": r["method"]["kind"], "error": m.get("error") or ""}
        cos, sig, noise = (as_series(m.get(k)) for k in ("token_cosine", "token_signal_power",
                                                          "token_noise_power"))
        if cos is not None:
            ci = mean_ci(cos)
            row.update(mean_token_cosine=ci["mean"], cosine_ci_low=ci["ci_low"], cosine_ci_high=ci["ci_high"],
                       tokens=ci["tokens"])
            ci = sqnr_ci(sig, noise)
            row.update(sqnr_db=ci["sqnr_db"], sqnr_ci_low=ci["ci_low"], sqnr_ci_high=ci["ci_high"])
        rows.append(row)
    return pd.DataFrame(rows, columns=ENCODER_COLUMNS)


def _with_ci(v, lo, hi, fmt: str) -> str:
    if v is None or pd.isna(v):
        return ""
    if lo is None or pd.isna(lo):
        return format(v, fmt)
    return f"{format(v, fmt)} [{format(lo, fmt)}, {format(hi, fmt)}]"


def markdown(df: pd.DataFrame, title: str, encoder: bool = False) -> str:
    """The table as Markdown, each value with its interval in one cell ("value [low, high]")."""
    if encoder:
        cols = {"mean token cosine [CI]": ("mean_token_cosine", "cosine_ci_low", "cosine_ci_high", ".6f"),
                "SQNR dB [CI]": ("sqnr_db", "sqnr_ci_low", "sqnr_ci_high", ".2f")}
        keep = ["tokens", "error"]
    else:
        cols = {"ppl ratio to FP32 [CI]": ("ppl_ratio", "ppl_ratio_ci_low", "ppl_ratio_ci_high", ".4f"),
                "mean KL [CI]": ("mean_kl", "kl_ci_low", "kl_ci_high", ".3g"),
                "top-1 agreement [CI]": ("top1_agreement", "top1_ci_low", "top1_ci_high", ".4f")}
        keep = ["dp_p1", "dp_p50", "dp_p99", "tokens", "error"]
    out = df[["model", "method"]].copy()
    for label, (v, lo, hi, fmt) in cols.items():
        out[label] = [_with_ci(*t, fmt) for t in zip(df[v], df[lo], df[hi])]
    out = pd.concat([out, df[keep]], axis=1)
    text = f"# {title}\n\n" + (out.to_markdown(index=False, floatfmt=".3g") if len(out) else "_no results_") + "\n"
    notes = sorted({c for c in df.get("caveat", pd.Series(dtype=str)) if isinstance(c, str) and c})
    return text + ("\nCaveats:\n" + "".join(f"- {n}\n" for n in notes) if notes else "")


def write(df: pd.DataFrame, csv, md, title: str, encoder: bool = False) -> None:
    Path(csv).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(csv, index=False)
    Path(md).write_text(markdown(df, title, encoder))


# ---- the ledger's supporting check -------------------------------------------------------------------
def kl_check(results: Iterable[dict], method: str, others: Sequence[str], models: Sequence[str] | None = None,
             claimed: str = "<=", threshold: float = 1.0, upper: float | None = None) -> dict:
    """The comparison "``method`` vs the best of ``others``" on mean KL to FP32, per model (and corpus).

    ``results``: loaded evaluation JSONs (e.g. :func:`lpbench.tables.load_results` of the claims rule's
    inputs). For every model in ``models`` (default: every model with an evaluation of ``method``) and
    every corpus it was evaluated on: R = mean KL(method) / min_j mean KL(others_j) on the same tokens,
    with the paired block-bootstrap 95 % CI (:func:`kl_ratio_to_best_ci`), and its verdict
    :func:`lpbench.bootstrap.decide` (lo, hi, ``claimed``, ``threshold``, ``upper``) — R < 1 means
    ``method`` is closer to FP32. The verdicts of all models are combined with
    :func:`lpbench.bootstrap.combine`. Thresholds of a perplexity claim do not carry over to KL (a 1 %
    perplexity margin is not a 1 % KL margin): pass threshold 1 unless the claim states a KL number.

    Returns ``{"verdict": reproduced | not reproduced | inconclusive | not run, "text": one line for the
    ledger's kl_check column, "comparisons": [{model, corpus, method, best, kl, kl_best, ratio, ci_low,
    ci_high, tokens, verdict, reason}]}``. A model whose evaluations are missing, non-finite or without
    fidelity metrics gives a comparison with verdict "not run" and its reason; it is left out of the
    combined verdict, which is "not run" only if no model could be compared."""
    results = list(results)
    if models is None:
        models = list(dict.fromkeys(r["model"]["id"] for r in results if r["method"]["name"] == method))
    comps = []
    for model in models:
        corpora = list(dict.fromkeys(r["corpus"]["id"] for r in results
                                     if r["model"]["id"] == model and r["method"]["name"] == method)) or [None]
        for corpus in corpora:
            comps.append(_kl_comparison(results, model, corpus, method, list(others), claimed, threshold, upper))
    ran = [c["verdict"] for c in comps if c["verdict"] != "not run"]
    verdict = bootstrap.combine(ran) if ran else "not run"
    parts = [f"{c['model']}: {c['ratio']:.3g} [{c['ci_low']:.3g}, {c['ci_high']:.3g}] vs {c['best']}"
             if c["verdict"] != "not run" else f"{c['model']}: not run ({c['reason']})" for c in comps]
    text = f"supporting, KL to FP32 {method} / best of {', '.join(others)}: " + "; ".join(parts) + f" -> {verdict}"
    return {"verdict": verdict, "text": text, "comparisons": comps}


def _kl_comparison(results, model, corpus, method, others, claimed, threshold, upper) -> dict:
    out = {"model": model, "corpus": corpus, "method": method, "best": None, "kl": None, "kl_best": None,
           "ratio": None, "ci_low": None, "ci_high": None, "tokens": None, "verdict": "not run", "reason": ""}
    series = {}
    for name in [method, *others]:
        r = _find(results, model, corpus, name) if corpus is not None else None
        s = as_series(r["metrics"].get("kl")) if r is not None else None
        if s is None:
            out["reason"] = (f"no evaluation of {name}" if r is None else
                             f"{name} has no finite per-token KL ({r['metrics'].get('error') or 'not stored'})")
            return out
        series[name] = s
    try:
        ci = kl_ratio_to_best_ci(series[method], [series[o] for o in others])
    except ValueError as e:
        out["reason"] = str(e)
        return out
    best = others[ci["best"]]
    out.update(best=best, kl=float(series[method].mean()), kl_best=float(series[best].mean()), ratio=ci["ratio"],
               ci_low=ci["ci_low"], ci_high=ci["ci_high"], tokens=ci["tokens"],
               verdict=bootstrap.decide(ci["ci_low"], ci["ci_high"], claimed, threshold, upper))
    return out

