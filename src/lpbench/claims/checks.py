"""``table_check``: a table's column compared with a value, on every (or at least one) matching row,
by the point values or by each row's 95 % interval; and its ``sensitivity`` report (docs/claims.md)."""
from __future__ import annotations

import math
import operator

import pandas as pd

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq}
SUMMARY_CHARS = 100


def fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "NaN"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _balanced(text: str) -> bool:
    return text.count("(") == text.count(")") and text.count("[") == text.count("]")


def short(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` cut to ``limit`` characters: at its first clause if that fits, else at a word, with "…"."""
    if len(text) <= limit:
        return text
    for sep in ("; ", " ("):
        head = text.split(sep, 1)[0]
        if 20 <= len(head) <= limit and _balanced(head):
            return head
    return text[:limit - 1].rsplit(" ", 1)[0] + "…"


def table_check(rule: dict, df: pd.DataFrame) -> dict:
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
    ours = ", ".join(n + fmt(v) for n, v in zip(names, vals))
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in vals):
        return {"status": "nan", "ours": ours, "why": "NaN in the measured values"}
    some = rule.get("quantifier", "every") == "any"
    ok = (any if some else all)(OPS[rule["op"]](v, rule["value"]) for v in vals)
    out = {"status": "ok", "ours": ours, "ok": ok, "n": len(vals), "vals": vals,
           "reason": f"{rule['column']} {rule['op']} {rule['value']} on "
                     f"{'at least one' if some else 'every'} matching row: {ok}",
           "summary": _point_summary(rule, vals)}
    if rule.get("ci"):
        out.update(_interval(rule, sub, names, some))
    return out


def _point_summary(rule: dict, vals: list) -> str:
    holds = sum(bool(OPS[rule["op"]](v, rule["value"])) for v in vals)
    worst = ""
    if rule["op"] != "==":
        worst = f" ({'max' if rule['op'] in ('<', '<=') else 'min'} " \
                f"{fmt(max(vals) if rule['op'] in ('<', '<=') else min(vals))})"
    need = ", one needed" if rule.get("quantifier") == "any" else ""
    return f"{rule['column']} {rule['op']} {rule['value']}: {holds}/{len(vals)} hold{worst}{need}"


def _interval(rule: dict, sub: pd.DataFrame, names: list[str], some: bool) -> dict:
    """``ci: [low column, high column]``: a row holds if its whole interval is on the claimed side of
    ``value``, fails if it is wholly on the other side, else is undecided. Every row (``quantifier:
    any``: at least one) must hold for "reproduced"; one failing row (any: every row failing) gives
    "not reproduced"; otherwise "inconclusive" (``ok`` None)."""
    lo_col, hi_col = rule["ci"]
    op, t = OPS[rule["op"]], rule["value"]
    lower_is_claimed = rule["op"] in ("<", "<=")
    states = []
    for (_, r), name in zip(sub.iterrows(), names):
        lo, hi = float(r[lo_col]), float(r[hi_col])
        sure, other = (hi, lo) if lower_is_claimed else (lo, hi)
        state = "holds" if op(sure, t) else ("fails" if not op(other, t) else "undecided")
        states.append(f"{name}[{fmt(lo)}, {fmt(hi)}] {state}")
    holds = [s.endswith("holds") for s in states]
    fails = [s.endswith("fails") for s in states]
    if some:
        ok = True if any(holds) else (False if all(fails) else None)
    else:
        ok = False if any(fails) else (True if all(holds) else None)
    undecided = len(states) - sum(holds) - sum(fails)
    summary = (f"{rule['column']} {rule['op']} {t} by CI: {sum(holds)}/{len(states)} hold, {sum(fails)} fail"
               + (f", {undecided} undecided" if undecided else ""))
    return {"ok": ok, "summary": summary,
            "reason": f"{rule['column']} {rule['op']} {t} decided by each row's 95 % interval "
                      f"({lo_col}, {hi_col}) on {'at least one' if some else 'every'} row: " + "; ".join(states)}


def sensitivity(rule: dict, tables: dict) -> str:
    """How the table check moves with a declared choice (reported, not deciding)."""
    sens = rule.get("sensitivity")
    if not sens or sens.get("table") not in tables:
        return ""
    df = tables[sens["table"]]
    if sens["by"] not in df.columns:
        return ""
    parts = []
    for val in dict.fromkeys(df[sens["by"]]):
        res = table_check({**sens, "where": {**(sens.get("where") or {}), sens["by"]: val}}, df)
        if res["status"] == "ok":
            worst = max(res["vals"]) if sens["op"] in ("<", "<=") else min(res["vals"])
            parts.append(f"{sens['by']}={val}: {'holds' if res['ok'] else 'fails'} "
                         f"({'max' if sens['op'] in ('<', '<=') else 'min'} {fmt(worst)})")
    return (f"; sensitivity (not deciding; {sens['column']} {sens['op']} {sens['value']} per "
            f"{sens['by']}): " + ", ".join(parts)) if parts else ""


def also_report(rule: dict, df: pd.DataFrame) -> str:
    """``also_report: {column, label}``: that column's values on the rule's rows, beside the reason."""
    ar = rule.get("also_report")
    if not ar:
        return ""
    sub = df
    for col, val in (rule.get("where") or {}).items():
        sub = sub[sub[col] == val]
    if ar["column"] not in sub.columns:
        return ""
    return f"; {ar.get('label', ar['column'])}: " + ", ".join(fmt(v) for v in sub[ar["column"]])


def extension_text(rule: dict, df: pd.DataFrame) -> str:
    """``extension: {<col>: <val>}`` of a table check: the same check on the labelled extension rows."""
    ext = table_check({**rule, "where": {**(rule.get("where") or {}), **rule["extension"]}}, df)
    label = ", ".join(f"{k}={v}" for k, v in rule["extension"].items())
    if ext["status"] == "missing":
        return ""
    return (f". Extension rows ({label}; not deciding): {rule['column']} = {ext['ours']}"
            + (f" -> {'holds' if ext['ok'] else 'fails'}" if ext["status"] == "ok" else ""))
