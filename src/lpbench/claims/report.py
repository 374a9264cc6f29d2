"""``results/claims.md``: a summary table that fits one screen (id, verdict, CI, basis, a short reason),
then one section per claim with its statement, the paper's number, ours, deviations and full reason."""
from __future__ import annotations

import pandas as pd

from lpbench import bootstrap
from lpbench.claims.ledger import VERDICTS

SUMMARY_COLUMNS = ["id", "verdict", "CI", "basis", "reason"]


def _ratio(x: float) -> str:
    """4 significant digits; 6 within 0.1 % of 1, where 4 would print 1 (e.g. 1.00029, not 1)."""
    return f"{x:.6g}" if x != 1 and abs(x - 1) < 1e-3 else f"{x:.4g}"


def _ci_text(r) -> str:
    if r["ci_low"] is None or pd.isna(r["ci_low"]):
        return ""
    return f"[{_ratio(r['ci_low'])}, {_ratio(r['ci_high'])}]"


def _text(x) -> str:
    return "" if x is None or (isinstance(x, float) and pd.isna(x)) else str(x)


def summary_table(df: pd.DataFrame) -> str:
    rows = pd.DataFrame({"id": df["id"], "verdict": df["verdict"], "CI": [_ci_text(r) for _, r in df.iterrows()],
                         "basis": df["basis"], "reason": df["summary"].map(_text)})
    return rows.map(lambda x: _text(x).replace("|", "\\|")).to_markdown(index=False)


def _section(r) -> str:
    verdict = r["verdict"]
    if _text(r["point_verdict"]) and r["point_verdict"] != r["verdict"]:
        verdict += f" (the point values alone: {r['point_verdict']})"
    ci = _ci_text(r)
    basis = f"{r['basis']}: {r['basis_pointer']}" if _text(r["basis_pointer"]) else _text(r["basis"])
    lines = [f"## {r['id']} ({r['paper']}): {r['verdict']}", "", _text(r["statement"]), "",
             f"- **Paper:** {_text(r['paper_value'])}", f"- **Ours:** {_text(r['ours']) or '—'}",
             f"- **Verdict:** {verdict}" + (f"; 95 % CI {ci}" if ci else ""), f"- **Basis:** {basis}",
             f"- **Deviations:** {_text(r['deviations'])}", f"- **Reason:** {_text(r['reason'])}"]
    if _text(r.get("kl_check", "")):
        lines.append(f"- **KL check (supporting):** {_text(r['kl_check'])}")
    if _text(r["note"]):
        lines.append(f"- **Note:** {r['note']}")
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame) -> str:
    counts = df["verdict"].value_counts().to_dict()
    head = ("# Claims ledger\n\nEvery claim of the five papers and the verdict computed from this run's results "
            "(rules in `config/claims.yaml`, explained in `docs/claims.md`). "
            + ", ".join(f"{k}: {counts.get(k, 0)}" for k in VERDICTS) + ".\n\n")
    note = (f"CI: 95 % interval of the perplexity ratio the claim compares (paired circular block bootstrap over "
            f"the evaluated tokens, block {bootstrap.BLOCK} tokens, {bootstrap.RESAMPLES} resamples, seed "
            f"{bootstrap.SEED}; `lpbench.bootstrap`); empty where no perplexity comparison applies. A claim is "
            "reproduced only if the CI lies on the claimed side of its threshold, not reproduced only if on the "
            "other side, else inconclusive. Basis: official code / paper text / our reconstruction.\n\n")
    return head + summary_table(df) + "\n\n" + note + "\n".join(_section(r) for _, r in df.iterrows())
