"""One accelerator, five papers: whole-model energy per token and the accuracy–energy Pareto front.

:func:`energy_rows` prices every evaluated causal (model, method) — stacks included — with
:func:`lpbench.hwcost.token_energy` (the datapath of each kind: :mod:`lpbench.methods.datapath`) at the
configured batch size and context, and at batch 1. :func:`pareto_table` pairs that energy with the
perplexity ratio to FP32 on the same tokens and its 95 % paired block-bootstrap CI
(:func:`lpbench.bootstrap.ratio_ci` on the stored per-token NLLs), and flags the non-dominated points: a
point is on the front when no other finite point has lower-or-equal energy *and* ratio with one of them
strictly lower (point estimates; the CIs are drawn, not used). Accuracy references that no integer GEMM
runs as priced (per-column activation scales) are drawn hollow and kept off the front.
:func:`pareto_figure` draws one model.
"""
from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd

import lpbench.plots  # noqa: F401  (selects the Agg backend before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker as mticker  # noqa: E402
import seaborn as sns  # noqa: E402

from lpbench.bootstrap import as_series, ratio_ci
from lpbench.hwcost import COMPONENTS, token_energy
from lpbench.methods import build_method
from lpbench.methods.datapath import NoDatapath, datapath
from lpbench.plots import interval_errorbars

#: method kind -> the paper (or baseline family) it belongs to, for colours and the table
FAMILY = {"fp32": "float", "fp16": "float", "bf16": "float", "rtn": "RTN baseline", "w4a4": "RRS paper",
          "smoothquant": "RRS paper", "rs": "RRS paper", "quarot": "RRS paper", "rrs": "RRS paper",
          "tender": "Tender paper", "slanc": "SLaNC paper", "iterl2norm": "IterL2Norm paper", "stack": "stack"}
FAMILY_ORDER = list(dict.fromkeys(FAMILY.values()))
MARKERS = dict(zip(FAMILY_ORDER, "oXsD^v*"))


def energy_rows(dims: dict, archs: dict, methods: dict, pairs, costs: dict, batches, context: int) -> list[dict]:
    """One row per (model, method, batch): pJ per generated token by component and in total (INT4 as INT8,
    the upper bound; ``total_pj_quadratic`` with the quadratic-in-width INT4 estimate), and the datapath."""
    rows = []
    for model, name in pairs:
        m = build_method(name, methods[name])
        comps = " -> ".join(c.name for c in m.components) if m.kind == "stack" else ""
        try:
            dp = datapath(m, dims[model], archs[model])
        except NoDatapath as e:               # a kind added without a datapath: an empty row that says why
            rows += [{"model": model, "method": name, "kind": m.kind, "components": comps, "batch": b,
                      "context": context, "total_pj": float("nan"), "total_pj_quadratic": float("nan"),
                      "realizable": False, "notes": str(e)} for b in batches]
            continue
        for b in batches:
            e = token_energy(dims[model], dp, costs, b, context)
            q = token_energy(dims[model], dp, costs, b, context, int_mult="quadratic")
            rows.append({"model": model, "method": name, "kind": m.kind, "components": comps, "batch": b,
                         "context": context, **{f"{c}_pj": e[c] for c in COMPONENTS}, "total_pj": e["total"],
                         "total_pj_quadratic": q["total"], "gemm": dp.gemm, "weight_bits": dp.weight_bits,
                         "kv_bits": dp.kv_bits, "attention": dp.attention, "norm_fmt": dp.norm_fmt,
                         "realizable": dp.realizable, "notes": "; ".join(dp.notes)})
    return rows


def on_front(energy, ratio) -> np.ndarray:
    """Non-dominated points when both are minimized (NaN: never on the front)."""
    e, r = np.asarray(energy, float), np.asarray(ratio, float)
    ok = np.isfinite(e) & np.isfinite(r)
    out = np.zeros(len(e), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (e <= e[i]) & (r <= r[i]) & ((e < e[i]) | (r < r[i]))
        out[i] = not dominated.any()
    return out


def pareto_table(energy: pd.DataFrame, results: list[dict], reference: str = "fp32") -> pd.DataFrame:
    """Per (model, corpus, method, batch): energy, perplexity, ratio to ``reference`` with its CI, on_front."""
    evals = {(r["model"]["id"], r["corpus"]["id"], r["method"]["name"]): r for r in results
             if r["metrics"].get("kind") == "perplexity"}
    e = energy.set_index(["model", "method", "batch"])
    rows = []
    for (model, corpus, name), r in evals.items():
        ref = evals.get((model, corpus, reference))
        a = as_series(r["metrics"].get("token_nll"))
        b = as_series(ref["metrics"].get("token_nll")) if ref else None
        ci = ratio_ci(a, b) if a is not None and b is not None else {}
        for batch in sorted(energy.loc[energy["model"] == model, "batch"].unique()):
            if (model, name, batch) not in e.index:
                continue
            x = e.loc[(model, name, batch)]
            rows.append({"model": model, "corpus": corpus, "method": name, "kind": r["method"]["kind"],
                         "family": FAMILY.get(r["method"]["kind"], r["method"]["kind"]),
                         "components": x["components"], "batch": int(batch), "context": int(x["context"]),
                         "energy_uj_per_token": x["total_pj"] / 1e6, "perplexity": r["metrics"].get("perplexity"),
                         "ppl_ratio": ci.get("ratio", math.nan), "ci_low": ci.get("ci_low", math.nan),
                         "ci_high": ci.get("ci_high", math.nan), "tokens": ci.get("tokens"),
                         "finite": bool(ci) and math.isfinite(ci["ratio"]),
                         "status": "no energy model for its kind" if not math.isfinite(x["total_pj"]) else
                         "ok" if ci and math.isfinite(ci["ratio"]) else
                         "no FP32 reference" if a is not None else "NaN/inf logits",
                         "realizable": bool(x.get("realizable", True))})
    df = pd.DataFrame(rows)
    if df.empty:
        return df.assign(on_front=pd.Series(dtype=bool))
    df["on_front"] = False
    for _, idx in df.groupby(["model", "corpus", "batch"]).groups.items():
        ratio = df.loc[idx, "ppl_ratio"].where(df.loc[idx, "realizable"])     # references stay off the front
        df.loc[idx, "on_front"] = on_front(df.loc[idx, "energy_uj_per_token"], ratio)
    return df.sort_values(["model", "corpus", "batch", "energy_uj_per_token", "ppl_ratio"]).reset_index(drop=True)


def front_changes(df: pd.DataFrame, batch: int) -> bool:
    """Whether the set of front methods at batch 1 differs from the one at ``batch`` (one model's rows)."""
    front = lambda b: set(df.loc[(df["batch"] == b) & df["on_front"], "method"])  # noqa: E731
    return 1 in set(df["batch"]) and front(1) != front(batch)


def spread(wanted: np.ndarray, gap: float) -> np.ndarray:
    """Positions as close as possible to ``wanted`` (sorted ascending) with neighbours ≥ ``gap`` apart:
    overlapping runs are merged and centred on the mean of what they want (pool adjacent violators)."""
    blocks: list[list] = []                      # [start index, count, mean wanted offset]
    for i, w in enumerate(wanted):
        blocks.append([i, 1, float(w)])
        while len(blocks) > 1:
            (i0, n0, m0), (_, n1, m1) = blocks[-2], blocks[-1]
            if m0 + n0 * gap <= m1:              # the earlier run's last label ends below the next one
                break
            n = n0 + n1
            blocks[-2:] = [[i0, n, (n0 * m0 + n1 * (m1 - n0 * gap)) / n]]
    out = np.empty(len(wanted))
    for i0, n, m in blocks:
        out[i0:i0 + n] = m + gap * np.arange(n)
    return out


def _labels(ax, xs, ys, names, fontsize: float = 5.0, column_px: float = 40.0) -> None:
    """Method names to the right of their points; points within ``column_px`` of each other horizontally
    form a column whose labels are spread vertically around them (a thin leader line to a moved label)."""
    if not len(xs):
        return
    disp = ax.transData.transform(np.column_stack([xs, ys]))
    gap = fontsize * 1.3 * ax.figure.dpi / 72
    order = np.argsort(disp[:, 0])
    columns, current = [], [order[0]]
    for i in order[1:]:
        if disp[i, 0] - disp[current[0], 0] > column_px:
            columns.append(current)
            current = []
        current.append(i)
    columns.append(current)
    inv = ax.transData.inverted()
    for col in columns:
        col = sorted(col, key=lambda i: disp[i, 1])
        x_text = max(disp[i, 0] for i in col) + 5
        for i, y in zip(col, spread(np.array([disp[i, 1] for i in col]), gap)):
            moved = abs(y - disp[i, 1]) > 0.5 or abs(x_text - disp[i, 0] - 5) > 0.5
            ax.annotate(names[i], (xs[i], ys[i]), xytext=inv.transform((x_text, y)), textcoords="data",
                        fontsize=fontsize, va="center", ha="left",
                        arrowprops=dict(arrowstyle="-", lw=0.3, color="0.6") if moved else None)


def pareto_figure(df: pd.DataFrame, model: str, batch: int):
    """Energy per token (log) vs perplexity ratio to FP32 with its 95 % CI (log), one labelled point per
    method and stack, the front as a staircase; a batch-1 panel beside the default batch when the front
    changes there. Non-finite evaluations are listed, not drawn."""
    sns.set_theme(style="whitegrid", context="paper")
    sub = df[df["model"] == model]
    batches = [batch] + ([1] if batch != 1 and front_changes(sub, batch) else [])
    corpora = list(dict.fromkeys(sub["corpus"]))
    fig, axes = plt.subplots(len(corpora), len(batches), figsize=(7.5 * len(batches), 8.5 * len(corpora)),
                             squeeze=False)
    palette = dict(zip(FAMILY_ORDER, sns.color_palette("tab10", len(FAMILY_ORDER))))
    for row, corpus in zip(axes, corpora):
        for ax, b in zip(row, batches):
            d = sub[(sub["corpus"] == corpus) & (sub["batch"] == b)]
            ok = d[d["finite"]]
            for fam in FAMILY_ORDER:
                f = ok[ok["family"] == fam]
                for real, f in ((True, f[f["realizable"]]), (False, f[~f["realizable"]])):
                    if len(f):
                        big = fam == "stack"                 # stacks sit on their methods: drawn on top
                        ax.scatter(f["energy_uj_per_token"], f["ppl_ratio"], s=45 if big else 22,
                                   marker=MARKERS[fam], zorder=4 if big else 3,
                                   label=fam if real else f"{fam} (accuracy reference, not realizable)",
                                   color=palette[fam] if real else "none", edgecolor=palette[fam] if not real
                                   else "k", linewidth=0.3 if real else 0.8)
            interval_errorbars(ax, ok["energy_uj_per_token"], ok["ppl_ratio"], ok["ci_low"], ok["ci_high"])
            front = ok[ok["on_front"]].sort_values("energy_uj_per_token")
            ax.step(front["energy_uj_per_token"], front["ppl_ratio"], where="post", color="crimson", lw=1,
                    zorder=2, label="non-dominated front")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(1.0, color="k", ls=":", lw=0.8)
            for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
                plain = mticker.FuncFormatter(lambda v, _: f"{v:.0f}" if v >= 100 else f"{v:.4g}")
                axis.set_major_formatter(plain)
                axis.set_minor_formatter(plain if math.log10(hi / lo) < 1 else mticker.NullFormatter())
            ax.figure.canvas.draw()
            _labels(ax, ok["energy_uj_per_token"].to_numpy(), ok["ppl_ratio"].to_numpy(), ok["method"].tolist())
            bad = d[~d["finite"]].groupby("status")["method"].apply(", ".join)
            if len(bad):
                text = "; ".join(f"{status} (not drawn): {names}" for status, names in bad.items())
                ax.text(0.01, 0.99, textwrap.fill(text, 150), transform=ax.transAxes, fontsize=5, va="top",
                        color="crimson")
            ax.set_xlabel(f"energy per generated token (µJ, log; batch {b}, context {int(d['context'].iloc[0])})"
                          if len(d) else "energy per generated token (µJ, log)")
            ax.set_ylabel("perplexity / FP32 perplexity (log; 95 % CI)")
            same = " (front unchanged at batch 1)" if len(batches) == 1 and b != 1 and 1 in set(sub["batch"]) else ""
            ax.set_title(f"{model} on {corpus}, batch {b}" + (" (memory-bound)" if b == 1 else same))
    handles = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=5 if len(batches) > 1 else 3, fontsize=7,
               frameon=False)
    return fig
