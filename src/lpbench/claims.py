"""Claims ledger: every paper claim, the paper's number, ours, and a verdict computed from results.

``config/claims.yaml`` declares each claim (ids from ``shared/papers/*.md``) with a ``rule`` that
decides its verdict from the aggregated result tables. Verdicts are one of

``reproduced`` / ``not reproduced``   the rule ran on measured numbers
``not run``                           the results the rule needs do not exist (with the reason)
``inconclusive``                      results exist but contain NaN/inf where the rule needs a number

A verdict is never written by hand. Rule kinds (``rule.kind``):

``lowest``      ``metric`` of method ``best`` is the lowest among ``among`` (per model, every model in
                ``models`` or every model that has all of them). Ties count as lowest.
``within_rel``  |metric(method) / metric(reference) - 1| <= ``max_rel`` for every model.
``ordered``     metric is non-increasing along ``methods`` (e.g. more groups → lower perplexity),
                allowing an increase of at most ``slack_rel`` between neighbours.
``table_check`` a named table's ``column`` compared with ``value`` by ``op`` on rows matching ``where``
                (every row; ``quantifier: any`` — at least one row; ``label``: columns naming each value).
``all``         every ``table_check`` in ``checks`` holds (a claim with several parts); one part not
                reproduced decides, else a part not run, else an inconclusive part.
                A ``table_check`` with ``ci: [low column, high column]`` is decided by each row's 95 %
                interval (whole interval on the claimed side: holds; on the other side: fails; else
                undecided → inconclusive), the point value beside it (``point_verdict``).
``underdetermined``  the data cannot decide the claim: a model with ``free_parameters`` free parameters
                checked against the known data points (the rows of ``table`` matching ``points_where``,
                or the number ``points``) fits any values when points <= free parameters. Verdict ``inconclusive`` with that reason (the
                table's ``column`` is reported as ours); with more points than parameters, ``check``
                (a table_check) decides.
``not_run``     a claim that cannot run here (e.g. needs a 70B model and a GPU); ``reason`` says why.

Options of the comparative kinds (``lowest``, ``within_rel``, ``ordered``): ``where`` filters the table's
rows before the model x method matrix is built (e.g. ``{scope: in-scope}``); ``extension: {<col>: <val>}``
evaluates the same rule on the rows of a labelled extension and reports it in the reason, not deciding.
``table_check`` claims may carry ``ci_from: [<comparative rules>]`` (beside ``rule``) when its column is a ratio of perplexities:
the same comparisons restated as ``lowest`` / ``within_rel`` / ``ordered`` rules, whose CIs then decide.
``table_check`` may carry ``sensitivity: {table, by, column, op, value, where}``: the same check per value
of ``by`` in another table, reported (not deciding) — how the verdict moves with a declared choice.

Confidence intervals (:mod:`lpbench.bootstrap`)
    Every comparative rule compares perplexities of methods on the same tokens. With the per-token NLLs of
    the evaluations (``nll[(model, method)]``), each comparison gets the paired block-bootstrap 95 % CI
    of its perplexity ratio: ``lowest`` ppl(best) / min ppl(among) <= 1 per model (the best competitor
    re-chosen in every resample); ``within_rel`` 1 − max_rel <= ppl(method) / ppl(reference) <= 1 +
    max_rel; ``ordered`` ppl(next) / ppl(previous) <= 1 + slack_rel per neighbour pair. A comparison is
    reproduced iff its CI lies wholly on the claimed side of the threshold, not reproduced iff wholly on
    the other side, otherwise inconclusive; the claim is reproduced iff every comparison is, not
    reproduced iff any is. ``ci_low`` / ``ci_high`` hold the binding comparison's interval (the worst
    verdict, then the smallest margin to the threshold), ``ci_detail`` every comparison. 95 % per
    comparison, no multiplicity correction. Without stored NLLs the point estimates decide and the reason
    says so. ``point_verdict`` is what the point estimates alone would say.

Basis (every claim): ``basis`` ∈ {official code, paper text, our reconstruction} with ``basis_pointer``,
and ``deviations`` from the paper's setup. A verdict resting on our reconstruction says so in its reason.

Thresholds (``max_rel``, ``slack_rel``) are declared in the ledger with their rationale before any
result is read, and are never adjusted to make a claim pass.
"""
from __future__ import annotations

import math
import operator
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from lpbench import bootstrap

VERDICTS = ("reproduced", "not reproduced", "not run", "inconclusive")
BASES = ("official code", "paper text", "our reconstruction")
COLUMNS = ["id", "paper", "statement", "paper_value", "ours", "verdict", "ci_low", "ci_high", "reason",
           "basis", "basis_pointer", "deviations", "point_verdict", "ci_detail", "note"]
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}


def load_ledger(path: str | Path) -> list[dict]:
    claims = yaml.safe_load(Path(path).read_text())["claims"]
    ids = [c["id"] for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{path}: duplicate claim ids {dup}")
    for c in claims:
        for key in ("id", "paper", "statement", "paper_value", "rule"):
            if key not in c:
                raise ValueError(f"{path}: claim {c.get('id', '?')} lacks '{key}'")
        if "basis" in c and c["basis"] not in BASES:
            raise ValueError(f"{path}: claim {c['id']}: basis must be one of {BASES}, not {c['basis']!r}")
    return claims


def load_nll(results: list[dict]) -> dict[tuple[str, str], np.ndarray]:
    """(model, method) -> per-token NLL series of every causal evaluation that stored one (the first
    corpus met per pair). Evaluations of a model on other windows than its first one (a different
    ``tokens_sha256``) are left out: they cannot be paired token by token."""
    out: dict[tuple[str, str], np.ndarray] = {}
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
    return out


def _metric_table(tables: dict[str, pd.DataFrame], rule: dict) -> pd.DataFrame | None:
    return tables.get(rule.get("table", "perplexity"))


def _pivot(df: pd.DataFrame, rule: dict, methods: list[str]):
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


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _basis_fields(claim: dict) -> dict:
    return {"basis": claim.get("basis", ""), "basis_pointer": claim.get("basis_pointer", ""),
            "deviations": claim.get("deviations", "")}


def _comparisons(kind: str, rule: dict, sub: pd.DataFrame) -> list[dict]:
    """The claim's comparisons: per model (and neighbour pair), the methods compared, the claimed side
    and the point estimate of the perplexity ratio."""
    out = []
    for model, r in sub.iterrows():
        if kind == "lowest":
            others = list(rule["among"])
            best_other = min(others, key=lambda m: r[m])
            out.append({"model": model, "num": rule["best"], "den": others, "label": f"{rule['best']}/min(among)",
                        "point": r[rule["best"]] / r[best_other], "side": "<=", "t": 1.0, "upper": None})
        elif kind == "within_rel":
            out.append({"model": model, "num": rule["method"], "den": [rule["reference"]],
                        "label": f"{rule['method']}/{rule['reference']}",
                        "point": r[rule["method"]] / r[rule["reference"]], "side": "within",
                        "t": 1 - rule["max_rel"], "upper": 1 + rule["max_rel"]})
        else:
            seq = list(rule["methods"])
            for a, b in zip(seq, seq[1:]):
                out.append({"model": model, "num": b, "den": [a], "label": f"{b}/{a}", "point": r[b] / r[a],
                            "side": "<=", "t": 1 + rule.get("slack_rel", 0.0), "upper": None})
    return out


def _point_ok(c: dict) -> bool:
    if c["side"] == "<=":
        return c["point"] <= c["t"]
    if c["side"] == ">=":
        return c["point"] >= c["t"]
    return c["t"] <= c["point"] <= c["upper"]


def _margin(c: dict) -> float:
    if c["side"] == "<=":
        return c["t"] - c["ci_high"]
    if c["side"] == ">=":
        return c["ci_low"] - c["t"]
    return min(c["ci_low"] - c["t"], c["upper"] - c["ci_high"])


def _with_ci(c: dict, nll: dict) -> dict:
    """Adds ci_low / ci_high / verdict to a comparison if the NLLs of all its methods are stored."""
    a = nll.get((c["model"], c["num"]))
    others = [nll.get((c["model"], m)) for m in c["den"]]
    if a is None or any(o is None for o in others) or any(o.shape != a.shape for o in others):
        return {**c, "ci_low": None, "ci_high": None, "verdict": None}
    ci = bootstrap.ratio_to_best_ci(a, others) if len(others) > 1 else bootstrap.ratio_ci(a, others[0])
    return {**c, "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "verdict": bootstrap.decide(ci["ci_low"], ci["ci_high"], c["side"], c["t"], c["upper"])}


_SEVERITY = {"not reproduced": 0, "inconclusive": 1, "reproduced": 2}


def _threshold_text(c: dict) -> str:
    return f"[{c['t']:.4g}, {c['upper']:.4g}]" if c["side"] == "within" else f"{c['side']} {c['t']:.4g}"


def _compare(kind: str, rule: dict, df: pd.DataFrame, nll: dict) -> dict:
    """Verdict of a comparative rule on one set of rows (see the module docstring)."""
    methods = {"lowest": lambda r: [r["best"], *r["among"]],
               "within_rel": lambda r: [r["method"], r["reference"]],
               "ordered": lambda r: list(r["methods"])}[kind](rule)
    sub, why = _pivot(df, rule, methods)
    if sub is None:
        return {"status": "missing", "why": why}
    ours = "; ".join(f"{m}: " + ", ".join(f"{c}={_fmt(sub.loc[m, c])}" for c in sub.columns) for m in sub.index)
    if sub.isna().any().any():
        nan = [f"{m}: {c}" for m in sub.index for c in sub.columns if pd.isna(sub.loc[m, c])]
        return {"status": "nan", "ours": ours, "why": f"a needed result is NaN/inf ({', '.join(nan)}; see the "
                                                      "evaluation JSON)"}
    comps = [_with_ci(c, nll) for c in _comparisons(kind, rule, sub)]
    point = "reproduced" if all(_point_ok(c) for c in comps) else "not reproduced"
    detail = "; ".join(
        f"{c['model']} {c['label']}={c['point']:.4g}"
        + (f" [{c['ci_low']:.4g}, {c['ci_high']:.4g}] -> {c['verdict']}" if c["verdict"] else " (no CI)")
        + f" (claim {_threshold_text(c)})" for c in comps)
    if all(c["verdict"] for c in comps):
        verdict = bootstrap.combine([c["verdict"] for c in comps])
        bind = min(comps, key=lambda c: (_SEVERITY[c["verdict"]], _margin(c)))
        reason = (f"95% CI of the ratio (paired block bootstrap, L={bootstrap.BLOCK} tokens, "
                  f"{bootstrap.RESAMPLES} resamples, seed {bootstrap.SEED}): " + detail)
        return {"status": "ok", "ours": ours, "verdict": verdict, "point_verdict": point, "comps": comps,
                "ci_low": bind["ci_low"], "ci_high": bind["ci_high"], "detail": detail, "reason": reason}
    lacking = sorted({c["model"] for c in comps if not c["verdict"]})
    reason = (f"point estimates decide (no per-token NLL stored for every compared evaluation of "
              f"{', '.join(lacking)}): " + "; ".join(
                  f"{c['model']}: {'holds' if _point_ok(c) else 'fails'} ({c['label']}={c['point']:.4g}"
                  + (f", CI [{c['ci_low']:.4g}, {c['ci_high']:.4g}]" if c["verdict"] else "")
                  + f", claim {_threshold_text(c)})" for c in comps))
    return {"status": "ok", "ours": ours, "verdict": point, "point_verdict": point, "ci_low": None,
            "ci_high": None, "detail": detail, "reason": reason, "comps": comps}


def _table_check(rule: dict, df: pd.DataFrame) -> dict:
    sub = df
    for col, val in (rule.get("where") or {}).items():
        if col not in sub.columns:
            return {"status": "missing", "why": f"table has no column '{col}'"}
        sub = sub[sub[col] == val]
    if sub.empty:
        return {"status": "missing", "why": f"no rows match {rule.get('where')}"}
    vals = sub[rule["column"]].tolist()
    labels = rule.get("label", [])  # optional columns that name each value (e.g. task) in "ours"
    names = [" ".join(str(r[c]) for c in labels) + "=" if labels else "" for _, r in sub.iterrows()]
    ours = ", ".join(n + _fmt(v) for n, v in zip(names, vals))
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
        return {"status": "nan", "ours": ours, "why": "NaN in the measured values"}
    some = rule.get("quantifier", "every") == "any"
    ok = (any if some else all)(_OPS[rule["op"]](v, rule["value"]) for v in vals)
    out = {"status": "ok", "ours": ours, "ok": ok, "n": len(vals), "vals": vals,
           "reason": f"{rule['column']} {rule['op']} {rule['value']} on "
                     f"{'at least one' if some else 'every'} matching row: {ok}"}
    if rule.get("ci"):
        out.update(_table_check_interval(rule, sub, names, some))
    return out


def _table_check_interval(rule: dict, sub: pd.DataFrame, names: list[str], some: bool) -> dict:
    """``ci: [low column, high column]``: the check decided by each row's 95 % interval instead of its
    point value — a row holds if its whole interval is on the claimed side of ``value``, fails if its
    whole interval is on the other side, else it is undecided. Every row (or, with ``quantifier: any``,
    at least one) must hold for "reproduced"; one failing row (any: every row failing) gives "not
    reproduced"; otherwise the claim is "inconclusive" (``ok`` None)."""
    lo_col, hi_col = rule["ci"]
    op, t = _OPS[rule["op"]], rule["value"]
    lower_is_claimed = rule["op"] in ("<", "<=")
    states = []
    for (_, r), name in zip(sub.iterrows(), names):
        lo, hi = float(r[lo_col]), float(r[hi_col])
        sure, other = (hi, lo) if lower_is_claimed else (lo, hi)
        state = "holds" if op(sure, t) else ("fails" if not op(other, t) else "undecided")
        states.append(f"{name}[{_fmt(lo)}, {_fmt(hi)}] {state}")
    holds = [s.endswith("holds") for s in states]
    fails = [s.endswith("fails") for s in states]
    if some:
        ok = True if any(holds) else (False if all(fails) else None)
    else:
        ok = False if any(fails) else (True if all(holds) else None)
    return {"ok": ok, "reason": f"{rule['column']} {rule['op']} {t} decided by each row's 95 % interval "
                                f"({lo_col}, {hi_col}) on {'at least one' if some else 'every'} row: " + "; ".join(states)}


def _sensitivity(rule: dict, tables: dict) -> str:
    """How the table check moves with a declared choice (reported, not deciding)."""
    sens = rule.get("sensitivity")
    if not sens or sens.get("table") not in tables:
        return ""
    df = tables[sens["table"]]
    if sens["by"] not in df.columns:
        return ""
    parts = []
    for val in dict.fromkeys(df[sens["by"]]):
        res = _table_check({**sens, "where": {**(sens.get("where") or {}), sens["by"]: val}}, df)
        if res["status"] == "ok":
            worst = max(res["vals"]) if sens["op"] in ("<", "<=") else min(res["vals"])
            parts.append(f"{sens['by']}={val}: {'holds' if res['ok'] else 'fails'} "
                         f"({'max' if sens['op'] in ('<', '<=') else 'min'} {_fmt(worst)})")
    return (f"; sensitivity (not deciding; {sens['column']} {sens['op']} {sens['value']} per "
            f"{sens['by']}): " + ", ".join(parts)) if parts else ""


def _table_check_ci(row: dict, subrules: list[dict], tables: dict, nll: dict) -> None:
    """A table check whose column is a ratio of perplexities (e.g. Tender vs the best baseline) restated
    as comparative rules (``ci_from``): with every NLL stored, their CIs decide (module docstring)."""
    comps, why = [], ""
    for sr in subrules:
        res = _compare(sr["kind"], sr, _metric_table(tables, sr) if _metric_table(tables, sr) is not None
                       else pd.DataFrame(columns=["model", "method"]), nll)
        if res["status"] != "ok":
            why = res["why"]
            break
        comps += res["comps"]
    if why or not comps or not all(c["verdict"] for c in comps):
        row["reason"] += "; no CI (" + (why or "per-token NLL not stored for every compared evaluation") + ")"
        return
    bind = min(comps, key=lambda c: (_SEVERITY[c["verdict"]], _margin(c)))
    row["verdict"] = bootstrap.combine([c["verdict"] for c in comps])
    row.update(ci_low=bind["ci_low"], ci_high=bind["ci_high"])
    row["ci_detail"] = "; ".join(f"{c['model']} {c['label']}={c['point']:.4g} [{c['ci_low']:.4g}, "
                                 f"{c['ci_high']:.4g}] -> {c['verdict']} (claim {_threshold_text(c)})" for c in comps)
    row["reason"] += (f"; decided by the 95% CIs of the same comparisons as perplexity ratios (paired block "
                      f"bootstrap, L={bootstrap.BLOCK}, {bootstrap.RESAMPLES} resamples): " + row["ci_detail"])


def evaluate_claim(claim: dict, tables: dict[str, pd.DataFrame], nll: dict | None = None) -> dict:
    rule = claim["rule"]
    kind = rule["kind"]
    nll = nll or {}
    row = {"id": claim["id"], "paper": claim["paper"], "statement": claim["statement"],
           "paper_value": claim["paper_value"], "ours": "", "verdict": "not run", "ci_low": None,
           "ci_high": None, "reason": "", **_basis_fields(claim), "point_verdict": "", "ci_detail": "",
           "note": claim.get("note", "")}
    recon = "our reconstruction: " if claim.get("basis") == "our reconstruction" else ""
    if kind == "not_run":
        row["reason"] = rule["reason"]
        return row
    if kind == "all":
        parts = [evaluate_claim({**claim, "rule": {"kind": "table_check", **chk}}, tables, nll) for chk in rule["checks"]]
        row["ours"] = " | ".join(p["ours"] for p in parts)
        row["reason"] = " | ".join(p["reason"] for p in parts)
        verdicts = [p["verdict"] for p in parts]
        # one part that surely fails decides; then a part that could not run; then an undecided part
        row["verdict"] = next((v for v in ("not reproduced", "not run", "inconclusive") if v in verdicts), "reproduced")
        return row
    df = _metric_table(tables, rule)
    if df is None or df.empty:
        row["reason"] = claim.get("not_run_reason", f"table '{rule.get('table', 'perplexity')}' has no results")
        return row
    if kind == "underdetermined":
        res = _table_check({**rule, "op": rule.get("op", "<="), "value": rule.get("value", math.inf)}, df)
        if res["status"] == "missing":
            row["reason"] = claim.get("not_run_reason", res["why"])
            return row
        row["ours"] = res.get("ours", "")
        if "points_where" in rule:
            pts = df
            for col, val in rule["points_where"].items():
                pts = pts[pts[col] == val]
            points = len(pts)
        else:
            points = int(rule["points"])
        free = int(rule["free_parameters"])
        if points <= free:
            row.update(verdict="inconclusive", reason=recon + (
                f"{points} known data points, {free} free parameters in any datapath model: a model can be "
                f"made to fit both exactly, so the data cannot test the claim. {rule.get('why', '')}").strip())
            return row
        chk = _table_check(rule["check"], df)
        row.update(verdict="reproduced" if chk.get("ok") else "not reproduced", reason=recon + chk.get("reason", ""))
        return row
    if kind == "table_check":
        res = _table_check(rule, df)
        if res["status"] == "missing":
            row["reason"] = claim.get("not_run_reason", res["why"])
            return row
        row["ours"] = res["ours"]
        if res["status"] == "nan":
            row.update(verdict="inconclusive", reason=recon + res["why"])
            return row
        row["verdict"] = {True: "reproduced", False: "not reproduced", None: "inconclusive"}[res["ok"]]
        if rule.get("ci"):  # what the point values alone would say
            row["point_verdict"] = "reproduced" if (any if rule.get("quantifier") == "any" else all)(
                _OPS[rule["op"]](v, rule["value"]) for v in res["vals"]) else "not reproduced"
        else:
            row["point_verdict"] = row["verdict"]
        ctx = f"{rule['context']}: " if rule.get("context") else ""
        also = ""
        if rule.get("also_report"):
            ar = rule["also_report"]
            sub = df
            for col, val in (rule.get("where") or {}).items():
                sub = sub[sub[col] == val]
            if ar["column"] in sub.columns:
                also = f"; {ar.get('label', ar['column'])}: " + ", ".join(_fmt(v) for v in sub[ar["column"]])
        row["reason"] = recon + ctx + res["reason"] + also + _sensitivity(rule, tables)
        if claim.get("ci_from") or rule.get("ci_from"):
            _table_check_ci(row, claim.get("ci_from") or rule["ci_from"], tables, nll)
        if rule.get("extension"):
            ext = _table_check({**rule, "where": {**(rule.get("where") or {}), **rule["extension"]}}, df)
            label = ", ".join(f"{k}={v}" for k, v in rule["extension"].items())
            if ext["status"] != "missing":
                row["reason"] += (f". Extension rows ({label}; not deciding): {rule['column']} = {ext['ours']}"
                                  + (f" -> {'holds' if ext['ok'] else 'fails'}" if ext["status"] == "ok" else ""))
        return row
    res = _compare(kind, rule, df, nll)
    if res["status"] == "missing":
        row["reason"] = f"{claim['not_run_reason']} ({res['why']})" if "not_run_reason" in claim else res["why"]
        return row
    row["ours"] = res["ours"]
    if res["status"] == "nan":
        row.update(verdict="inconclusive", reason=recon + res["why"])
    else:
        row.update(verdict=res["verdict"], point_verdict=res["point_verdict"], ci_low=res["ci_low"],
                   ci_high=res["ci_high"], ci_detail=res["detail"], reason=recon + res["reason"])
    if rule.get("extension"):
        ext = _compare(kind, {**rule, "where": rule["extension"]}, df, nll)
        label = ", ".join(f"{k}={v}" for k, v in rule["extension"].items())
        if ext["status"] == "missing":
            pass
        elif ext["status"] == "nan":
            row["reason"] += f". Extension rows ({label}; not deciding): {ext['ours']}: {ext['why']}"
        else:
            row["reason"] += f". Extension rows ({label}; not deciding): {ext['verdict']}: {ext['detail']}"
    return row


def evaluate_ledger(claims: list[dict], tables: dict[str, pd.DataFrame], nll: dict | None = None) -> pd.DataFrame:
    return pd.DataFrame([evaluate_claim(c, tables, nll) for c in claims], columns=COLUMNS)


def _ci_text(r) -> str:
    if r["ci_low"] is None or pd.isna(r["ci_low"]):
        return ""
    return f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]"


def to_markdown(df: pd.DataFrame) -> str:
    counts = df["verdict"].value_counts().to_dict()
    head = ("# Claims ledger\n\nEvery claim of the five papers, the paper's number, ours, and the verdict "
            "computed from this run's results (`config/claims.yaml` declares the rules).\n\n"
            + ", ".join(f"{k}: {counts.get(k, 0)}" for k in VERDICTS) + "\n\n")
    head += (f"CI: 95 % interval of the perplexity ratio the claim compares (paired circular block bootstrap "
             f"over the evaluated tokens, block {bootstrap.BLOCK} tokens, {bootstrap.RESAMPLES} resamples, seed "
             f"{bootstrap.SEED}; `lpbench.bootstrap`); empty where no perplexity comparison applies. A claim is "
             "reproduced only if the CI lies on the claimed side of its threshold, not reproduced only if on "
             "the other side, else inconclusive. Basis: official code / paper text / our reconstruction.\n\n")
    shown = df.assign(CI=[_ci_text(r) for _, r in df.iterrows()],
                      basis=[f"{r['basis']}: {r['basis_pointer']}" if r["basis_pointer"] else r["basis"]
                             for _, r in df.iterrows()])
    cols = ["id", "statement", "paper_value", "ours", "verdict", "CI", "basis", "deviations", "reason"]
    if "note" in df.columns and df["note"].fillna("").astype(str).str.len().any():
        cols.append("note")            # what changed in a claim's configuration and why (config/claims.yaml)
    return head + shown[cols].to_markdown(index=False) + "\n"
