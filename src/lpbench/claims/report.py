"""``results/claims.md``: every claim with the paper's number, ours, the verdict, its CI and basis."""
from __future__ import annotations

import pandas as pd

from lpbench import bootstrap
from lpbench.claims.ledger import VERDICTS


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
