"""The RRS study (Rotated Runtime Smooth, Yi et al., ICLR 2025): outlier statistics of linear inputs,
the perplexity table and figure, the activation-magnitude figure (RRS-3) and the cost table (RRS-4).

Outlier statistics

The RRS paper's argument: linear inputs carry *channel-wise* outliers (whole channels large — smoothing by
a per-channel scale removes them) and *spike* outliers (a few tokens with huge values in a few channels —
a runtime channel max computed over the sequence is then dominated by the spike, and every other token of
that channel is divided by it and quantized to ~0: the "victims"). Rotation spreads a spike over all
channels, after which runtime smoothing works. This module measures that on real activations.

For an input X (tokens × channels) of a linear and each *view* of it —

``original``  X as the quantizer of plain W4A4 sees it
``rs``        X / s̃ (runtime smoothing, groups of ``group_size``), what RS quantizes
``rotated``   the input the quantizer sees in the QuaRot-rotated model (exactly computed from X: gate/up
              input ``(X/γ)·Q`` since γ is folded into the weights; down_proj input ``X·H_I``; o_proj input
              ``X·(H_heads⊗H_hd)``, SmolLM2's 9 heads ``X·(I⊗H_hd)·H`` — the same matrices and seed as
              :mod:`lpbench.methods.quarot`)
``rrs``       the rotated view, runtime-smoothed

— :func:`outlier_stats` reports: ``channel_ratio`` = max_j c_j / median_j c_j with c_j = max_t |X_tj|
(channel-wise outliers), ``token_ratio`` = max_t m_t / median_t m_t with m_t = max_j |X_tj| (spikes),
``kurtosis`` (Pearson, of all values), and ``int4_rel_err`` = ‖Q(view) ⊙ s̃ − X_view‖ / ‖X_view‖ of the
symmetric per-token INT4 fake quantization each method applies (with the scale re-applied for rs/rrs).
"""
from __future__ import annotations

import json
import math

import pandas as pd
import torch
import torch.nn as nn

import lpbench.plots  # noqa: F401  (selects the Agg backend before pyplot is imported)
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from lpbench.archs import ArchSpec, activations_pass, get_submodule
from lpbench.bootstrap import as_series, seed_perplexity_ci
from lpbench.hwcost import energy_pj
from lpbench.methods import build_method
from lpbench.methods.quarot import down_proj_transform, o_proj_transform
from lpbench.methods.runtime_smooth import runtime_smooth_scales
from lpbench.plots import grouped_bars
from lpbench.quant import QuantSpec, fake_quant
from lpbench.rotation import hadamard_matrix, rotation_matrix
from lpbench.tables import ppl_ci

VIEWS = ("original", "rs", "rotated", "rrs")
ROLES = ("o", "gate", "down")


def pearson_kurtosis(x: torch.Tensor) -> float:
    x = x.double().flatten()
    c = x - x.mean()
    var = (c * c).mean()
    return float((c ** 4).mean() / (var * var)) if var > 0 else float("nan")


def outlier_stats(x: torch.Tensor) -> dict[str, float]:
    """Statistics of one view (tokens × channels)."""
    a = x.double().abs()
    ch = a.amax(0)
    tok = a.amax(1)
    return {"channel_ratio": float(ch.max() / ch.median().clamp_min(1e-12)),
            "token_ratio": float(tok.max() / tok.median().clamp_min(1e-12)),
            "kurtosis": pearson_kurtosis(x)}


def quant_error(x: torch.Tensor, smoothed: bool, bits: int = 4, group_size: int = 128) -> float:
    spec = QuantSpec(bits=bits, granularity="per_row")
    if smoothed:
        s = runtime_smooth_scales(x, group_size)
        y = fake_quant(x / s, spec) * s
    else:
        y = fake_quant(x, spec)
    return float((y - x).double().norm() / x.double().norm())


class Rotations:
    """The rotations a quantizer input sees in the QuaRot/RRS model, per linear role (the same matrices as
    :func:`lpbench.methods.quarot.quarot_rotate`: R1 from ``seed``, deterministic online Hadamards)."""

    def __init__(self, model: nn.Module, arch: ArchSpec, seed: int):
        cfg = model.config
        self.d = cfg.hidden_size
        self.hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.q = rotation_matrix(self.d, "hadamard", seed).float()
        self.h_hd = hadamard_matrix(self.hd).float()
        self.seed = seed
        self._online: dict[tuple[str, int], nn.Module] = {}
        self.arch = arch

    def online(self, role: str, n: int) -> nn.Module:
        if (role, n) not in self._online:
            self._online[(role, n)] = (o_proj_transform(n // self.hd, self.hd) if role == "o"
                                       else down_proj_transform(n))
        return self._online[(role, n)]

    def rotate(self, role: str, x: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
        if role in ("gate", "up", "q", "k", "v", "fc1"):
            return (x / gamma) @ self.q
        if role == "o":
            y = (x.reshape(*x.shape[:-1], -1, self.hd) @ self.h_hd).reshape(x.shape)
            return self.online("o", x.shape[-1])(y)
        return self.online(role, x.shape[-1])(x)


def views(x: torch.Tensor, rotated: torch.Tensor, group_size: int = 128) -> dict[str, torch.Tensor]:
    return {"original": x, "rs": x / runtime_smooth_scales(x, group_size),
            "rotated": rotated, "rrs": rotated / runtime_smooth_scales(rotated, group_size)}


@torch.inference_mode()
def capture_inputs(model: nn.Module, arch: ArchSpec, window: torch.Tensor,
                   roles=ROLES) -> dict[tuple[int, str], torch.Tensor]:
    """Inputs (tokens × channels, float32) of the linears of ``roles`` in every block for one window."""
    lin = arch.block_linears()
    got: dict[tuple[int, str], torch.Tensor] = {}
    handles = []
    for i, block in enumerate(arch.blocks(model)):
        for role in roles:
            def hook(_m, args, key=(i, role)):
                got[key] = args[0].detach().reshape(-1, args[0].shape[-1]).float().clone()
            handles.append(get_submodule(block, lin[role]).register_forward_pre_hook(hook))
    try:
        activations_pass(model, arch, window.reshape(1, -1))
    finally:
        for h in handles:
            h.remove()
    return got


def gate_gamma(model, arch, i: int) -> torch.Tensor:
    norm = get_submodule(arch.blocks(model)[i], arch.norms["mlp_in"])
    return norm.weight.detach().float()


def layer_table(model, arch, captured, seed: int, group_size: int = 128) -> list[dict]:
    """One row per (layer, linear role, view) with :func:`outlier_stats` and the INT4 error."""
    rot = Rotations(model, arch, seed)
    rows = []
    for (i, role), x in sorted(captured.items()):
        gamma = gate_gamma(model, arch, i) if role == "gate" else None
        for view, v in views(x, rot.rotate(role, x, gamma), group_size).items():
            base = x if view in ("original", "rs") else v if view == "rotated" else None
            src = x if view in ("original", "rs") else rot.rotate(role, x, gamma)
            err = quant_error(src, smoothed=view in ("rs", "rrs"), group_size=group_size)
            rows.append({"layer": i, "linear": role, "view": view, "channels": x.shape[1],
                         **outlier_stats(v), "int4_rel_err": err})
            del base
    return rows


# ---- tables and figures ---------------------------------------------------------------------------
RRS_KINDS = ("rtn", "w4a4", "smoothquant", "rs", "quarot", "rrs")
#: table/figure rows in the paper's order (``rtn`` = RTN+clip weights, ``gptq`` = GPTQ weights, no transform)
ROW_ORDER = ["fp32", "rtn", "gptq", "smoothquant", "rs", "rs-g128", "quarot", "rrs"]
#: one colour per bit configuration, the same in every panel
CONFIG_PALETTE = {"W4A4 KV16": "#4C72B0", "W4A4 KV4": "#DD8452", "W16A4 KV16": "#55A868"}


def _rotation_label(kind: str, params: dict, family: str) -> str:
    if kind not in ("quarot", "rrs"):
        return "none"
    if family == "gemma3":
        return "QuaRot + online Hadamard after each pre-norm (sandwich variant, exact)"
    return "QuaRot (exact)"


def _smoothing_label(kind: str, params: dict) -> str:
    if kind == "smoothquant":
        return f"SmoothQuant offline, alpha={params.get('alpha')}"
    if kind in ("rs", "rrs"):
        g = params.get("group_size")
        return f"runtime, group {g}" if g and g > 1 else "runtime, per channel"
    return "none"


def row_label(kind: str, params: dict) -> str:
    """The paper-table row of a method: rtn, gptq, smoothquant, rs (per channel), rs-g128, quarot, rrs."""
    if kind in ("rtn", "w4a4"):
        return "gptq" if params.get("weights") == "gptq" else "rtn"
    if kind == "rs" and (params.get("group_size") or 1) > 1:
        return f"rs-g{params['group_size']}"
    return kind


def _bits(v, kind):
    return 32 if kind == "fp32" else v


def _replicate_key(r: dict) -> tuple:
    """Evaluations that differ only in the method's ``seed`` are replicates of one configuration."""
    p = {k: v for k, v in r["method"]["params"].items() if k != "seed"}
    return r["model"]["id"], r["corpus"]["id"], r["method"]["kind"], json.dumps(p, sort_keys=True, default=str)


def _pooled(results: list[dict]) -> dict[str, dict]:
    """Method name -> its replicate group: ``replicate_of`` (the member with the lowest seed), ``seeds`` (how
    many) and the perplexity pooled over the seeds with its seed-and-token CI (lpbench.bootstrap)."""
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        if r["metrics"].get("kind") == "perplexity":
            groups.setdefault(_replicate_key(r), []).append(r)
    out = {}
    for members in groups.values():
        members = sorted(members, key=lambda r: (r["method"]["params"].get("seed") is None,
                                                 r["method"]["params"].get("seed") or 0, r["method"]["name"]))
        series = {r["method"]["params"].get("seed"): as_series(r["metrics"].get("token_nll")) for r in members}
        info = {"replicate_of": members[0]["method"]["name"], "seeds": len(members),
                "pooled_perplexity": None, "pooled_ci_low": None, "pooled_ci_high": None}
        if len(series) == len(members) and all(v is not None for v in series.values()):
            ci = seed_perplexity_ci(series)
            info.update(pooled_perplexity=ci["perplexity"], pooled_ci_low=ci["ci_low"], pooled_ci_high=ci["ci_high"])
        for r in members:
            out[(r["model"]["id"], r["corpus"]["id"], r["method"]["name"])] = info
    return out


def perplexity_rows(results: list[dict], families: dict[str, str]) -> list[dict]:
    """One row per evaluation (every seed of a replicated method is its own row: ``seed``, ``replicate_of``,
    ``seeds`` and the perplexity pooled over the seeds with its seed-and-token CI)."""
    pooled = _pooled(results)
    rows = []
    for r in results:
        m, p = r["metrics"], r["method"]["params"]
        kind = r["method"]["kind"]
        if m.get("kind") != "perplexity":
            continue
        fam = families.get(r["model"]["id"], "")
        w, a = _bits(p.get("w_bits"), kind), _bits(p.get("a_bits"), kind)
        kv = 32 if kind == "fp32" else p.get("kv_bits", 16)
        weights = "fp32" if kind == "fp32" else ("none (16-bit)" if (w or 32) >= 16 else
                                                   p.get("weights", "rtn")
                                                   + ("+clip" if p.get("w_clip") == "mse" else ""))
        rows.append({
            "model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
            "row": row_label(kind, p), "kind": kind, "seed": p.get("seed"),
            **pooled.get((r["model"]["id"], r["corpus"]["id"], r["method"]["name"]), {}),
            "config": "FP32" if kind == "fp32" else f"W{w}A{a} KV{kv}",
            "w_bits": w, "a_bits": a, "kv_bits": kv, "weights": weights,
            "rotation": _rotation_label(kind, p, fam), "smoothing": _smoothing_label(kind, p),
            "perplexity": m.get("perplexity"), **ppl_ci(m), "windows": m.get("windows"), "seqlen": m.get("seqlen"),
            "eval_wall_s": r.get("provenance", {}).get("wall_time_s"),
            "error": m.get("error") or "", "caveat": r["model"].get("caveat", "")})
    df = pd.DataFrame(rows)
    if df.empty:
        return rows
    df["_o"] = df["row"].map({k: i for i, k in enumerate(ROW_ORDER)}).fillna(len(ROW_ORDER))
    df = df.sort_values(["model", "w_bits", "kv_bits", "_o", "method"],
                        ascending=[True, True, False, True, True]).drop(columns="_o")
    return df.to_dict("records")


def perplexity_figure(df: pd.DataFrame):
    """Perplexity by table row, one panel per model, one bar per bit configuration (W4A4 KV16, W4A4 KV4,
    W16A4 KV16; one colour each, the same in every panel), FP32 dashed (log scale). A method run at several
    seeds (QuaRot/RRS: the rotation's random signs) is one bar at its perplexity pooled over the seeds, with
    the seed-and-token 95 % CI, and one black marker per seed; other bars carry the token-only CI."""
    sns.set_theme(style="whitegrid", context="paper")
    models = list(dict.fromkeys(df["model"]))
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.6 * max(1, len(models)), 3.9), squeeze=False)
    df = df.copy()
    if "replicate_of" not in df:
        df["replicate_of"], df["seeds"] = df["method"], 1
    for ax, model in zip(axes[0], models):
        sub = df[(df["model"] == model) & (df["kind"] != "fp32")].copy()
        sub["ppl"] = sub["perplexity"].astype(float)
        rep = sub["seeds"].fillna(1) > 1
        for col, src in (("ppl", "pooled_perplexity"), ("ppl_ci_low", "pooled_ci_low"),
                         ("ppl_ci_high", "pooled_ci_high")):
            if src in sub and col in sub:
                sub.loc[rep, col] = pd.to_numeric(sub.loc[rep, src], errors="coerce")
        bars = sub[sub["method"] == sub["replicate_of"].fillna(sub["method"])]
        order = [k for k in ROW_ORDER if k in set(bars["row"])] + sorted(set(bars["row"]) - set(ROW_ORDER))
        hue_order = [c for c in CONFIG_PALETTE if c in set(bars["config"])]
        palette = {**CONFIG_PALETTE, **{c: "#8C8C8C" for c in set(bars["config"]) - set(CONFIG_PALETTE)}}
        hue_order += sorted(set(bars["config"]) - set(CONFIG_PALETTE))
        try:
            where = grouped_bars(ax, bars, "row", "config", "ppl", order, hue_order, palette,
                                 lo="ppl_ci_low" if "ppl_ci_low" in bars else None,
                                 hi="ppl_ci_high" if "ppl_ci_high" in bars else None)
        except ValueError as e:
            raise ValueError(f"{model}: {e} (methods {bars['method'].tolist()})") from None
        base = bars.set_index("method")
        seeds = sub[rep]
        for _, r in seeds.iterrows():
            b = base.loc[r["replicate_of"]]
            ax.plot([where[(b["row"], b["config"])]], [float(r["perplexity"])], marker="o", ms=3, color="k",
                    ls="none", label="one seed" if "one seed" not in ax.get_legend_handles_labels()[1] else None)
        ref = df[(df["model"] == model) & (df["kind"] == "fp32")]["perplexity"]
        if len(ref) and pd.notna(ref.iloc[0]):
            ax.axhline(float(ref.iloc[0]), ls="--", color="k", lw=1, label="FP32")
        ax.set_yscale("log")
        ax.set_title(model)
        ax.set_xlabel("")
        ax.set_ylabel("perplexity (log)")
        ax.tick_params(axis="x", labelrotation=30)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---- outliers -------------------------------------------------------------------------------------------------
def pick_figure_input(df: pd.DataFrame) -> tuple[int, str]:
    """The linear input shown in the figure: the down_proj input with the largest spike (token ratio) in
    the original activations — the case the paper's argument is about. Chosen by rule, not by eye."""
    sub = df[(df["view"] == "original") & (df["linear"] == "down")]
    row = sub.loc[sub["token_ratio"].idxmax()]
    return int(row["layer"]), str(row["linear"])


def outlier_figure(model, arch, captured, layer: int, role: str, seed: int, group_size: int, label: str):
    x = captured[(layer, role)]
    gamma = gate_gamma(model, arch, layer) if role == "gate" else None
    v = views(x, Rotations(model, arch, seed).rotate(role, x, gamma), group_size)
    titles = {"original": "original X", "rs": "after Runtime Smooth (X / s)",
              "rotated": "after rotation (X H)", "rrs": "after RRS (X H / s)"}
    sns.set_theme(style="white", context="paper")
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), subplot_kw={"projection": "3d"})
    for ax, (name, t) in zip(axes, v.items()):
        a = t.abs().numpy()
        T, C = a.shape
        ts = torch.arange(0, T, max(1, T // 128)).numpy()
        cs = torch.arange(0, C, max(1, C // 192)).numpy()
        grid = a[ts][:, cs]
        xx, yy = torch.meshgrid(torch.as_tensor(cs), torch.as_tensor(ts), indexing="xy")
        ax.plot_surface(xx.numpy(), yy.numpy(), grid, cmap="viridis", linewidth=0, antialiased=False)
        ax.set_title(f"{titles[name]}\nmax {a.max():.3g}, median {float(torch.as_tensor(a).median()):.3g}", fontsize=8)
        ax.set_xlabel("channel", fontsize=7)
        ax.set_ylabel("token", fontsize=7)
        ax.set_zlabel("|x|", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"{label}: |input| of layer {layer} {role}_proj (one window; every token and channel "
                 f"subsampled for display; statistics over all)", fontsize=9)
    fig.tight_layout()
    return fig


# ---- cost -------------------------------------------------------------------------------------------------------
def cost_rows(dims: dict, archs: dict, methods: dict[str, dict], costs: dict, results: list[dict]) -> list[dict]:
    """One row per (model, RRS-paper method): extra runtime ops per token over plain W4A4, their energy,
    ``overhead_vs_plain`` = extra energy / plain-W4A4 energy, and the measured fake-quant evaluation time
    ratio vs the plain RTN row of the same width (kind ``w4a4``, RTN weights; informative only: jobs share 2
    cores with other jobs, and the RTN row's time includes its weight clip search). Seed replicates (entries that
    differ only in ``seed``) cost the same: only the first of each is a row."""
    wall = {(r["model"]["id"], r["method"]["name"]): r.get("provenance", {}).get("wall_time_s") for r in results}
    plain_rtn = {}
    for name, entry in methods.items():
        e = build_method(name, entry)
        if e.kind == "w4a4" and e.params["weights"] == "rtn" and e.params["kv_bits"] >= 16:
            plain_rtn.setdefault(e.params["w_bits"], name)
    rows = []
    seen, replicates = set(), set()              # seed replicates cost the same: one row per configuration
    for name, entry in methods.items():
        key = json.dumps({k: v for k, v in entry.items() if k != "seed"}, sort_keys=True, default=str)
        (replicates.add(name) if key in seen else seen.add(key))
    for model, d in dims.items():
        sandwich = archs[model].placement == "sandwich"
        for name, entry in methods.items():
            if name in replicates:
                continue
            meth = build_method(name, entry)
            if meth.kind not in RRS_KINDS or meth.kind in ("rtn", "w4a4"):
                continue
            if (model, name) not in wall:
                continue
            plain = meth.plain_ops(d)
            extra = meth.extra_ops(d, sandwich)
            e_plain = energy_pj(plain, costs)["total"]
            e_extra = energy_pj(extra, costs)["total"] if extra else 0.0
            t, t0 = wall.get((model, name)), wall.get((model, plain_rtn.get(meth.params["w_bits"])))
            rows.append({"model": model, "method": name, "kind": meth.kind,
                         "kv_bits": meth.params.get("kv_bits", 16),
                         "gemm_macs_per_token": d.gemm_macs,
                         "extra_ops_per_token": float(sum(extra.values())),
                         "extra_ops_vs_gemm_macs": float(sum(extra.values())) / d.gemm_macs,
                         "plain_w4a4_pj_per_token": e_plain, "extra_pj_per_token": e_extra,
                         "overhead_vs_plain": e_extra / e_plain,
                         "extra_ops_format": meth.scale_fmt,
                         "w_bits": meth.params["w_bits"], "eval_wall_s": t, "rtn_eval_wall_s": t0,
                         "measured_time_ratio_vs_rtn": (t / t0) if t and t0 else math.nan,
                         **{f"extra.{k}": v for k, v in sorted(extra.items())}})
    return rows
