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


def fidelity_by_method(df: pd.DataFrame):
    """Fidelity to FP32 per method, one row of panels per model: mean KL(P_fp32 ‖ Q) over the FP32 top-K +
    tail (log scale; the FP32 reference itself, KL 0, is left out) and top-1 agreement with FP32, error bars
    = 95 % block-bootstrap CI (``lpbench.fidelity``); runs without finite metrics are labelled, not drawn."""
    sns.set_theme(style="whitegrid", context="paper")
    models = list(dict.fromkeys(df["model"])) or [""]
    sizes = [max(df[df["model"] == m]["method"].nunique(), 1) for m in models]
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 1.0 + 0.2 * sum(sizes) + 0.6 * len(models)),
                             squeeze=False, gridspec_kw={"height_ratios": sizes})
    for (ax_kl, ax_top), model in zip(axes, models):
        sub = df[df["model"] == model]
        order = list(dict.fromkeys(sub["method"]))
        d = sub.drop_duplicates("method").set_index("method").reindex(order)
        kl = pd.to_numeric(d["mean_kl"], errors="coerce")
        top = pd.to_numeric(d["top1_agreement"], errors="coerce")
        y = np.arange(len(order))
        ax_kl.barh(y, kl.where(kl > 0).to_numpy(float), color="#4c72b0")
        interval_errorbars(ax_kl, y, kl.where(kl > 0), d["kl_ci_low"], d["kl_ci_high"], horizontal=True)
        ax_top.barh(y, top.to_numpy(float), color="#55a868")
        interval_errorbars(ax_top, y, top, d["top1_ci_low"], d["top1_ci_high"], horizontal=True)
        ax_kl.set_xscale("log")
        for ax in (ax_kl, ax_top):
            ax.set_yticks(y, order)
            ax.invert_yaxis()
            ax.set_ylabel("")
        ax_top.set_yticklabels([])
        left = ax_kl.get_xlim()[0]
        for i, (k, t) in enumerate(zip(kl, top)):
            note = "FP32 reference (KL 0)" if k == 0 else "NaN/inf (reported, not averaged)" if pd.isna(k) else ""
            if note:
                ax_kl.text(left, i, "  " + note, va="center", ha="left", fontsize=7,
                           color="k" if k == 0 else "crimson")
        lo = np.nanmin(np.r_[top.to_numpy(float), 1.0])
        ax_top.set_xlim(max(0.0, lo - 0.05), 1.0)
        ax_kl.set_title(f"{model}: mean KL(FP32 ‖ method), nats/token")
        ax_top.set_title(f"{model}: top-1 agreement with FP32")
    axes[-1][0].set_xlabel("KL over the FP32 top-K + tail (log scale; lower bound of the full KL)")
    axes[-1][1].set_xlabel("fraction of tokens whose argmax equals FP32's")
    fig.tight_layout()
    return fig
