"""Comparative rules (``lowest``, ``within_rel``, ``ordered``): perplexities of methods on the same tokens,
each comparison with the paired block-bootstrap 95 % CI of its perplexity ratio (docs/claims.md)."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from lpbench import bootstrap
from lpbench.claims.checks import SUMMARY_CHARS, fmt

SEVERITY = {"not reproduced": 0, "inconclusive": 1, "reproduced": 2}

#: kind -> (the methods it reads, its comparisons on one model's row of the model x method matrix)
COMPARATIVE: dict[str, tuple[Callable[[dict], list[str]], Callable[[dict, str, pd.Series], list[dict]]]] = {}


def comparative(kind: str, methods: Callable[[dict], list[str]]):
    def deco(fn):
        COMPARATIVE[kind] = (methods, fn)
        return fn
    return deco


def _comp(model, num, den, label, point, side, t, upper=None, vs=None, r=None) -> dict:
    """One comparison: methods compared, claimed side, point estimate of the ratio (and, for the
    summary, the two perplexities it divides)."""
    return {"model": model, "num": num, "den": den, "label": label, "point": point, "side": side, "t": t,
            "upper": upper, "vs": vs, "a": r[num], "b": r[vs]}


@comparative("lowest", lambda rule: [rule["best"], *rule["among"]])
def _lowest(rule: dict, model: str, r: pd.Series) -> list[dict]:
    """ppl(best) / min ppl(among) <= 1 (the best competitor re-chosen in every resample)."""
    others = list(rule["among"])
    best_other = min(others, key=lambda m: r[m])
    return [_comp(model, rule["best"], others, f"{rule['best']}/min(among)", r[rule["best"]] / r[best_other],
                  "<=", 1.0, vs=best_other, r=r)]


@comparative("within_rel", lambda rule: [rule["method"], rule["reference"]])
def _within_rel(rule: dict, model: str, r: pd.Series) -> list[dict]:
    """1 - max_rel <= ppl(method) / ppl(reference) <= 1 + max_rel."""
    m, ref = rule["method"], rule["reference"]
    return [_comp(model, m, [ref], f"{m}/{ref}", r[m] / r[ref], "within", 1 - rule["max_rel"],
                  1 + rule["max_rel"], vs=ref, r=r)]


@comparative("ordered", lambda rule: list(rule["methods"]))
def _ordered(rule: dict, model: str, r: pd.Series) -> list[dict]:
    """ppl(next) / ppl(previous) <= 1 + slack_rel for every neighbour pair of ``methods``."""
    seq = list(rule["methods"])
    return [_comp(model, b, [a], f"{b}/{a}", r[b] / r[a], "<=", 1 + rule.get("slack_rel", 0.0), vs=a, r=r)
            for a, b in zip(seq, seq[1:])]


def pivot(df: pd.DataFrame, rule: dict, methods: list[str]):
    """model x method matrix of the rule's metric; missing methods -> reason string."""
    metric = rule.get("metric", "perplexity")
    for col, val in (rule.get("where") or {}).items():
        if col not in df.columns:
            return None, f"table has no column '{col}'"
        df = df[df[col] == val]
    if rule.get("corpus"):
        df = df[df["corpus"] == rule["corpus"]]
    if rule.get("models"):
        df = df[df["model"].isin(rule["models"])]
    have = set(df["method"])
    missing = [m for m in methods if m not in have]
    if missing:
        return None, f"no results for method(s) {missing}"
    sub = df[df["method"].isin(methods)].pivot_table(index="model", columns="method", values=metric,
                                                     aggfunc="first", dropna=False)
    sub = sub.reindex(columns=methods).dropna(how="all")
    if sub.empty:
        return None, "no model has results for all of them"
    return sub, ""


def point_ok(c: dict) -> bool:
    if c["side"] == "<=":
        return c["point"] <= c["t"]
    if c["side"] == ">=":
        return c["point"] >= c["t"]
    return c["t"] <= c["point"] <= c["upper"]


def margin(c: dict, lo: str = "ci_low", hi: str = "ci_high") -> float:
    if c["side"] == "<=":
        return c["t"] - c[hi]
    if c["side"] == ">=":
        return c[lo] - c["t"]
    return min(c[lo] - c["t"], c["upper"] - c[hi])


class NLL(dict):
    """(model, method) -> per-token NLL series, and ``seeds[(model, method)]``: the method's ``seed``
    parameter (None when it has none), which pairs seed replicates across methods."""

    def __init__(self):
        super().__init__()
        self.seeds: dict = {}


def _replicated(nll: dict, model: str, name: str, replicates: dict) -> dict | None:
    """``{seed: series}`` of a method and its seed replicates (``replicates[name]``: the configured names that
    differ only in ``seed``); one entry for a method that is not replicated; None if one is missing."""
    out = {}
    for n in replicates.get(name, [name]):
        series = nll.get((model, n))
        if series is None:
            return None
        seed = getattr(nll, "seeds", {}).get((model, n))
        if seed in out:
            raise ValueError(f"replicates of '{name}' on {model}: '{n}' repeats seed {seed}")
        out[seed] = series
    return out


def with_ci(c: dict, nll: dict, rule: dict | None = None) -> dict:
    """Adds ci_low / ci_high / verdict to a comparison if the NLLs of all its methods are stored. With the
    rule's ``replicates`` (method -> its seed replicates) the interval covers seeds and tokens (two-level
    bootstrap, :func:`lpbench.bootstrap.seed_ratio_to_best_ci`), the point is the pooled ratio, and
    ``per_seed`` holds each seed's own token-only verdict."""
    none = {**c, "ci_low": None, "ci_high": None, "verdict": None}
    replicates = (rule or {}).get("replicates") or {}
    if any(m in replicates for m in [c["num"], *c["den"]]):
        a = _replicated(nll, c["model"], c["num"], replicates)
        others = [_replicated(nll, c["model"], m, replicates) for m in c["den"]]
        if a is None or any(o is None for o in others):
            return none
        ci = bootstrap.seed_ratio_to_best_ci(a, others)
        per_seed = "; ".join(
            f"s{s}: {v['ratio']:.3g} [{v['ci_low']:.3g}, {v['ci_high']:.3g}] -> "
            + bootstrap.decide(v["ci_low"], v["ci_high"], c["side"], c["t"], c["upper"])
            for s, v in ci["per_seed"].items())
        return {**c, "point": ci["ratio"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
                "label": c["label"] + f" (pooled over seeds {ci['seeds']})", "per_seed": per_seed,
                "verdict": bootstrap.decide(ci["ci_low"], ci["ci_high"], c["side"], c["t"], c["upper"])}
    a = nll.get((c["model"], c["num"]))
    others = [nll.get((c["model"], m)) for m in c["den"]]
    if a is None or any(o is None for o in others) or any(o.shape != a.shape for o in others):
        return none
    ci = bootstrap.ratio_to_best_ci(a, others) if len(others) > 1 else bootstrap.ratio_ci(a, others[0])
    return {**c, "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "verdict": bootstrap.decide(ci["ci_low"], ci["ci_high"], c["side"], c["t"], c["upper"])}


def threshold_text(c: dict) -> str:
    return f"[{c['t']:.4g}, {c['upper']:.4g}]" if c["side"] == "within" else f"{c['side']} {c['t']:.4g}"


def binding(comps: list[dict]) -> dict:
    """The comparison that decides: the worst verdict, then the smallest margin to the threshold (by
    the point estimates where a CI is missing)."""
    if all(c["verdict"] for c in comps):
        return min(comps, key=lambda c: (SEVERITY[c["verdict"]], margin(c)))
    return min(comps, key=lambda c: (point_ok(c), margin(c, "point", "point")))


def _pct(x: float) -> str:
    return f"{(x - 1) * 100:+.2g}%"


def summary(comps: list[dict], limit: int = SUMMARY_CHARS) -> str:
    """One line: the binding comparison's ratio (for ``within_rel`` its distance from 1 in percent), CI,
    threshold and model (and both perplexities if the line stays within ``limit`` characters)."""
    c = binding(comps)
    if c["side"] == "within":
        ci = f" [{_pct(c['ci_low'])}, {_pct(c['ci_high'])}]" if c.get("verdict") else ""
        value, claim = f"Δppl {_pct(c['point'])}{ci}", f"±{(c['upper'] - 1) * 100:.2g}%"
    else:
        ci = f" [{c['ci_low']:.3g}, {c['ci_high']:.3g}]" if c.get("verdict") else ""
        value, claim = f"ratio {c['point']:.3g}{ci}", f"{c['side']} {c['t']:.3g}"
    tail = f"{value}, claim {claim}, {c['model']}" + (f" (worst of {len(comps)})" if len(comps) > 1 else "")
    full = f"{c['num']} {c['a']:.3g} vs {c['vs']} {c['b']:.3g}: {tail}"
    return full if len(full) <= limit else f"{c['num']}/{c['vs']}: {tail}"


def _ci_reason(comps: list[dict], detail: str, point: str) -> dict:
    if all(c["verdict"] for c in comps):
        bind = binding(comps)
        reason = (f"95% CI of the ratio (paired block bootstrap, L={bootstrap.BLOCK} tokens, "
                  f"{bootstrap.RESAMPLES} resamples, seed {bootstrap.SEED}): " + detail)
        return {"verdict": bootstrap.combine([c["verdict"] for c in comps]), "ci_low": bind["ci_low"],
                "ci_high": bind["ci_high"], "reason": reason}
    lacking = sorted({c["model"] for c in comps if not c["verdict"]})
    reason = (f"point estimates decide (no per-token NLL stored for every compared evaluation of "
              f"{', '.join(lacking)}): " + "; ".join(
                  f"{c['model']}: {'holds' if point_ok(c) else 'fails'} ({c['label']}={c['point']:.4g}"
                  + (f", CI [{c['ci_low']:.4g}, {c['ci_high']:.4g}]" if c["verdict"] else "")
                  + f", claim {threshold_text(c)})" for c in comps))
    return {"verdict": point, "ci_low": None, "ci_high": None, "reason": reason}


def compare(kind: str, rule: dict, df: pd.DataFrame, nll: dict) -> dict:
    """Verdict of a comparative rule on one set of rows."""
    methods, comparisons = COMPARATIVE[kind]
    sub, why = pivot(df, rule, methods(rule))
    if sub is None:
        return {"status": "missing", "why": why}
    ours = "; ".join(f"{m}: " + ", ".join(f"{c}={fmt(sub.loc[m, c])}" for c in sub.columns) for m in sub.index)
    if sub.isna().any().any():
        nan = [f"{m}: {c}" for m in sub.index for c in sub.columns if pd.isna(sub.loc[m, c])]
        return {"status": "nan", "ours": ours, "why": f"a needed result is NaN/inf ({', '.join(nan)}; see the "
                                                      "evaluation JSON)", "summary": f"NaN/inf result: {nan[0]}"}
    comps = [with_ci(c, nll, rule) for model, r in sub.iterrows() for c in comparisons(rule, model, r)]
    point = "reproduced" if all(point_ok(c) for c in comps) else "not reproduced"
    detail = "; ".join(
        f"{c['model']} {c['label']}={c['point']:.4g}"
        + (f" [{c['ci_low']:.4g}, {c['ci_high']:.4g}] -> {c['verdict']}" if c["verdict"] else " (no CI)")
        + f" (claim {threshold_text(c)})" for c in comps)
    per_seed = "; ".join(f"{c['model']} {c['per_seed']}" for c in comps if c.get("per_seed"))
    return {"status": "ok", "ours": ours, "point_verdict": point, "comps": comps, "detail": detail,
            "per_seed": per_seed,
            "summary": summary(comps), **_ci_reason(comps, detail, point)}


def table_check_ci(row: dict, subrules: list[dict], tables: dict, nll: dict) -> list[dict]:
    """A table check whose column is a ratio of perplexities (e.g. Tender vs the best baseline) restated
    as comparative rules (``ci_from``): with every NLL stored, their CIs decide. Returns the comparisons
    that decided (none: the table check's verdict stands)."""
    comps, why = [], ""
    for sr in subrules:
        df = tables.get(sr.get("table", "perplexity"))
        res = compare(sr["kind"], sr, df if df is not None else pd.DataFrame(columns=["model", "method"]), nll)
        if res["status"] != "ok":
            why = res["why"]
            break
        comps += res["comps"]
    if why or not comps or not all(c["verdict"] for c in comps):
        row["reason"] += "; no CI (" + (why or "per-token NLL not stored for every compared evaluation") + ")"
        return []
    bind = binding(comps)
    row["verdict"] = bootstrap.combine([c["verdict"] for c in comps])
    row.update(ci_low=bind["ci_low"], ci_high=bind["ci_high"])
    row["ci_detail"] = "; ".join(f"{c['model']} {c['label']}={c['point']:.4g} [{c['ci_low']:.4g}, "
                                 f"{c['ci_high']:.4g}] -> {c['verdict']} (claim {threshold_text(c)})" for c in comps)
    row["reason"] += (f"; decided by the 95% CIs of the same comparisons as perplexity ratios (paired block "
                      f"bootstrap, L={bootstrap.BLOCK}, {bootstrap.RESAMPLES} resamples): " + row["ci_detail"])
    return comps


def load_nll(results: list[dict]) -> NLL:
    """(model, method) -> per-token NLL series of every causal evaluation that stored one (the first
    corpus met per pair). Evaluations of a model on other windows than its first one (a different
    ``tokens_sha256``) are left out: they cannot be paired token by token."""
    out = NLL()
    tokens: dict[str, str] = {}
    for r in results:
        m = r.get("metrics", {})
        if m.get("kind") != "perplexity":
            continue
        key = (r["model"]["id"], r["method"]["name"])
        series = bootstrap.as_series(m.get("token_nll"))
        if series is None or key in out:
            continue
        h = m.get("tokens_sha256")
        if h and tokens.setdefault(key[0], h) != h:
            continue          # other windows than the model's first evaluation: cannot be paired with it
        out[key] = series
        out.seeds[key] = (r["method"].get("params") or {}).get("seed")
    return out
