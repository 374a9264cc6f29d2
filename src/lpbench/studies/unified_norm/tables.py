"""Tables and figures of the Unified Normalization study.

``unified_norm.csv``          one row per (task, norm, seed): metric, the seed's gap to LN's mean, the
                              (task, norm) gap with a 95 % CI over seeds, collapsed flag and reason.
``unified_norm_summary.csv``  one row per (task, norm): mean, std, n, gap_to_ln with CI, collapsed
                              runs, role (ln / bn / un = the task's official UN setting / ablation), UN's
                              warm-up / clamp reading (``schedule``: scaled or official, with the resolved
                              iterations), and ``gap_worse`` with its interval (UN-1's "BN is worse").
``unified_norm_filtration.csv`` per setting with UN both with and without filtration: collapsed runs.
``unified_norm_un3.csv``      UN-3's outcome per setting and over all settings (:mod:`.verdicts`).

gap_to_ln (positive = worse than LN): LN mean - norm mean in top-1 points; for perplexity
100 x (norm mean / LN mean - 1) percent. CI: Welch's t interval of the difference of means (seeds as
samples; collapsed runs with a NaN metric are excluded from the means and counted in ``collapsed``).

gap_worse (UN-1's "BN is worse or collapses", decided like UN's gap by an interval): gap_to_ln and its
Welch interval, except that a (task, norm) with a collapsed run while LN has none is worse for certain
(point and both bounds +inf). The claim's side is gap_worse > 1.0 on the whole interval; ``bn_worse`` on
BN's rows says the same as a number: 1 (interval above 1.0), 0 (wholly at or below), NaN (undecided).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

COLLAPSE_DEFINITION = ("collapsed = non-finite training loss/parameters, or final top-1 <= 20 % (2 x chance) "
                       "/ perplexity >= unigram perplexity of the evaluation text")
# two-sided 97.5 % Student t quantiles, df 1..30 (no scipy in the environment)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042]


def t975(df: float) -> float:
    if not math.isfinite(df) or df < 1:
        return float("nan")
    return _T975[min(int(df), 30) - 1] if df < 30 else 1.96


def welch_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """mean(a) - mean(b) with its 95 % Welch interval (NaN bounds if either has < 2 values)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan"), float("nan")
    d = a.mean() - b.mean()
    if len(a) < 2 or len(b) < 2:
        return d, float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return d, d, d
    df = (va + vb) ** 2 / ((va**2 / (len(a) - 1)) + (vb**2 / (len(b) - 1)))
    h = t975(df) * se
    return d, d - h, d + h


def _decided(lo: float, hi: float, threshold: float) -> float:
    """1 if the whole interval lies above ``threshold``, 0 if it lies wholly at or below it, NaN if undecided."""
    if lo > threshold:
        return 1.0
    if hi <= threshold:
        return 0.0
    return float("nan")


def _gap(metric: str, vals: np.ndarray, ln: np.ndarray) -> tuple[float, float, float]:
    """gap_to_ln (positive = worse) and its CI."""
    if metric == "top1":
        return welch_ci(ln, vals)
    ln_mean = np.nanmean(ln) if np.isfinite(ln).any() else float("nan")
    d, lo, hi = welch_ci(vals, ln)
    return tuple(100.0 * x / ln_mean for x in (d, lo, hi))


def _schedule(spec: dict) -> dict:
    """UN's warm-up / clamp reading of a resolved norm spec (empty for LN / BN)."""
    if spec.get("kind") != "un":
        return {"schedule": "", "warmup_iters": None, "clamp_start": None}
    warm = int(spec.get("warmup_iters", 4000))
    clamp = spec.get("clamp_start")
    return {"schedule": spec.get("schedule", ""), "warmup_iters": warm,
            "clamp_start": int(clamp) if clamp is not None else max(1000, warm)}


def load_runs(paths) -> pd.DataFrame:
    rows = []
    for p in paths:
        r = json.loads(Path(p).read_text())
        m = r["metrics"]
        rows.append({"task": r["task"], "norm": r["norm"], "seed": r["seed"], "stress": int(r.get("stress", False)),
                     "role": r["role"], "metric": m["metric"], "value": m["value"],
                     "collapsed": int(m["collapsed"]), "collapse_reason": m["collapse_reason"],
                     "final_train_loss": m["final_train_loss"], "steps_run": m["steps_run"],
                     "un_skipped_steps": m["un_skipped_steps_all_layers"], "train_seconds": m["train_seconds"],
                     "cpu_seconds": m.get("cpu_seconds", float("nan")), "outlier_steps": m.get("outlier_steps", 0),
                     "filtered_outlier_steps": m.get("filtered_outlier_steps", 0),
                     "filtered_other_steps": m.get("filtered_other_steps", 0),
                     **_schedule(r.get("settings", {}).get("norm_resolved", {}))})
    return pd.DataFrame(rows).sort_values(["task", "norm", "seed"]).reset_index(drop=True)


def study_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    per_seed, summary, filt = [], [], []
    for task, tdf in runs.groupby("task", sort=False):
        metric = tdf["metric"].iloc[0]
        ln_vals = tdf.loc[tdf["role"] == "ln", "value"].to_numpy(float)
        ln_mean = np.nanmean(ln_vals) if np.isfinite(ln_vals).any() else float("nan")
        ln_collapsed = int(tdf.loc[tdf["role"] == "ln", "collapsed"].sum())
        for norm, ndf in tdf.groupby("norm", sort=False):
            vals = ndf["value"].to_numpy(float)
            gap, lo, hi = _gap(metric, vals, ln_vals) if len(ln_vals) else (float("nan"),) * 3
            collapsed = int(ndf["collapsed"].sum())
            role = ndf["role"].iloc[0]
            fin = vals[np.isfinite(vals)]
            worse = (math.inf,) * 3 if (collapsed > 0 and ln_collapsed == 0 and len(ln_vals)) else (gap, lo, hi)
            first = ndf.iloc[0]
            summary.append({"task": task, "norm": norm, "role": role, "stress": int(first["stress"]),
                            "metric": metric, "mean": fin.mean() if len(fin) else float("nan"),
                            "std": fin.std(ddof=1) if len(fin) > 1 else float("nan"), "seeds": len(vals),
                            "gap_to_ln": gap, "gap_ci_lo": lo, "gap_ci_hi": hi, "collapsed_runs": collapsed,
                            "gap_worse": worse[0], "gap_worse_ci_lo": worse[1], "gap_worse_ci_hi": worse[2],
                            "bn_worse": _decided(worse[1], worse[2], 1.0) if role == "bn" else None,
                            "schedule": first.get("schedule", ""), "warmup_iters": first.get("warmup_iters"),
                            "clamp_start": first.get("clamp_start"),
                            "outlier_steps_mean": float(ndf["outlier_steps"].mean()) if "outlier_steps" in ndf else 0.0,
                            "filtered_outlier_steps_mean": float(ndf["filtered_outlier_steps"].mean())
                            if "filtered_outlier_steps" in ndf else 0.0,
                            "filtered_other_steps_mean": float(ndf["filtered_other_steps"].mean())
                            if "filtered_other_steps" in ndf else 0.0,
                            "cpu_seconds_mean": float(ndf["cpu_seconds"].mean())
                            if "cpu_seconds" in ndf else float("nan"),
                            "un_skipped_steps_mean": float(ndf["un_skipped_steps"].mean())})
            for _, r in ndf.iterrows():
                if metric == "top1":
                    seed_gap = ln_mean - r["value"]
                else:
                    seed_gap = 100.0 * (r["value"] / ln_mean - 1)
                per_seed.append({"task": task, "norm": norm, "seed": r["seed"], "role": role, "metric": metric,
                                 "value": r["value"], "gap_to_ln_seed": seed_gap, "gap_to_ln": gap,
                                 "gap_ci_lo": lo, "gap_ci_hi": hi, "collapsed": r["collapsed"],
                                 "collapse_reason": r["collapse_reason"], "final_train_loss": r["final_train_loss"],
                                 "un_skipped_steps": r["un_skipped_steps"]})
    summary = pd.DataFrame(summary)
    for task, sdf in summary.groupby("task", sort=False):
        un = sdf[sdf["norm"] == "un"]
        nf = sdf[sdf["norm"] == "un-nofilt"]
        if len(un) and len(nf):
            w, wo = int(un["collapsed_runs"].iloc[0]), int(nf["collapsed_runs"].iloc[0])
            filt.append({"task": task, "stress": int(un["stress"].iloc[0]), "collapsed_with_filtration": w,
                         "collapsed_without_filtration": wo, "prevents": int(wo > 0 and w == 0),
                         "harms": int(w > wo), "seeds": int(un["seeds"].iloc[0]),
                         "mean_with": un["mean"].iloc[0], "mean_without": nf["mean"].iloc[0]})
    filt = pd.DataFrame(filt, columns=["task", "stress", "collapsed_with_filtration", "collapsed_without_filtration",
                                       "prevents", "harms", "seeds", "mean_with", "mean_without"])
    return pd.DataFrame(per_seed), summary, filt


# ------------------------------------------------------------------------------------------ figures
def training_curves(logs: dict):
    """logs: (task, norm, seed) -> per-step DataFrame. Mean +- min/max band over seeds, one panel per task."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    tasks = list(dict.fromkeys(t for t, _, _ in logs))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        norms = list(dict.fromkeys(n for t, n, _ in logs if t == task))
        for norm in norms:
            runs = [df.set_index("step")["loss"] for (t, n, _), df in logs.items() if t == task and n == norm]
            mat = pd.concat(runs, axis=1)
            smooth = mat.rolling(10, min_periods=1).mean()
            mean = smooth.mean(axis=1)
            ax.plot(mean.index, mean.values, label=norm, lw=1.2)
            ax.fill_between(mean.index, smooth.min(axis=1), smooth.max(axis=1), alpha=0.2)
        ax.set_title(task)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss (10-step mean)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def statistic_figure(logs: dict, tasks: list):
    """Per UN run of ``tasks`` (lowest seed): one layer's batch statistic mean(x^2) per step vs the sigma^2
    UN normalizes with and the running variance; steps skipped by the outlier filtration marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    panels = []
    for task in tasks:
        seeds = [s for t, _, s in logs if t == task]
        if not seeds:
            continue
        seed = min(seeds)
        for (t, n, s), df in logs.items():
            if t == task and s == seed and "stat_used" in df and df["stat_used"].notna().any():
                panels.append((t, n, s, df))
    ncol = min(3, max(1, len(panels)))
    nrow = max(1, math.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.2 * nrow), squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, (task, norm, seed, df) in zip(axes.flat, panels):
        ax.plot(df["step"], df["stat_batch"], lw=0.8, label="batch mean(x²)")
        ax.plot(df["step"], df["stat_used"], lw=0.8, label="UN σ² used")
        ax.plot(df["step"], df["stat_running"], lw=0.8, label="running var")
        if "outlier" in df and df["outlier"].any():
            inj = df[df["outlier"] == 1]
            ax.scatter(inj["step"], inj["stat_batch"], s=30, facecolors="none", edgecolors="k", zorder=3,
                       label=f"injected outliers ({len(inj)} steps)")
        flag = "filtered" if "filtered" in df else "skip"
        sk = df[df[flag] == 1]
        if len(sk):
            ax.scatter(sk["step"], sk["stat_batch"], s=8, color="crimson", zorder=4,
                       label=f"outlier-filtered ({len(sk)} steps)")
        ax.set_yscale("log")
        ax.set_title(f"{task} / {norm}, seed {seed}: first norm", fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def speed_figure(speed: pd.DataFrame):
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    df = speed.copy()
    df["case"] = df.apply(lambda r: f"{r['model']} {r['batch']}×{int(r['length'])}", axis=1)
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 0.35 * len(df)), squeeze=False)
    sns.barplot(data=df, y="case", x="time_saving_pct", ax=axes[0][0], color="#4c72b0", orient="h")
    axes[0][0].axvline(31, ls="--", color="k", lw=1, label="paper 31 % (GPU)")
    axes[0][0].set_xlabel("latency saving of folded UN vs LN (%)")
    axes[0][0].legend(fontsize=7)
    sns.barplot(data=df, y="case", x="mem_saving_pct", ax=axes[0][1], color="#55a868", orient="h")
    axes[0][1].axvline(18, ls="--", color="k", lw=1, label="paper 18 % (GPU)")
    axes[0][1].set_xlabel("peak-memory saving of folded UN vs LN (%)")
    axes[0][1].legend(fontsize=7)
    for ax in axes[0]:
        ax.set_ylabel("")
    fig.tight_layout()
    return fig
