"""Rule kinds: one function per ``rule.kind`` in :data:`RULE_KINDS` (added with :func:`register`), and
:func:`evaluate_claim`, which builds a claim's row and hands it to its kind. docs/claims.md describes
every kind and option; ``workflow/schemas/claims.schema.yaml`` lists the options each kind accepts."""
from __future__ import annotations

import math
from typing import Callable

import pandas as pd

from lpbench.claims import checks, compare
from lpbench.claims.ledger import COLUMNS, deviations_text

#: a rule kind: (claim, its rule, result tables, per-token NLLs, the claim's row to fill in) -> None
RuleKind = Callable[[dict, dict, dict, dict, dict], None]
RULE_KINDS: dict[str, RuleKind] = {}


def register(*kinds: str) -> Callable[[RuleKind], RuleKind]:
    def deco(fn: RuleKind) -> RuleKind:
        for kind in kinds:
            if kind in RULE_KINDS and RULE_KINDS[kind] is not fn:
                raise TypeError(f"rule kind '{kind}' registered twice")
            RULE_KINDS[kind] = fn
        return fn
    return deco


def _recon(claim: dict) -> str:
    """A verdict resting on our reconstruction says so in its reason."""
    return "our reconstruction: " if str(claim.get("basis", "")).startswith("our reconstruction") else ""


def _table(claim: dict, rule: dict, tables: dict, row: dict) -> pd.DataFrame | None:
    """The rule's table, or None with the row's "not run" reason set."""
    df = tables.get(rule.get("table", "perplexity"))
    if df is None or df.empty:
        row["reason"] = claim.get("not_run_reason", f"table '{rule.get('table', 'perplexity')}' has no results")
        return None
    return df


@register("not_run")
def not_run(claim, rule, tables, nll, row) -> None:
    """Cannot run here (e.g. needs a 70B model and a GPU): ``reason`` says why."""
    row["reason"] = rule["reason"]


@register("all")
def all_parts(claim, rule, tables, nll, row) -> None:
    """Every ``table_check`` in ``checks`` holds. One part not reproduced decides, else a part not run,
    else an inconclusive part."""
    parts = [evaluate_claim({**claim, "rule": {"kind": "table_check", **chk}}, tables, nll) for chk in rule["checks"]]
    row["ours"] = " | ".join(p["ours"] for p in parts)
    row["reason"] = " | ".join(p["reason"] for p in parts)
    verdicts = [p["verdict"] for p in parts]
    row["verdict"] = next((v for v in ("not reproduced", "not run", "inconclusive") if v in verdicts), "reproduced")
    row["summary"] = "; ".join(dict.fromkeys(p["summary"] for p in parts))


@register("table_check")
def table_check(claim, rule, tables, nll, row) -> None:
    """A table's ``column`` compared with ``value`` by ``op`` on the rows matching ``where``."""
    df = _table(claim, rule, tables, row)
    if df is None:
        return
    res = checks.table_check(rule, df)
    if res["status"] == "missing":
        row["reason"] = claim.get("not_run_reason", res["why"])
        return
    row["ours"] = res["ours"]
    if res["status"] == "nan":
        row.update(verdict="inconclusive", reason=_recon(claim) + res["why"], summary=res["why"])
        return
    row["verdict"] = {True: "reproduced", False: "not reproduced", None: "inconclusive"}[res["ok"]]
    if rule.get("ci"):  # what the point values alone would say
        row["point_verdict"] = "reproduced" if (any if rule.get("quantifier") == "any" else all)(
            checks.OPS[rule["op"]](v, rule["value"]) for v in res["vals"]) else "not reproduced"
    else:
        row["point_verdict"] = row["verdict"]
    ctx = f"{rule['context']}: " if rule.get("context") else ""
    row["reason"] = (_recon(claim) + ctx + res["reason"] + checks.also_report(rule, df)
                     + checks.sensitivity(rule, tables))
    row["summary"] = res["summary"]
    if claim.get("ci_from") or rule.get("ci_from"):
        comps = compare.table_check_ci(row, claim.get("ci_from") or rule["ci_from"], tables, nll)
        row["summary"] = compare.summary(comps) if comps else row["summary"]
    if rule.get("extension"):
        row["reason"] += checks.extension_text(rule, df)


@register("lowest", "within_rel", "ordered")
def comparative(claim, rule, tables, nll, row) -> None:
    """Perplexities of methods compared per model, decided by the CIs of their ratios (module compare)."""
    df = _table(claim, rule, tables, row)
    if df is None:
        return
    res = compare.compare(rule["kind"], rule, df, nll)
    if res["status"] == "missing":
        row["reason"] = f"{claim['not_run_reason']} ({res['why']})" if "not_run_reason" in claim else res["why"]
        row["summary"] = res["why"]  # which methods are missing says more than the general not_run_reason
        return
    row["ours"] = res["ours"]
    if res["status"] == "nan":
        row.update(verdict="inconclusive", reason=_recon(claim) + res["why"], summary=res["summary"])
    else:
        row.update(verdict=res["verdict"], point_verdict=res["point_verdict"], ci_low=res["ci_low"],
                   ci_high=res["ci_high"], ci_detail=res["detail"], reason=_recon(claim) + res["reason"],
                   summary=res["summary"], per_seed_verdicts=res["per_seed"])
    if rule.get("extension"):
        row["reason"] += _extension(rule, df, nll)


def _extension(rule: dict, df: pd.DataFrame, nll: dict) -> str:
    """The same comparative rule on the rows of a labelled extension (reported, not deciding)."""
    ext = compare.compare(rule["kind"], {**rule, "where": rule["extension"]}, df, nll)
    label = ", ".join(f"{k}={v}" for k, v in rule["extension"].items())
    if ext["status"] == "missing":
        return ""
    if ext["status"] == "nan":
        return f". Extension rows ({label}; not deciding): {ext['ours']}: {ext['why']}"
    return f". Extension rows ({label}; not deciding): {ext['verdict']}: {ext['detail']}"


@register("underdetermined")
def underdetermined(claim, rule, tables, nll, row) -> None:
    """A datapath model with ``free_parameters`` fits any ``points`` <= free parameters: inconclusive;
    with more points, ``check`` (a table check) decides."""
    df = _table(claim, rule, tables, row)
    if df is None:
        return
    res = checks.table_check({**rule, "op": rule.get("op", "<="), "value": rule.get("value", math.inf)}, df)
    if res["status"] == "missing":
        row["reason"] = claim.get("not_run_reason", res["why"])
        return
    row["ours"] = res.get("ours", "")
    points = len(_rows(df, rule["points_where"])) if "points_where" in rule else int(rule["points"])
    free = int(rule["free_parameters"])
    if points <= free:
        row.update(verdict="inconclusive", summary=f"{points} data points, {free} free parameters: cannot test",
                   reason=_recon(claim) + (
                       f"{points} known data points, {free} free parameters in any datapath model: a model can be "
                       f"made to fit both exactly, so the data cannot test the claim. {rule.get('why', '')}").strip())
        return
    chk = checks.table_check(rule["check"], df)
    row.update(verdict="reproduced" if chk.get("ok") else "not reproduced",
               reason=_recon(claim) + chk.get("reason", ""), summary=chk.get("summary", ""))


def _rows(df: pd.DataFrame, where: dict) -> pd.DataFrame:
    for col, val in where.items():
        df = df[df[col] == val]
    return df


def evaluate_claim(claim: dict, tables: dict[str, pd.DataFrame], nll: dict | None = None) -> dict:
    """The claim's row of claims.csv: its verdict decided by its rule's kind."""
    rule = claim["rule"]
    if rule["kind"] not in RULE_KINDS:
        raise ValueError(f"claim {claim['id']}: unknown rule kind '{rule['kind']}'; known: {sorted(RULE_KINDS)}")
    row = {"id": claim["id"], "paper": claim["paper"], "statement": claim["statement"],
           "paper_value": claim["paper_value"], "ours": "", "verdict": "not run", "ci_low": None,
           "ci_high": None, "reason": "", "basis": claim.get("basis", ""),
           "basis_pointer": claim.get("basis_pointer", ""), "deviations": deviations_text(claim),
           "point_verdict": "", "ci_detail": "", "note": claim.get("note", ""), "summary": "",
           "per_seed_verdicts": ""}
    RULE_KINDS[rule["kind"]](claim, rule, tables, nll or {}, row)
    row["summary"] = checks.short(row["summary"] or row["reason"])
    return row


def evaluate_ledger(claims: list[dict], tables: dict[str, pd.DataFrame], nll: dict | None = None) -> pd.DataFrame:
    return pd.DataFrame([evaluate_claim(c, tables, nll) for c in claims], columns=COLUMNS)
