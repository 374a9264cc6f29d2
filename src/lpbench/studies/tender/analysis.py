"""The Tender study (Lee et al., ISCA 2024): the perplexity table, the granularity comparison (TENDER-1),
perplexity vs the number of groups G (TENDER-3) and the systolic-array cost comparison (TENDER-4).

The method itself is :mod:`lpbench.methods.tender`; its integer datapath :mod:`lpbench.accel.tender`; the
array model :mod:`lpbench.accel.systolic`. Array geometry, clock and bandwidth of the cost model come from
``tender_accelerator`` in config/hw_costs.yaml, energies per op from its ``energy_pj`` (Horowitz 45 nm).
Non-empty groups per tile: the mean measured on the calibrated Tender artifact of the model when one exists
(static TMax/CMax of every site and chunk position), else G (upper bound: every group non-empty).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from transformers import AutoConfig

import lpbench.plots  # noqa: F401  (selects the Agg backend before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from lpbench.accel.systolic import layer_comparison
from lpbench.archs import spec_for_model_type
from lpbench.bootstrap import ratio_ci
from lpbench.methods import ModelDims
from lpbench.methods.tender import artifact_nonempty_groups, resolve_groups
from lpbench.plots import interval_errorbars

ROLE_LABELS = {"tender": "Tender", "per_tensor": "per-tensor", "per_row": "per-row (token)",
               "per_column": "per-column (channel)", "smoothquant": "SmoothQuant", "fp32": "FP32"}
#: baselines the claim compares Tender with, per activation width (TENDER-1 of the digest: per-tensor and
#: per-row at INT8 and INT4, SmoothQuant at INT4)
CLAIM_BASELINES = {8: ("per_tensor", "per_row"), 4: ("per_tensor", "per_row", "smoothquant")}
#: weight quantizer of Tender's own rows (per-output-channel absmax RTN, as the official code)
TENDER_WEIGHTS = "rtn"


def weight_quantizer(kind: str, params: dict) -> str:
    """Short name of the weight quantizer an evaluated method uses: ``rtn`` = per-output-channel symmetric
    absmax RTN (Tender's, the ``rtn`` kind's per-row default, the W4A4 kinds' default); ``rtn-mse`` = the
    same with QuaRot's MSE clip search; ``gptq`` / ``gptq-mse``; other ``rtn`` kind settings spelled out."""
    if kind in ("fp32", "fp16", "bf16"):
        return kind
    if kind == "tender":
        clip = params.get("w_clip", "none")
        return TENDER_WEIGHTS if clip in (None, "none") else f"rtn-{clip}"
    if kind == "rtn":
        gran, ratio = params.get("w_granularity", "per_row"), float(params.get("w_clip_ratio", 1.0))
        base = "rtn" if gran == "per_row" else f"rtn-{gran}"
        return base if ratio == 1.0 else f"{base}-clip{ratio:g}"
    clip = params.get("w_clip", "none")
    w = params.get("weights", "rtn")
    return w if clip in (None, "none") else f"{w}-{clip}"


def _model_groups(model_dir: Path, params: dict) -> tuple[int | None, str]:
    if params.get("groups") is not None:
        return int(params["groups"]), "configured"
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg = cfg.get("text_config", cfg) if "hidden_size" not in cfg else cfg
    spec = spec_for_model_type(cfg["model_type"])
    return resolve_groups(int(params.get("bits", 8)), cfg["model_type"], cfg.get("hidden_size"),
                          cfg.get("num_hidden_layers"), cfg.get("intermediate_size") or cfg.get("ffn_dim"),
                          cfg.get("max_position_embeddings"), spec.mlp_kind)


def tender_perplexity(ppl: pd.DataFrame, roles: dict, model_dirs: dict, artifacts: dict,
                      variants: dict | None = None) -> pd.DataFrame:
    """One row per (model, method) with its role, widths, weight quantizer (``w_quant``) and, for Tender,
    G / scheme / scope. ``variants`` ({method: role}) are further rows of a role with another weight
    quantizer (TENDER-1 on equal weights): role "<role> (<w_quant> weights)", ``claim_role`` the role."""
    role_of = {meth: (role, int(bits)) for role, by_bits in roles.items() for bits, meth in by_bits.items()}
    variants = variants or {}
    rows = []
    fp32 = ppl[ppl["method"] == "fp32"].set_index("model")["perplexity"]
    for r in ppl.to_dict("records"):
        params = json.loads(r["params"])
        wq = weight_quantizer(r["kind"], params)
        row = {"model": r["model"], "method": r["method"], "kind": r["kind"], "w_quant": wq,
               "claim_role": role_of[r["method"]][0] if r["method"] in role_of else variants.get(r["method"])}
        variant = f"{variants[r['method']]} ({wq} weights)" if r["method"] in variants else None
        if r["kind"] == "tender":
            bits = int(params["bits"])
            G, src = _model_groups(model_dirs[r["model"]], params)
            art = artifacts.get((r["model"], r["method"]), {})
            scheme = ("round_down" if int(art["meta/scheme_round_down"]) else "round_up") \
                if "meta/scheme_round_down" in art else params.get("scheme")
            static = bool(params.get("static", True))
            row.update(role=variant or ("tender" if role_of.get(r["method"], ("",))[0] == "tender" else
                                        ("tender (sweep)" if static else "tender (runtime TMax)")), static=static,
                       a_bits=bits, w_bits=int(params.get("weight_bits") or bits), groups=G, groups_source=src,
                       scope=params.get("scope", "linear"), scheme=scheme,
                       calib_windows=int(art["meta/calib_windows"]) if "meta/calib_windows" in art else None)
        elif r["method"] == "fp32":
            row.update(role="fp32", a_bits=32, w_bits=32)
        else:
            role, bits = role_of.get(r["method"], ("other", None))
            row.update(role=variant or role, a_bits=params.get("a_bits", bits), w_bits=params.get("w_bits"))
        row.update(perplexity=r["perplexity"], ppl_ci_low=r.get("ppl_ci_low"), ppl_ci_high=r.get("ppl_ci_high"),
                   ppl_vs_fp32=(r["perplexity"] / fp32[r["model"]]
                   if r["model"] in fp32 and r["perplexity"] is not None and not pd.isna(r["perplexity"]) else None),
                   windows=r["windows"], seqlen=r["seqlen"], error=r["error"], caveat=r["caveat"])
        rows.append(row)
    cols = ["model", "method", "kind", "role", "claim_role", "a_bits", "w_bits", "w_quant", "groups", "groups_source",
            "scope", "scheme",
            "static", "calib_windows", "perplexity", "ppl_ci_low", "ppl_ci_high", "ppl_vs_fp32", "windows", "seqlen",
            "error", "caveat"]
    df = pd.DataFrame(rows)
    df = df.reindex(columns=cols)
    order = {"fp32": 0, "per_tensor": 1, "per_row": 2, "per_column": 3, "smoothquant": 4, "tender": 5,
             "tender (sweep)": 6, "tender (runtime TMax)": 7}
    df["_o"] = df["role"].map(order).fillna(df["claim_role"].map(order) + 0.5).fillna(9)
    df = df.sort_values(["model", "a_bits", "_o", "groups"], ascending=[True, False, True, True], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


def _row_ppl(r) -> float | None:
    v = r["perplexity"]
    return None if v is None or pd.isna(v) else float(v)


def granularity(df: pd.DataFrame, roles: dict) -> pd.DataFrame:
    """Per (model, bits, Tender weight quantizer): Tender next to every baseline role run with the *same*
    weight quantizer and width (``like_with_like`` 1); ``coarse_over_tender`` = the best claimed baseline's
    perplexity / Tender's (>= 1: Tender is at least as good as each of them); ``tender_over_per_column`` =
    how close Tender comes to per-column (1 = equal). When a configured baseline of the claim (``roles``)
    uses other weights than Tender, one more row compares the configured methods as they are
    (``like_with_like`` 0, comparison "configured baselines (unequal weights)"): reported, not a fair test."""
    rows = []
    widths = sorted({int(b) for by in roles.values() for b in by}, reverse=True)
    for model in dict.fromkeys(df["model"]):
        mdf = df[df["model"] == model]
        fp32 = mdf.set_index("method")["perplexity"].get("fp32")
        for bits in widths:
            cand = mdf[(mdf["a_bits"] == bits) & mdf["perplexity"].notna()]
            tenders = cand[cand["claim_role"] == "tender"]
            for t in tenders.to_dict("records"):
                same = cand[(cand["w_quant"] == t["w_quant"]) & (cand["w_bits"] == t["w_bits"])]
                picked = {role: same[same["claim_role"] == role].iloc[0] for role in roles
                          if role != "tender" and (same["claim_role"] == role).any()}
                rows.append(_gran_row(model, bits, fp32, t, picked, roles, 1, "equal weights"))
            main = roles.get("tender", {}).get(bits)
            if main is None or main not in set(tenders["method"]):
                continue
            t = tenders[tenders["method"] == main].iloc[0].to_dict()
            conf = {role: cand[cand["method"] == by[bits]].iloc[0] for role, by in roles.items()
                    if role != "tender" and bits in by and (cand["method"] == by[bits]).any()}
            if any(c["w_quant"] != t["w_quant"] or c["w_bits"] != t["w_bits"] for r, c in conf.items()
                   if r in CLAIM_BASELINES.get(bits, ())):
                rows.append(_gran_row(model, bits, fp32, t, conf, roles, 0, "configured baselines (unequal weights)"))
    return pd.DataFrame(rows)


def _gran_row(model, bits, fp32, t, picked: dict, roles: dict, like: int, comparison: str) -> dict:
    vals = {role: _row_ppl(r) for role, r in picked.items()}
    claimed = [r for r in CLAIM_BASELINES.get(bits, ()) if vals.get(r) is not None]
    missing = [r for r in CLAIM_BASELINES.get(bits, ()) if vals.get(r) is None]
    best = min(claimed, key=lambda r: vals[r]) if claimed else None
    tp = float(t["perplexity"])
    return {"model": model, "bits": bits, "weights": t["w_quant"], "tender_method": t["method"],
            "like_with_like": like, "comparison": comparison, "fp32": fp32, "ppl_tender": tp,
            **{f"ppl_{r}": vals.get(r) for r in roles if r != "tender"},
            "baseline_methods": ", ".join(f"{r}={picked[r]['method']} ({picked[r]['w_quant']})" for r in picked),
            "claim_baselines": ", ".join(claimed), "missing_baselines": ", ".join(missing),
            "best_claim_baseline": best, "best_claim_method": picked[best]["method"] if best else None,
            "coarse_over_tender": (vals[best] / tp) if best else None,
            "tender_over_per_column": (tp / vals["per_column"]) if vals.get("per_column") else None,
            "tender_over_fp32": (tp / fp32) if fp32 else None}


def groups_figure(df: pd.DataFrame):
    """Perplexity vs G (INT4, linear scope) with 95 % CIs, one panel per model with a sweep; reference lines."""
    sns.set_theme(style="whitegrid", context="paper")
    t = df[(df["kind"] == "tender") & (df["a_bits"] == 4) & (df["scope"] == "linear")
           & df["perplexity"].notna() & (df["static"] != False) & (df["w_quant"] == TENDER_WEIGHTS)]  # noqa: E712
    # the G sweep only: same calibration set as the INT4 Tender row of each model (the calibration-size
    # sweep shares G and would otherwise stack several points at one G)
    ref_cw = df[(df["role"] == "tender") & (df["a_bits"] == 4)].set_index("model")["calib_windows"]
    t = t.loc[[ref_cw.get(m) is None or cw == ref_cw.get(m) for m, cw in zip(t["model"], t["calib_windows"])]]
    models = [m for m in dict.fromkeys(t["model"]) if t.loc[t["model"] == m, "groups"].nunique() >= 2]
    if not models:
        models = list(dict.fromkeys(t["model"]))[:1]
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.0 * max(1, len(models)), 3.8), squeeze=False)
    refs = [("fp32", None, "k", "--"), ("per_tensor", 4, "#c44e52", ":"), ("per_row", 4, "#dd8452", "-."),
            ("per_column", 4, "#55a868", "--"), ("smoothquant", 4, "#8172b3", ":")]
    for ax, model in zip(axes[0], models):
        s = t[t["model"] == model].sort_values("groups")
        if len(s):
            sns.lineplot(data=s, x="groups", y="perplexity", marker="o", ax=ax, color="#4c72b0",
                         label="Tender INT4 (W4A4)", errorbar=None)
            interval_errorbars(ax, s["groups"], s["perplexity"], s["ppl_ci_low"], s["ppl_ci_high"])
            for _, r in s.iterrows():
                ax.annotate(f"{r['perplexity']:.3g}", (r["groups"], r["perplexity"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7)
        m = df[df["model"] == model]
        for role, bits, color, ls in refs:
            sel = m[(m["role"] == role) & ((m["a_bits"] == bits) if bits else True) & m["perplexity"].notna()]
            if len(sel):
                v = float(sel["perplexity"].iloc[0])
                ax.axhline(v, color=color, ls=ls, lw=1.2,
                           label=f"{ROLE_LABELS[role]}{' INT4' if bits else ''} ({v:.3g})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of groups G (log2)")
        ax.set_ylabel("perplexity (log)")
        ax.set_title(model)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


# ---- cost model (TENDER-4) ----------------------------------------------------------------------------
COST_LEAD = ["model", "bits", "G", "groups_per_tile", "speedup_vs_requant", "energy_vs_requant",
             "gain_vs_requant_min", "speedup_vs_per_tensor", "energy_vs_per_tensor", "speedup_vs_fp16",
             "energy_vs_fp16", "speedup_vs_requant_at_G", "energy_vs_requant_at_G", "tender_bound", "requant_bound"]


def model_shapes(model_dirs: list, extra_models: dict) -> dict:
    """{model: (dims, model_type, max positions, MLP kind)} of the configured models (their config.json)
    and of the extra shapes of the rule (e.g. Llama-2-7B)."""
    shapes = {}
    for d in map(Path, model_dirs):
        cfg = AutoConfig.from_pretrained(d)
        spec = spec_for_model_type(cfg.model_type)
        shapes[d.name] = (ModelDims.from_config(cfg, spec), cfg.model_type,
                          getattr(cfg, "max_position_embeddings", None), spec.mlp_kind)
    for name, e in extra_models.items():
        dims = ModelDims(**{k: e[k] for k in ("hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim",
                                              "vocab", "mlp_matrices")})
        shapes[name] = (dims, e["model_type"], e.get("max_positions"),
                        "gated" if e["mlp_matrices"] == 3 else "standard")
    return shapes


def measured_groups(artifacts: list[tuple[str, str, dict]]) -> dict:
    """{(model, bits): non-empty-group info} from calibrated artifacts given as (model, method, entry, artifact)."""
    measured = {}
    for m, meth, entry, art in artifacts:
        bits = int(entry.get("bits", 8))
        info = artifact_nonempty_groups(art)
        if info["mean"] is not None:
            measured[(m, bits)] = {**info, "method": meth}
    return measured


def cost_table(shapes: dict, measured: dict, bits_list, seqlen: int, accel: dict, energy: dict) -> pd.DataFrame:
    """One row per (model, bits): Tender vs explicit requantization / per-tensor INT / FP16 on the array,
    at the measured non-empty groups per tile when an artifact exists, else at G (upper bound)."""
    rows = []
    for model, (dims, model_type, max_pos, mlp_kind) in shapes.items():
        for bits in bits_list:
            if (model, bits) in measured:
                info = measured[(model, bits)]
                G, g = info["groups"], info["mean"]
                basis = f"measured: mean non-empty groups per chunk over every site of {info['method']}'s artifact"
                src = "artifact"
            else:
                G, src = resolve_groups(bits, model_type, dims.hidden, dims.layers, dims.intermediate, max_pos,
                                        mlp_kind)
                g = G
                basis = "G (upper bound: every group non-empty)"
            row = {"model": model, "bits": bits, "G": G, "G_source": src, "groups_per_tile": g,
                   "groups_basis": basis, "seqlen": seqlen, "hidden": dims.hidden,
                   "intermediate": dims.intermediate, "layers": dims.layers}
            row.update(layer_comparison(dims, seqlen, bits, g, accel, energy))
            at_G = layer_comparison(dims, seqlen, bits, G, accel, energy)
            row["speedup_vs_requant_at_G"] = at_G["speedup_vs_requant"]
            row["energy_vs_requant_at_G"] = at_G["energy_vs_requant"]
            row["gain_vs_requant_min"] = min(row["speedup_vs_requant"], row["energy_vs_requant"])
            rows.append(row)
    df = pd.DataFrame(rows)
    return df[COST_LEAD + [c for c in df.columns if c not in COST_LEAD]]


def cost_figure(df: pd.DataFrame):
    """Ratio of each baseline design to Tender, speedup and energy, per model and width."""
    sns.set_theme(style="whitegrid", context="paper")
    long = []
    names = {"requant": "explicit requant (same groups)", "per_tensor": "per-tensor INT (no groups)",
             "fp16": "FP16 array"}
    for r in df.to_dict("records"):
        for d, lab in names.items():
            long.append({"case": f"{r['model']}\nINT{r['bits']}", "design": lab, "metric": "speedup (cycles)",
                         "ratio": r[f"speedup_vs_{d}"]})
            long.append({"case": f"{r['model']}\nINT{r['bits']}", "design": lab, "metric": "energy efficiency",
                         "ratio": r[f"energy_vs_{d}"]})
    ld = pd.DataFrame(long)
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(df) * 2), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], ["speedup (cycles)", "energy efficiency"]):
        sns.barplot(data=ld[ld["metric"] == metric], x="case", y="ratio", hue="design", ax=ax)
        ax.axhline(1.0, color="k", lw=1, ls="--")
        ax.set_yscale("log")
        ax.set_title(f"Tender {metric}: baseline / Tender")
        ax.set_xlabel("")
        ax.set_ylabel("ratio (log; > 1 favours Tender)")
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---- calibration size -------------------------------------------------------------------------------------------
def calibration_rows(df: pd.DataFrame, seqlen: int, nll: dict | None = None) -> pd.DataFrame:
    """Tender perplexity vs the number of calibration windows (static TMax/CMax/bias, the default G and linear
    scope), per (model, bits); the runtime-TMax ablation (``static: false``) as the reference row
    (``calib_windows`` = runtime). ``rel_to_largest`` = perplexity / perplexity at the largest calibration set,
    with its paired 95 % block-bootstrap CI (``rel_ci_low`` / ``rel_ci_high``) when ``nll`` maps
    (model, method) to the evaluation's per-token NLLs: an interval that contains 1 means the calibration set
    of that row is indistinguishable from the largest one on the evaluated tokens."""
    t = df[(df["kind"] == "tender") & (df["scope"] == "linear") & df["perplexity"].notna()
           & (df["w_quant"] == TENDER_WEIGHTS)]
    rows = []
    for (model, bits), sub in t.groupby(["model", "a_bits"], sort=True):
        g_ref = sub.loc[sub["role"] == "tender", "groups"]
        if g_ref.empty:
            continue
        sub = sub[sub["groups"] == g_ref.iloc[0]]
        stat = sub[sub["static"] != False].sort_values("calib_windows")  # noqa: E712
        if stat["calib_windows"].nunique() < 1:
            continue
        largest = float(stat.iloc[-1]["perplexity"])
        ref = (nll or {}).get((model, stat.iloc[-1]["method"]))

        def rel_ci(method, ref=ref, model=model):
            own = (nll or {}).get((model, method))
            if own is None or ref is None or own.shape != ref.shape:
                return {"rel_ci_low": None, "rel_ci_high": None}
            ci = ratio_ci(own, ref)
            return {"rel_ci_low": ci["ci_low"], "rel_ci_high": ci["ci_high"]}
        for r in stat.to_dict("records"):
            rows.append({"model": model, "bits": int(bits), "method": r["method"], "tmax": "static (calibrated)",
                         "calib_windows": int(r["calib_windows"]), "calib_tokens": int(r["calib_windows"]) * seqlen,
                         "default": r["role"] == "tender", "perplexity": r["perplexity"],
                         "ppl_ci_low": r["ppl_ci_low"], "ppl_ci_high": r["ppl_ci_high"],
                         "rel_to_largest": r["perplexity"] / largest, **rel_ci(r["method"])})
        for r in sub[sub["static"] == False].to_dict("records"):  # noqa: E712
            rows.append({"model": model, "bits": int(bits), "method": r["method"], "tmax": "runtime (per chunk)",
                         "calib_windows": int(r["calib_windows"]), "calib_tokens": int(r["calib_windows"]) * seqlen,
                         "default": False, "perplexity": r["perplexity"], "ppl_ci_low": r["ppl_ci_low"],
                         "ppl_ci_high": r["ppl_ci_high"], "rel_to_largest": r["perplexity"] / largest,
                         **rel_ci(r["method"])})
    return pd.DataFrame(rows)


def calibration_figure(cal: pd.DataFrame):
    """Perplexity vs calibration windows (log2) with 95 % CIs, one panel per width; runtime TMax dashed (its CI
    shaded); default circled."""
    sns.set_theme(style="whitegrid", context="paper")
    widths = sorted(set(cal["bits"]), reverse=True) if len(cal) else [8]
    fig, axes = plt.subplots(1, len(widths), figsize=(4.6 * len(widths), 3.6), squeeze=False)
    colors = dict(zip(dict.fromkeys(cal["model"]) if len(cal) else [], ["#4C72B0", "#DD8452", "#55A868"]))
    for ax, bits in zip(axes[0], widths):
        for model, sub in cal[cal["bits"] == bits].groupby("model"):
            st = sub[sub["tmax"].str.startswith("static")].sort_values("calib_windows")
            ax.plot(st["calib_windows"], st["perplexity"], marker="o", color=colors[model], label=f"{model} static")
            interval_errorbars(ax, st["calib_windows"], st["perplexity"], st["ppl_ci_low"], st["ppl_ci_high"])
            d = st[st["default"]]
            ax.scatter(d["calib_windows"], d["perplexity"], s=120, facecolors="none", edgecolors="k", zorder=3)
            for r in sub[sub["tmax"].str.startswith("runtime")].to_dict("records"):
                ax.axhline(float(r["perplexity"]), color=colors[model], ls="--", lw=1, label=f"{model} runtime TMax")
                if pd.notna(r["ppl_ci_low"]) and pd.notna(r["ppl_ci_high"]):
                    ax.axhspan(float(r["ppl_ci_low"]), float(r["ppl_ci_high"]), color=colors[model], alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("calibration windows (x512 tokens, log2)")
        ax.set_ylabel("perplexity")
        ax.set_title(f"Tender INT{bits} (W{bits}A{bits}); circle = default")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
