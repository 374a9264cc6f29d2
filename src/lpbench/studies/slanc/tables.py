"""SLaNC's tables and figure from the measurement files of :func:`lpbench.studies.slanc.measure` and the
evaluations: per (model, case, variant) counts and perplexity, per-norm prediction check, Σx² figure, and the
runtime ops and energy each variant adds."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoConfig

from lpbench.archs import spec_for_model_type
from lpbench.hwcost import energy_pj
from lpbench.lowprec import F64
from lpbench.methods import ModelDims, build_method
from lpbench.methods.slanc import dynamic_op_counts
from lpbench.studies.slanc.measure import scope_of

VARIANT_ORDER = ("none", "slanc", "slanc-pow2", "dynamic")


def summary_rows(res: dict) -> list[dict]:
    """One row per (case, variant): counts summed over all norms of the model."""
    tot: dict[tuple, dict] = {}
    for key, d in res["counts"].items():
        _, case, variant = key.split("|")
        t = tot.setdefault((case, variant), {"vectors": 0, "overflow_count": 0, "underflow_count": 0,
                                             "sub_squares": 0, "elements": 0, "max_rel_err": 0.0,
                                             "norms_with_overflow": 0, "norms_with_underflow": 0,
                                             "zero_S": 0, "nonfinite_out": 0})
        t["vectors"] += d["vectors"]
        t["overflow_count"] += d["overflow"]
        t["underflow_count"] += d["underflow"]
        t["norms_with_overflow"] += int(d["overflow"] > 0)
        t["norms_with_underflow"] += int(d["underflow"] > 0)
        t["sub_squares"] += d["sub_squares"]
        t["elements"] += d["elements"]
        t["max_rel_err"] = max(t["max_rel_err"], d["max_rel_err"])
        t["zero_S"] += d.get("zero_S", 0)
        t["nonfinite_out"] += d.get("nonfinite_out", 0)
    rows = []
    cases = sorted({c for c, _ in tot}, key=lambda c: (c != "default", c))
    for case in cases:
        for variant in VARIANT_ORDER:
            if (case, variant) not in tot:
                continue
            t = tot[(case, variant)]
            rows.append({"case": case, "variant": variant, "norm_vectors": t["vectors"],
                         "overflow_count": t["overflow_count"], "underflow_count": t["underflow_count"],
                         "over_underflow_count": t["overflow_count"] + t["underflow_count"],
                         "norms_with_overflow": t["norms_with_overflow"],
                         "norms_with_underflow": t["norms_with_underflow"],
                         "subnormal_square_frac": t["sub_squares"] / max(1, t["elements"]),
                         "zero_S_count": t["zero_S"], "nonfinite_out_count": t["nonfinite_out"],
                         "max_rel_err": t["max_rel_err"]})
    return rows


def layer_rows(res: dict) -> list[dict]:
    """Per norm: SLaNC's predicted input RMS against the measured one, the Σx² range, and counts."""
    rows = []
    for name, p in res["norms"].items():
        ss = res["sumsq"][name].double()
        d = p["d"]
        rms = (ss / d).sqrt()
        c = {v: res["counts"].get(f"{name}|default|{v}", {}) for v in VARIANT_ORDER}
        pred = math.sqrt(p["sumsq_pred"] / d)
        rows.append({"norm": name, "layer": p["layer"], "role": p["role"], "d": d,
                     "predicted_rms": pred, "measured_rms_median": float(rms.median()),
                     "measured_rms_min": float(rms.min()), "measured_rms_max": float(rms.max()),
                     "median_over_predicted": float(rms.median()) / pred,
                     "max_over_predicted": float(rms.max()) / pred,
                     "sumsq_min": float(ss.min()), "sumsq_median": float(ss.median()),
                     "sumsq_max": float(ss.max()), "scale": p["scale"], "applied_scale": p["applied"],
                     "mode": p["mode"],
                     "none_overflow": c["none"].get("overflow", 0), "none_underflow": c["none"].get("underflow", 0),
                     "slanc_overflow": c["slanc"].get("overflow", 0), "slanc_underflow": c["slanc"].get("underflow", 0),
                     "dynamic_overflow": c["dynamic"].get("overflow", 0),
                     "dynamic_underflow": c["dynamic"].get("underflow", 0),
                     "slanc_zero_S": c["slanc"].get("zero_S", 0),
                     "slanc_eps_flushed": res.get("eps_flushed", {}).get(name),
                     "slanc_underflow_at": _locations(res.get("underflow_at", {}).get(name, [])),
                     "none_max_rel_err": c["none"].get("max_rel_err"),
                     "slanc_max_rel_err": c["slanc"].get("max_rel_err")})
    return rows


def _locations(recs: list[dict]) -> str:
    """'w<window>:t<pos>[h<head>] id=<token> rms=<raw rms>' for the recorded underflows of one norm."""
    return "; ".join(f"w{r['window']}:t{r['pos']}" + (f"h{r['head']}" if r.get("head") is not None else "")
                     + f" id={r['token']} rms={r['rms']:.3g}" + (" S=0" if r.get("zero_S") else "") for r in recs)


def sumsq_long(res: dict, model: str) -> list[dict]:
    """Long-form per-vector Σx² quantiles per norm for the figure: raw input and SLaNC-scaled input."""
    rows = []
    for i, (name, p) in enumerate(res["norms"].items()):
        ss = res["sumsq"][name].double()
        for variant, div in (("none (raw input)", 1.0), ("SLaNC (x/s)", p["applied"] ** 2)):
            q = torch.quantile(ss / div, torch.tensor([0.0, 0.5, 1.0], dtype=F64)) if ss.numel() < 2 ** 24 \
                else torch.stack([ss.min(), ss.median(), ss.max()]) / div
            rows.append({"model": model, "index": i, "norm": name, "role": p["role"], "variant": variant,
                         "d": p["d"], "min": float(q[0]), "median": float(q[1]), "max": float(q[2])})
    return rows


def sumsq_figure(long_df, fmt_max: float, fmt_tiny: float):
    """Per-norm Σx² (log scale), median line and min–max band, raw vs SLaNC-scaled, one panel per
    model, with the FP16 overflow limit and the variance-underflow limit d·2⁻¹⁴."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    models = list(dict.fromkeys(long_df["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5.0 * len(models), 3.8), squeeze=False)
    palette = dict(zip(["none (raw input)", "SLaNC (x/s)"], sns.color_palette("deep", 2)))
    for ax, model in zip(axes[0], models):
        sub = long_df[long_df["model"] == model]
        sns.lineplot(data=sub, x="index", y="median", hue="variant", palette=palette, ax=ax, lw=1.2,
                     legend=ax is axes[0][0])
        for variant, g in sub.groupby("variant"):
            g = g.sort_values("index")
            ax.fill_between(g["index"], g["min"], g["max"], color=palette[variant], alpha=0.2, lw=0)
        ax.axhline(fmt_max, color="crimson", ls="--", lw=1)
        ax.text(0, fmt_max * 1.6, "FP16 max 65504 (Σ overflows)", color="crimson", fontsize=7)
        dmin = sub["d"].min()
        ax.axhline(dmin * fmt_tiny, color="darkorange", ls=":", lw=1)
        ax.text(0, dmin * fmt_tiny / 6, f"d·2⁻¹⁴ (variance subnormal, d={dmin})", color="darkorange", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("norm index (execution order)")
        ax.set_ylabel("Σx² per vector (min–median–max)")
    fig.tight_layout()
    return fig


TABLE_COLUMNS = ["model", "scope", "case", "variant", "method", "fmt", "order", "norm_vectors", "overflow_count",
                 "underflow_count", "over_underflow_count", "norms_with_overflow", "norms_with_underflow",
                 "zero_S_count", "nonfinite_out_count", "eps_flushed_norms", "subnormal_square_frac", "max_rel_err",
                 "perplexity", "ppl_rel_to_fp32", "encoder_rel_err",
                 "windows", "seqlen", "scope_note", "note"]


def measurement_tables(measures: list[dict], evals: dict, fp32_method: str,
                       variant_methods: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(slanc table, slanc_layers table) from the measurement files of :func:`measure` and the
    evaluation metrics ``evals[(model, method)]``: one row per (model, case, variant), the perplexity
    (causal) or output error (encoder) of the variant's method, and the FP32 reference row."""
    rows, layers = [], []
    for res in measures:
        meta = res["meta"]
        model = meta["model"]
        ref = evals.get((model, fp32_method), {})
        scope, scope_note = scope_of(meta.get("placement", ""), [p["role"] for p in res["norms"].values()])
        n_flushed = sum(bool(v) for v in res.get("eps_flushed", {}).values())
        for row in summary_rows(res):
            method = variant_methods.get(row["variant"]) if row["case"] == "default" else None
            m = evals.get((model, method), {}) if method else {}
            out = {"model": model, "scope": scope, **row, "method": method or "", "fmt": res["fmt"],
                   "order": res["order"], "windows": meta["windows"], "seqlen": meta["seqlen"],
                   "scope_note": scope_note,
                   "eps_flushed_norms": n_flushed if (row["variant"] == "slanc" and row["case"] == "default") else None}
            if meta["causal"]:
                out["perplexity"] = m.get("perplexity")
                out["ppl_rel_to_fp32"] = (m["perplexity"] / ref["perplexity"] - 1) \
                    if m.get("perplexity") and ref.get("perplexity") else None
            else:
                out["encoder_rel_err"] = m.get("relative_error")
            if row["case"] != "default":
                out["note"] = (f"stress: function-preserving residual-stream reparametrization x{res['stress_k']:g} "
                               f"(FP32 output unchanged; input check rel. dev. {res['stress_check_rel']:.1e})")
            rows.append(out)
        if meta["causal"] and ref:
            rows.append({"model": model, "scope": scope, "scope_note": scope_note, "case": "default",
                         "variant": "fp32", "method": fp32_method,
                         "fmt": "fp32", "perplexity": ref.get("perplexity"), "ppl_rel_to_fp32": 0.0,
                         "windows": meta["windows"], "seqlen": meta["seqlen"]})
        layers += [{"model": model, "scope": scope, **r} for r in layer_rows(res)]
    df = pd.DataFrame(rows)
    return df[[c for c in TABLE_COLUMNS if c in df.columns]], pd.DataFrame(layers)


def cost_table(model_dirs: list, variant_methods: dict[str, str], methods: dict, costs: dict) -> pd.DataFrame:
    """Runtime ops and energy each variant adds per token (all norms), per model directory."""
    rows = []
    for model_dir in model_dirs:
        cfg = AutoConfig.from_pretrained(model_dir)
        arch = spec_for_model_type(cfg.model_type)
        dims = ModelDims.from_config(cfg, arch)
        model = Path(model_dir).name
        for variant, name in variant_methods.items():
            method = build_method(name, methods[name])
            ops = method.ops_per_token(dims, arch)
            c = dynamic_op_counts(dims, arch) if method.params["variant"] == "dynamic" else \
                {"compares": 0.0, "divides": 0.0, "mults": 0.0, "vectors": dynamic_op_counts(dims, arch)["vectors"]}
            rows.append({"model": model, "variant": variant, "method": name,
                         "norm_vectors_per_token": c["vectors"], "compares": c["compares"],
                         "divides": c["divides"], "mults": c["mults"],
                         "extra_ops_per_token": c["compares"] + c["divides"] + c["mults"],
                         "extra_energy_pj_per_token": energy_pj(ops, costs)["total"],
                         "gemm_macs_per_token": dims.gemm_macs})
    return pd.DataFrame(rows)
