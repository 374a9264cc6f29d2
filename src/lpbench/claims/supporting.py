"""The ledger's ``kl_check`` column: each comparative claim's comparison restated on mean KL(P_fp32 ‖ Q) per
token (:mod:`lpbench.fidelity`), labelled *supporting*. The verdict stays decided on the paper's metric
(perplexity); where a decided KL comparison says the opposite of the decided verdict, the reason says so.

Which comparisons: the claim's ``lowest`` / ``within_rel`` / ``ordered`` rule and its ``ci_from`` rules.
``lowest``: KL(best) / min KL(among) per model, paired block-bootstrap CI, claimed ≤ 1
(:func:`lpbench.fidelity.kl_check`). ``ordered``: KL(next) / KL(previous) per neighbour pair, claimed ≤ 1.
``within_rel`` against the FP32 reference: mean KL of the method with its CI, reported without a verdict
(a perplexity tolerance has no KL counterpart). Rows of every model with the evaluations (a rule's
``where`` scope filter is not applied: this column is context, not a decision).
"""
from __future__ import annotations

from lpbench.bootstrap import as_series, combine
from lpbench.fidelity import kl_check, mean_ci

DECIDED = ("reproduced", "not reproduced")


def _mean_kl(results: list[dict], method: str) -> str:
    parts = []
    for r in results:
        if r["method"]["name"] != method:
            continue
        kl = as_series(r["metrics"].get("kl"))
        if kl is None or not len(kl):
            parts.append(f"{r['model']['id']}: not run (no KL metrics)")
            continue
        ci = mean_ci(kl)
        parts.append(f"{r['model']['id']}: {ci['mean']:.3g} [{ci['ci_low']:.3g}, {ci['ci_high']:.3g}]")
    return f"supporting, mean KL(fp32 ‖ {method}) nats/token: " + ("; ".join(parts) or "not run")


def _one(rule: dict, results: list[dict]) -> tuple[str, str | None]:
    """(text, KL verdict or None) of one comparative rule."""
    kind = rule.get("kind")
    if kind == "lowest":
        out = kl_check(results, rule["best"], rule["among"], models=rule.get("models"))
        return out["text"], out["verdict"]
    if kind == "ordered":
        checks = [kl_check(results, b, [a], models=rule.get("models"))
                  for a, b in zip(rule["methods"], rule["methods"][1:])]
        ran = [c["verdict"] for c in checks if c["verdict"] != "not run"]
        return " | ".join(c["text"] for c in checks), (combine(ran) if ran else "not run")
    if kind == "within_rel":
        return _mean_kl(results, rule["method"]), None
    return "", None


def kl_checks(claims: list[dict], verdicts: list[str], results: list[dict]) -> tuple[list[str], list[str]]:
    """Per claim (in ledger order, with its decided ``verdicts``): the ``kl_check`` text ("" for claims that
    compare no methods) and a note for the reason column ("" unless the KL comparison is decided the other
    way)."""
    texts, notes = [], []
    for claim, verdict in zip(claims, verdicts):
        rules = [claim.get("rule") or {}] + list(claim.get("ci_from") or [])
        found = [_one(r, results) for r in rules]
        found = [(t, v) for t, v in found if t]
        kl_verdicts = [v for _, v in found if v is not None and v != "not run"]
        kl_verdict = combine(kl_verdicts) if kl_verdicts else None
        texts.append(" | ".join(t for t, _ in found))
        disagree = verdict in DECIDED and kl_verdict in DECIDED and kl_verdict != verdict
        notes.append(f"the supporting KL comparison says {kl_verdict} (kl_check)" if disagree else "")
    return texts, notes
