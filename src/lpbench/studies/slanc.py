"""SLaNC measurements on real activations: every norm input of the FP32 model, pushed through the
emulated low-precision norm of each variant (none / SLaNC / SLaNC-pow2 / dynamic).

One pass of the FP32 model over the windows; a forward pre-hook on every norm (``arch.norm_names``)
receives the norm's real input x and computes, per normalized vector (a token; for Gemma's q_norm /
k_norm a token × head):

* the exact Σx² of the raw input (float64) — the distribution per layer, and the SLaNC prediction
  check (predicted vs measured RMS),
* for each variant, the norm in ``fmt`` (:func:`lpbench.methods.slanc.lowprec_norm`, bit-identical to
  :func:`lpbench.lowprec.emulated_norm`): overflow events (inf/NaN in Σx, Σy², the variance or S),
  underflow events (the variance, nonzero in exact arithmetic, reaches the format as subnormal or 0:
  IEEE's "tiny" result), the number of squares y² that are subnormal or flushed, the range of the Σ the
  format had to hold, and the normwise relative error of the output against the exact (float64) norm
  of the same input.

Where the underflows are: for SLaNC (default case) every vector whose variance reaches the format as
a subnormal or 0 is recorded with its window, token position (and head for q/k norms), token id and
raw RMS (``underflow_at``, first 16 per norm), so ``slanc_layers`` pinpoints them.

ε in FP16 (the choice made, stated): the norm unit holds fl(ε/s²) as a constant *of the format* (round
to nearest, gradual underflow), as an FP16 datapath with no wider register would; for ε = 1e-6 it is
subnormal already at s = 1 and flushes to 0 once ε/s² < 2⁻²⁵ (s ≳ 5.8). If fl(ε/s²) > 0, S = var + ε'
≥ ε' > 0 and 1/√S is finite (≤ 4096 in fp16), so a non-finite output can only come from S = 0: a
variance that underflowed to 0 *and* a flushed ε. ``zero_S_count`` counts exactly those vectors (its own
finding: the flushed ε is what turns an underflow into inf/NaN), ``eps_flushed_norms`` the norms
whose ε constant is 0.

Scope: the paper derives its scales for three block types (standard MLP, gated MLP, attention) in
pre-norm (Llama) models; post-norm BERT blocks are the same block types. Models whose norms include
other placements — Gemma-3's sandwich post-norms and per-head q/k norms — are measured and reported as
``scope = extension`` rows; the claims are decided on ``in-scope`` rows (:func:`scope_of`).

Stress case (clearly labelled ``stress``): the function-preserving reparametrization "residual stream
×k". In a pre-norm model, multiplying the token embedding and every linear that writes into the
residual stream (o_proj, down_proj) by k multiplies every residual-stream vector by k and leaves the
FP32 output unchanged (norms are scale invariant; only ε moves, by a relative ε(1 − 1/k²)/σ²); in Gemma's
sandwich layout the embedding and the post-norms' gains are scaled instead. Models trained under
different parametrizations differ by exactly such factors (Gemma multiplies its embedding by √d).
SLaNC's scales are recomputed from the reparametrized model (embedding multiplier k, scaled weights); the norm inputs of the reparametrized
model are k·x for residual-stream norms and x for the others, which is checked on the first window by
an actual forward pass of the reparametrized model (``stress_check_rel``).
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
from tqdm import tqdm
from transformers import AutoConfig

from lpbench.archs import ArchSpec, get_submodule, spec_for_model_type
from lpbench.hwcost import energy_pj
from lpbench.lowprec import F64, get_format, native_norm, round_to
from lpbench.methods import ModelDims, build_method
from lpbench.methods.slanc import dynamic_op_counts, lowprec_norm, slanc_scales, underflow_tokens
from lpbench.norms import norm_params

RESIDUAL_ROLES = ("attn_in", "mlp_in", "final")
#: norm roles outside the paper's three block types in a pre-norm stream (or BERT post-norm)
EXTENSION_ROLES = ("q_norm", "k_norm")
UNDERFLOW_RECORDS = 16


def scope_of(placement: str, roles) -> tuple[str, str]:
    """("in-scope" | "extension", why) of a model for SLaNC's claims, from its norm placement and roles."""
    extra = sorted({r for r in roles if r in EXTENSION_ROLES})
    if placement == "sandwich" or extra:
        what = ["sandwich post-norms" if placement == "sandwich" else "", "per-head " + "/".join(extra) if extra else ""]
        return "extension", "outside the paper's block types: " + " and ".join(w for w in what if w)
    return "in-scope", f"{placement}-norm with the paper's block types (attention, MLP)"
STRESS_FAMILIES = ("llama", "qwen2", "gemma3")   # pre/sandwich norm, no additive position embedding


def residual_norms(scales: dict) -> set[str]:
    return {n for n, p in scales.items() if p["role"] in RESIDUAL_ROLES}


class _Attr:
    """A temporary attribute on a module (undone by :func:`restore`)."""

    def __init__(self, mod, name, value):
        self.mod, self.name = mod, name
        setattr(mod, name, value)

    def remove(self):
        delattr(self.mod, self.name)


@torch.no_grad()
def reparametrize(model: nn.Module, arch: ArchSpec, k: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Scale the residual stream by k (function preserving, see the module docstring), in place.
    Returns (parameter, original copy) pairs for :func:`restore`."""
    if arch.family not in STRESS_FAMILIES:
        raise ValueError(f"residual-stream reparametrization not implemented for family '{arch.family}'")
    saved = []

    def scale(t: torch.Tensor, fn):
        saved.append((t, t.detach().clone()))
        t.copy_(fn(t))

    # an embedding multiplier k (a forward hook, like Gemma's √d factor): scaling the table itself would
    # also scale a tied LM head (SmolLM2, Gemma 3 tie them)
    emb = get_submodule(model, arch.embed)
    saved.append(emb.register_forward_hook(lambda _m, _a, out: out * k))
    saved.append(_Attr(emb, "lpbench_multiplier", k))    # seen by SLaNC's weight-only estimate
    for block in arch.blocks(model):
        if arch.placement == "sandwich":
            for role in ("attn_out", "mlp_out"):
                norm = get_submodule(block, arch.norms[role])
                off = norm_params(norm)[4]
                scale(norm.weight, lambda t, off=off: k * (t + off) - off)
        else:
            down = arch.mlp.get("down") or arch.mlp["fc2"]
            for rel in (arch.attn["o"], down):
                lin = get_submodule(block, rel)
                scale(lin.weight, lambda t: t * k)
                if getattr(lin, "bias", None) is not None:
                    scale(lin.bias, lambda t: t * k)
    return saved


@torch.no_grad()
def restore(saved) -> None:
    for item in saved:
        if isinstance(item, tuple):
            item[0].copy_(item[1])
        else:
            item.remove()        # the embedding hook


def _forward(model, arch, batch):
    return model(batch, use_cache=False) if arch.causal else model(batch)


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    err = (out - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-300)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))


class _Acc:
    """Running per-(norm, case, variant) counters."""

    def __init__(self):
        self.d = {"vectors": 0, "overflow": 0, "underflow": 0, "sub_squares": 0, "elements": 0,
                  "zero_S": 0, "nonfinite_out": 0,
                  "max_rel_err": 0.0, "sumsq_fmt_max": 0.0, "sumsq_fmt_min_pos": math.inf}

    def add(self, out, st, ref, fmt):
        d = self.d
        d["vectors"] += int(st["overflow"].numel())
        d["overflow"] += int(st["overflow"].sum())
        d["underflow"] += int(underflow_tokens(st, fmt).sum())
        d["sub_squares"] += int(st["underflow"].sum())
        d["zero_S"] += int(((st["S"] == 0) & ~st["overflow"]).sum())
        d["nonfinite_out"] += int((~torch.isfinite(out).all(-1)).sum())
        d["elements"] += int(out.numel())
        d["max_rel_err"] = max(d["max_rel_err"], float(_rel_err(out, ref).max()))
        ex = st["sumsq_exact"]
        if ex.numel():
            d["sumsq_fmt_max"] = max(d["sumsq_fmt_max"], float(ex.max()))
            pos = ex[ex > 0]
            if pos.numel():
                d["sumsq_fmt_min_pos"] = min(d["sumsq_fmt_min_pos"], float(pos.min()))


@torch.no_grad()
def measure(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, scales: dict, fmt: str = "fp16",
            order: str = "pairwise", stress_k: float | None = None, target_sumsq: float = 1.0,
            apply_as: str = "fold", progress: bool = True) -> dict:
    """Run ``windows`` through the FP32 ``model`` and measure every norm (see the module docstring).
    ``scales``: SLaNC's artifact scales (:func:`lpbench.methods.slanc.slanc_scales`) of this model."""
    names = arch.norm_names(model)
    params = {n: norm_params(get_submodule(model, n)) for n in names}
    cases = {"default": {"k": 1.0, "scales": scales}}
    stress_check = None
    first_inputs: dict[str, torch.Tensor] = {}
    if stress_k and arch.family in STRESS_FAMILIES:
        saved = reparametrize(model, arch, stress_k)
        try:
            stress_scales = slanc_scales(model, arch, target_sumsq, apply_as)
            captured: dict[str, torch.Tensor] = {}
            hs = [get_submodule(model, n).register_forward_pre_hook(
                lambda _m, a, n=n: captured.__setitem__(n, a[0].detach().clone())) for n in names]
            try:
                _forward(model, arch, windows[:1])
            finally:
                for h in hs:
                    h.remove()
        finally:
            restore(saved)
        cases[f"stress x{stress_k:g}"] = {"k": float(stress_k), "scales": stress_scales}
    resid = residual_norms(scales)
    acc: dict[tuple, _Acc] = {}
    where: dict[str, list] = {n: [] for n in names}
    eps_flushed: dict[str, bool] = {}
    state = {"window": 0}
    sumsq: dict[str, list] = {n: [] for n in names}
    first = {"on": True}

    def hook(name):
        kind, eps, weight, bias, offset = params[name]
        w = None if weight is None else weight.detach().to(F64) + offset

        def fn(_mod, args):
            x = args[0].detach().float()
            xd = x.to(F64)
            sumsq[name].append((xd * xd).sum(-1).flatten().float())
            if first["on"] and stress_k:
                first_inputs[name] = x.clone()
            for case, cfg in cases.items():
                k = cfg["k"] if name in resid else 1.0
                xc = x * k if k != 1.0 else x
                ref, _ = native_norm(xc, kind, "fp64", "pairwise", eps, w, bias)
                sc = cfg["scales"][name]
                runs = {"none": ("none", 1.0), "slanc": ("static", sc["applied"]),
                        "slanc-pow2": ("static", sc["scale_pow2"]), "dynamic": ("dynamic", 1.0)}
                if case != "default":
                    runs.pop("slanc-pow2")
                done = {}
                for variant, (v, s) in runs.items():
                    if (v, s) in done:          # e.g. slanc-pow2 where SLaNC already uses the shift
                        out, st = done[(v, s)]
                    else:
                        out, st = done[(v, s)] = lowprec_norm(xc, kind, fmt, order, eps, w, bias, v, s, False)
                    acc.setdefault((name, case, variant), _Acc()).add(out, st, ref, fmt)
                    if case == "default" and variant == "slanc":
                        eps_flushed[name] = bool(eps > 0 and float(round_to(
                            torch.tensor(eps / (s * s), dtype=F64), fmt)) == 0.0)
                        under = underflow_tokens(st, fmt)
                        if under.any() and len(where[name]) < UNDERFLOW_RECORDS:
                            raw = (xd * xd).sum(-1)
                            for idx in under.nonzero().tolist()[: UNDERFLOW_RECORDS - len(where[name])]:
                                pos = idx[-1]
                                head = idx[1] if len(idx) == 3 else None
                                where[name].append({"window": state["window"], "pos": pos, "head": head,
                                                    "token": int(windows[state["window"], pos]),
                                                    "rms": float((raw[tuple(idx)] / x.shape[-1]).sqrt()),
                                                    "zero_S": bool(st["S"][tuple(idx)] == 0)})
        return fn

    handles = [get_submodule(model, n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        for i in tqdm(range(len(windows)), desc="slanc measure", disable=not progress):
            state["window"] = i
            _forward(model, arch, windows[i: i + 1])
            first["on"] = False
    finally:
        for h in handles:
            h.remove()
    if stress_k and len(cases) > 1:
        worst = 0.0
        for n in names:
            k = stress_k if n in resid else 1.0
            ref = first_inputs[n].to(F64) * k
            worst = max(worst, float(((captured[n].to(F64) - ref).norm() / ref.norm()).item()))
        stress_check = worst
    return {"fmt": fmt, "order": order, "stress_k": stress_k, "stress_check_rel": stress_check,
            "norms": {n: {k: v for k, v in scales[n].items()} for n in names},
            "stress_scales": {n: p for n, p in cases.get(f"stress x{stress_k:g}", {}).get("scales", {}).items()}
            if stress_k else {},
            "sumsq": {n: torch.cat(v) for n, v in sumsq.items()},
            "counts": {f"{n}|{c}|{v}": a.d for (n, c, v), a in acc.items()},
            "underflow_at": where, "eps_flushed": eps_flushed,
            "tiny": get_format(fmt).tiny, "max": get_format(fmt).max}


# ---- aggregation: tables and figure --------------------------------------------------------------------
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
                     "none_max_rel_err": c["none"].get("max_rel_err"), "slanc_max_rel_err": c["slanc"].get("max_rel_err")})
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


# ---- tables ------------------------------------------------------------------------------------------
TABLE_COLUMNS = ["model", "scope", "case", "variant", "method", "fmt", "order", "norm_vectors", "overflow_count",
                 "underflow_count", "over_underflow_count", "norms_with_overflow", "norms_with_underflow",
                 "zero_S_count", "nonfinite_out_count", "eps_flushed_norms", "subnormal_square_frac", "max_rel_err", "perplexity", "ppl_rel_to_fp32", "encoder_rel_err",
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
