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
``table_check`` a named table's ``column`` compared with ``value`` by ``op`` on rows matching ``where``.
``not_run``     a claim that cannot run here (e.g. needs a 70B model and a GPU); ``reason`` says why.

Thresholds (``max_rel``, ``slack_rel``) are declared in the ledger with their rationale before any
result is read, and are never adjusted to make a claim pass.
"""
from __future__ import annotations

import math
import operator
from pathlib import Path

import pandas as pd
import yaml

VERDICTS = ("reproduced", "not reproduced", "not run", "inconclusive")
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
    return claims


def _metric_table(tables: dict[str, pd.DataFrame], rule: dict) -> pd.DataFrame | None:
    return tables.get(rule.get("table", "perplexity"))


def _pivot(df: pd.DataFrame, rule: dict, methods: list[str]):
    """model x method matrix of the rule's metric; missing methods -> reason string."""
    metric = rule.get("metric", "perplexity")
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


def evaluate_claim(claim: dict, tables: dict[str, pd.DataFrame]) -> dict:
    rule = claim["rule"]
    kind = rule["kind"]
    row = {"id": claim["id"], "paper": claim["paper"], "statement": claim["statement"],
           "paper_value": claim["paper_value"], "ours": "", "verdict": "not run", "reason": "",
           "note": claim.get("note", "")}
    if kind == "not_run":
        row["reason"] = rule["reason"]
        return row
    df = _metric_table(tables, rule)
    if df is None or df.empty:
        row["reason"] = claim.get("not_run_reason", f"table '{rule.get('table', 'perplexity')}' has no results")
        return row
    if kind == "table_check":
        sub = df
        for col, val in rule.get("where", {}).items():
            sub = sub[sub[col] == val]
        if sub.empty:
            row["reason"] = claim.get("not_run_reason", f"no rows match {rule.get('where')}")
            return row
        vals = sub[rule["column"]].tolist()
        row["ours"] = ", ".join(_fmt(v) for v in vals)
        if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
            row.update(verdict="inconclusive", reason="NaN in the measured values")
            return row
        ok = all(_OPS[rule["op"]](v, rule["value"]) for v in vals)
        row["verdict"] = "reproduced" if ok else "not reproduced"
        row["reason"] = f"{rule['column']} {rule['op']} {rule['value']} on every matching row: {ok}"
        return row
    methods = {"lowest": lambda r: [r["best"], *r["among"]],
               "within_rel": lambda r: [r["method"], r["reference"]],
               "ordered": lambda r: list(r["methods"])}[kind](rule)
    sub, why = _pivot(df, rule, methods)
    if sub is None:
        row["reason"] = f"{claim['not_run_reason']} ({why})" if "not_run_reason" in claim else why
        return row
    row["ours"] = "; ".join(f"{m}: " + ", ".join(f"{c}={_fmt(sub.loc[m, c])}" for c in sub.columns)
                            for m in sub.index)
    if sub.isna().any().any():
        row.update(verdict="inconclusive", reason="a needed result is NaN/inf (see the evaluation JSON)")
        return row
    per_model = []
    for model, r in sub.iterrows():
        if kind == "lowest":
            ok = r[rule["best"]] <= min(r[m] for m in rule["among"])
        elif kind == "within_rel":
            ok = abs(r[rule["method"]] / r[rule["reference"]] - 1) <= rule["max_rel"]
        else:
            seq = [r[m] for m in rule["methods"]]
            ok = all(b <= a * (1 + rule.get("slack_rel", 0.0)) for a, b in zip(seq, seq[1:]))
        per_model.append((model, ok))
    good = all(ok for _, ok in per_model)
    row["verdict"] = "reproduced" if good else "not reproduced"
    row["reason"] = "; ".join(f"{m}: {'holds' if ok else 'fails'}" for m, ok in per_model)
    return row


def evaluate_ledger(claims: list[dict], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame([evaluate_claim(c, tables) for c in claims])


def to_markdown(df: pd.DataFrame) -> str:
    counts = df["verdict"].value_counts().to_dict()
    head = ("# Claims ledger\n\nEvery claim of the five papers, the paper's number, ours, and the verdict "
            "computed from this run's results (`config/claims.yaml` declares the rules).\n\n"
            + ", ".join(f"{k}: {counts.get(k, 0)}" for k in VERDICTS) + "\n\n")
    cols = ["id", "statement", "paper_value", "ours", "verdict", "reason"]
    if "note" in df.columns and df["note"].fillna("").astype(str).str.len().any():
        cols.append("note")            # what changed in a claim's configuration and why (config/claims.yaml)
    return head + df[cols].to_markdown(index=False) + "\n"
