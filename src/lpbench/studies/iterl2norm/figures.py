"""Figures of the IterL2Norm study (seaborn; PDF/PNG written by the scripts)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from lpbench.studies.iterl2norm.defaults import PAPER_ITERS


def _theme():
    import seaborn as sns

    import lpbench.plots  # noqa: F401  (selects the Agg backend)
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.8)
    return sns


def error_figure(errors: pd.DataFrame, conv: pd.DataFrame):
    """Mean relative error vs iterations, rows = format, columns = d (synthetic inputs; line style =
    input kind); dotted: the format's precision target E_dp + E_round (Gaussian inputs)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    e = errors[~errors["input"].str.startswith("real:")].copy()
    e["err_mean"] = e["err_mean"].clip(lower=1e-18)
    fmts = list(dict.fromkeys(e["fmt"]))
    dims = sorted(e["d"].unique())
    algos = list(dict.fromkeys(e["algorithm"]))
    palette = dict(zip(algos, sns.color_palette("tab10", len(algos))))
    styles = dict(zip(dict.fromkeys(e["input"]), ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(len(fmts), len(dims), figsize=(1.55 * len(dims), 1.6 * len(fmts) + 0.6),
                             sharex=True, sharey="row", squeeze=False)
    for i, fmt in enumerate(fmts):
        for j, d in enumerate(dims):
            ax = axes[i][j]
            sub = e[(e["fmt"] == fmt) & (e["d"] == d)]
            for (algo, inp), g in sub.groupby(["algorithm", "input"], sort=False):
                ax.plot(g["iters"], g["err_mean"], styles[inp], color=palette[algo], lw=1, marker=".", ms=2)
            tgt = conv[(conv["fmt"] == fmt) & (conv["d"] == d) & (conv["input"] == "gaussian")]["target_error"]
            if len(tgt):
                ax.axhline(tgt.iloc[0], color="k", ls=":", lw=0.8)
            ax.axvline(PAPER_ITERS, color="grey", lw=0.5)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(f"d = {d}")
            if j == 0:
                ax.set_ylabel(f"{fmt}\nmean rel. error")
            if i == len(fmts) - 1:
                ax.set_xlabel("iterations k")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=palette[a], label=a) for a in algos]
    handles += [Line2D([], [], color="k", ls=s, label=f"input: {k}") for k, s in styles.items()]
    handles += [Line2D([], [], color="k", ls=":", lw=0.8, label="target E_dp + E_round (gaussian)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def real_error_figure(errors: pd.DataFrame, conv: pd.DataFrame):
    """Same as :func:`error_figure` for the recorded real norm inputs (one column per model and d)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    e = errors[errors["input"].str.startswith("real:")].copy()
    if e.empty:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, "no real norm inputs recorded", ha="center", va="center")
        ax.axis("off")
        return fig
    e["err_mean"] = e["err_mean"].clip(lower=1e-18)
    e["cell"] = e["input"].str.slice(5) + "\nd = " + e["d"].astype(str)
    fmts, cells = list(dict.fromkeys(e["fmt"])), list(dict.fromkeys(e["cell"]))
    algos = list(dict.fromkeys(e["algorithm"]))
    palette = dict(zip(algos, sns.color_palette("tab10", len(algos))))
    fig, axes = plt.subplots(len(fmts), len(cells), figsize=(2.0 * len(cells), 1.6 * len(fmts) + 0.5),
                             sharex=True, sharey="row", squeeze=False)
    for i, fmt in enumerate(fmts):
        for j, cell in enumerate(cells):
            ax = axes[i][j]
            sub = e[(e["fmt"] == fmt) & (e["cell"] == cell)]
            for algo, g in sub.groupby("algorithm", sort=False):
                ax.plot(g["iters"], g["err_mean"], color=palette[algo], lw=1, marker=".", ms=2, label=algo)
            inp, d = sub["input"].iloc[0], sub["d"].iloc[0]
            tgt = conv[(conv["fmt"] == fmt) & (conv["d"] == d) & (conv["input"] == inp)]["target_error"]
            if len(tgt):
                ax.axhline(tgt.iloc[0], color="k", ls=":", lw=0.8)
            ax.axvline(PAPER_ITERS, color="grey", lw=0.5)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(cell)
            if j == 0:
                ax.set_ylabel(f"{fmt}\nmean rel. error")
            if i == len(fmts) - 1:
                ax.set_xlabel("iterations k")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=len(lab), frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def latency_figure(curve: pd.DataFrame, lat: pd.DataFrame):
    """Cycles vs d of the macro model per lane count (overhead calibrated at d = 64), paper endpoints."""
    sns = _theme()
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    c = curve.copy()
    c["datapath"] = c["lanes"].astype(str) + " lanes" + np.where(c["configured"], " (configured)", "")
    sns.lineplot(data=c, x="d", y="cycles", hue="datapath", ax=ax, lw=1.2)
    ends = lat.drop_duplicates("d")
    ax.scatter(ends["d"], ends["paper_cycles"], color="k", zorder=5, s=25, label="paper (116 @ 64, 227 @ 1024)")
    ax.set_ylim(0, max(400, ends["paper_cycles"].max() * 1.5))
    ax.set_xlabel("vector length d")
    ax.set_ylabel("cycles per normalization (100 MHz)")
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def init_figure(init: pd.DataFrame):
    """Iterations to the format's precision (top) and mean error at 5 iterations (bottom) vs d, one
    column per format, one line per start; synthetic inputs (solid Gaussian, dashed Student-t)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    df = init[~init["input"].str.startswith("real:")]
    fmts = list(dict.fromkeys(df["fmt"]))
    fig, axes = plt.subplots(2, len(fmts), figsize=(3.0 * len(fmts), 4.4), squeeze=False, sharex=True)
    palette = dict(zip(("pow2", "centred", "magic"), sns.color_palette("deep", 3)))
    for j, fmt in enumerate(fmts):
        g = df[df["fmt"] == fmt]
        for ax, y in ((axes[0][j], "iterations_to_format_precision"), (axes[1][j], "err_mean_at_5")):
            sns.lineplot(data=g, x="d", y=y, hue="init", style="input", palette=palette, markers=True,
                         ax=ax, lw=1.0, legend=(j == len(fmts) - 1 and y == "err_mean_at_5"))
            ax.set_xscale("log", base=2)
        axes[0][j].axhline(PAPER_ITERS, color="k", ls=":", lw=0.8)
        axes[0][j].set_title(fmt)
        axes[0][j].set_ylabel("iterations to format precision" if j == 0 else "")
        axes[1][j].set_yscale("log")
        tgt = g.groupby("d")["target_error"].first()
        axes[1][j].plot(tgt.index, tgt.values, color="k", ls="--", lw=0.8, label="target E_dp + E_round")
        axes[1][j].set_ylabel("mean error at 5 iterations" if j == 0 else "")
    leg = axes[1][-1].get_legend()
    if leg:
        sns.move_legend(axes[1][-1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=6)
    fig.tight_layout()
    return fig
