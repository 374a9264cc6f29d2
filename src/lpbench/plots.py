"""Seaborn figures (PNG for the report, PDF for papers)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def save(fig, png: str | Path, pdf: str | Path | None = None) -> None:
    Path(png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=150, bbox_inches="tight")
    if pdf:
        fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)


def interval_errorbars(ax, x, y, lo, hi, horizontal: bool = False, **kw) -> None:
    """Asymmetric error bars [lo, hi] around y at positions x (where all three are finite); "95 % CI" by
    convention of every perplexity figure here (``lpbench.bootstrap``)."""
    x, y = np.asarray(x, float), pd.to_numeric(pd.Series(y), errors="coerce").to_numpy(float)
    lo = pd.to_numeric(pd.Series(lo), errors="coerce").to_numpy(float)
    hi = pd.to_numeric(pd.Series(hi), errors="coerce").to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        err = [y[ok] - lo[ok], hi[ok] - y[ok]]
        args = dict(fmt="none", ecolor="k", elinewidth=0.8, capsize=2, **kw)
        ax.errorbar(y[ok], x[ok], xerr=err, **args) if horizontal else ax.errorbar(x[ok], y[ok], yerr=err, **args)


def grouped_bars(ax, df: pd.DataFrame, x: str, hue: str, y: str, order: list, hue_order: list, palette: dict,
                 lo: str | None = None, hi: str | None = None) -> dict:
    """One bar per (x, hue) pair — never an average of several rows (a duplicate pair is an error) — side
    by side within each x category, colours from ``palette`` (the same in every panel), error bars from the
    ``lo`` / ``hi`` columns where they are given. Returns each bar's position ``{(x, hue): position}``."""
    dup = df.duplicated([x, hue], keep=False)
    if dup.any():
        raise ValueError(f"two rows share a ({x}, {hue}) bar: {df.loc[dup, [x, hue]].values.tolist()}")
    width = 0.8 / max(len(hue_order), 1)
    where = {}
    for j, h in enumerate(hue_order):
        d = df[df[hue] == h].set_index(x).reindex(order)
        xs = np.arange(len(order)) - 0.4 + width * (j + 0.5)
        vals = pd.to_numeric(d[y], errors="coerce").to_numpy(float)
        ax.bar(xs, vals, width, color=palette[h], label=h)
        if lo and hi:
            interval_errorbars(ax, xs, vals, d[lo], d[hi])
        where.update({(k, h): float(p) for k, p in zip(order, xs)})
    ax.set_xticks(range(len(order)), order)
    return where


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
            interval_errorbars(ax, range(len(order)), ci["shown"], ci["ppl_ci_low"], ci["ppl_ci_high"],
                               horizontal=True)
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
