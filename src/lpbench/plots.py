"""Seaborn figures (PNG for the report, PDF for papers)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def save(fig, png: str | Path, pdf: str | Path | None = None) -> None:
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    if pdf:
        fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)


def perplexity_by_method(df: pd.DataFrame):
    """Horizontal bars of perplexity per method (log scale), one panel per model, FP32 reference dashed,
    error bars = 95 % block-bootstrap CI over the evaluated tokens (``ppl_ci_low`` / ``ppl_ci_high``);
    runs whose perplexity is NaN/inf are labelled as such instead of drawn."""
    sns.set_theme(style="whitegrid", context="paper")
    models = list(dict.fromkeys(df["model"]))
    n_methods = max(df.groupby("model")["method"].nunique().max(), 1) if len(df) else 1
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.0 * max(1, len(models)), 0.8 + 0.24 * n_methods),
                             squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = df[df["model"] == model].copy()
        sub["shown"] = pd.to_numeric(sub["perplexity"], errors="coerce")
        order = list(dict.fromkeys(sub["method"]))
        sns.barplot(data=sub, y="method", x="shown", order=order, ax=ax, color="#4c72b0", orient="h")
        if {"ppl_ci_low", "ppl_ci_high"} <= set(sub.columns):
            # 95 % block-bootstrap CI of each perplexity (lpbench.bootstrap), where the NLLs are stored
            ci = sub.drop_duplicates("method").set_index("method").reindex(order)
            lo, hi = pd.to_numeric(ci["ppl_ci_low"], errors="coerce"), pd.to_numeric(ci["ppl_ci_high"], errors="coerce")
            pt = ci["shown"]
            ok = lo.notna() & hi.notna() & pt.notna()
            ys = [i for i, m in enumerate(order) if ok.loc[m]]
            if ys:
                ax.errorbar(pt[ok].values, ys, xerr=[(pt - lo)[ok].values, (hi - pt)[ok].values], fmt="none",
                            ecolor="k", elinewidth=0.8, capsize=2)
        ax.set_xscale("log")
        ref = sub.loc[sub["method"] == "fp32", "shown"]
        if len(ref) and pd.notna(ref.iloc[0]):
            ax.axvline(ref.iloc[0], ls="--", color="k", lw=1, label="fp32")
        left = ax.get_xlim()[0]
        for i, m in enumerate(order):
            if sub.loc[sub["method"] == m, "shown"].isna().all():
                ax.text(left, i, "  NaN/inf (reported, not averaged)", va="center", ha="left", color="crimson",
                        fontsize=7)
        ax.set_title(model)
        ax.set_ylabel("")
        ax.set_xlabel("perplexity (log scale)")
    fig.tight_layout()
    return fig
