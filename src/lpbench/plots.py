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
    """Bar chart of perplexity per method, one panel per model, FP32 reference dashed; NaN runs marked."""
    sns.set_theme(style="whitegrid", context="paper")
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(4.2 * max(1, len(models)), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = df[df["model"] == model].copy()
        sub["shown"] = sub["perplexity"].astype(float)
        order = list(dict.fromkeys(sub["method"]))
        sns.barplot(data=sub, x="method", y="shown", order=order, ax=ax, color="#4c72b0")
        ref = sub.loc[sub["method"] == "fp32", "shown"]
        if len(ref) and pd.notna(ref.iloc[0]):
            ax.axhline(ref.iloc[0], ls="--", color="k", lw=1, label="fp32")
        for i, m in enumerate(order):
            if sub.loc[sub["method"] == m, "shown"].isna().all():
                ax.text(i, ax.get_ylim()[0], "NaN/inf", rotation=90, ha="center", va="bottom", color="crimson")
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("")
        ax.set_ylabel("perplexity (log)")
        ax.tick_params(axis="x", rotation=45)
        for lab in ax.get_xticklabels():
            lab.set_horizontalalignment("right")
    fig.tight_layout()
    return fig
