"""SLaNC — Static LayerNorm Calibration (Salmani, Trukhanov, Soloveychik; arXiv 2410.10553) and the
two baselines it is compared with: no scaling and dynamic per-token max scaling.

Every LayerNorm / RMSNorm of the model is replaced by :class:`LowPrecNorm`, whose statistics (mean,
Σx², variance, 1/√·) are computed in an emulated format (``fmt``: fp16 / bf16 / fp32) with a rounding
after every operation, in a configurable summation ``order`` (:func:`lpbench.lowprec.emulated_norm`).
The rest of the network stays in FP32: the experiment isolates the norms.

The paper's formulas are not available. This module implements a reading of its stated principle: each
norm's input is divided by a static s computed offline from the weights of the preceding linear layers
only (:func:`predicted_norms`, :func:`slanc_scales`: Frobenius-norm estimates of the attention, standard and
gated MLP blocks composed along the residual stream, s = ‖x‖_pred / √T, T = ``target_sumsq``), applied by folding
1/s into a single preceding linear (``apply_as="fold"``) or as a power-of-two exponent shift (``pow2``),
with ε/s² in the norm. Variants: ``none`` (fl(x)), ``static`` (SLaNC), ``dynamic`` (per-token max
scaling; its extra ops in :meth:`SLaNCMethod.ops_per_token`).

The derivation (expressions (F), (A), (M), (G)), why ``target_sumsq`` = 1, how the scale is applied and ε:
docs/papers/slanc.md.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.lowprec import F64, FORMATS, ORDERS, get_format, native_norm, round_to
from lpbench.methods import Int, Method, ModelDims, Real, register
from lpbench.norms import check_formula, norm_instances, norm_params

VARIANTS = ("none", "static", "dynamic")
APPLY_AS = ("fold", "pow2")


# ---- weight-only energy estimates ------------------------------------------------------------------
#: dtype of the offline estimates (float32 is ample for a magnitude estimate and 2-4x faster on CPU)
EST = torch.float32


def _w(linear: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    b = getattr(linear, "bias", None)
    return linear.weight.detach().to(EST), (None if b is None else b.detach().to(EST))


def norm_affine(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(effective gain γ, bias β or None) of a norm module (dtype EST)."""
    _, _, weight, bias, offset = norm_params(module)
    g = weight.detach().to(F64) + offset
    return g.to(EST), (None if bias is None else bias.detach().to(EST))


def norm_energy(gamma: torch.Tensor, beta: torch.Tensor | None) -> float:
    """ν² = ‖γ‖² + ‖β‖²: predicted squared L2 norm of a norm's output."""
    return float((gamma.double() ** 2).sum() + (0.0 if beta is None else (beta.double() ** 2).sum()))


def _mean_std(W: torch.Tensor, b: torch.Tensor | None, gamma: torch.Tensor, beta: torch.Tensor | None):
    """Per-unit mean m and std r of y = W(Γu + β) + b for isotropic unit-RMS u (expression (F))."""
    r = (W * gamma).norm(dim=1)
    m = torch.zeros(W.shape[0], dtype=W.dtype) if beta is None else W @ beta
    if b is not None:
        m = m + b
    return m, r


_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(48)


def gaussian_moments(act, m: torch.Tensor, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(E σ(h), E σ(h)²) for h ~ N(m, r²), per unit, by 48-node Gauss–Hermite quadrature."""
    z = torch.as_tensor(_GH_NODES, dtype=F64)
    w = torch.as_tensor(_GH_WEIGHTS / math.sqrt(2 * math.pi), dtype=F64)
    h = m.to(F64).unsqueeze(-1) + r.to(F64).unsqueeze(-1) * z
    with torch.no_grad():
        a = act(h)
    return (a * w).sum(-1), (a * a * w).sum(-1)


def attention_energy(block: nn.Module, arch: ArchSpec, gamma, beta, heads: int, kv_heads: int) -> float:
    """c_attn² of expression (A)."""
    Wv, bv = _w(get_submodule(block, arch.attn["v"]))
    Wo, bo = _w(get_submodule(block, arch.attn["o"]))
    hd = Wv.shape[0] // kv_heads
    rep = heads // kv_heads
    Rv = Wv.view(kv_heads, hd, -1).repeat_interleave(rep, 0).reshape(heads * hd, -1)
    iso = ((Wo @ Rv) * gamma).pow(2).double().sum()
    mean_v = torch.zeros(Wv.shape[0], dtype=Wv.dtype) if beta is None else Wv @ beta
    if bv is not None:
        mean_v = mean_v + bv
    mean = Wo @ mean_v.view(kv_heads, hd).repeat_interleave(rep, 0).reshape(-1)
    if bo is not None:
        mean = mean + bo
    return float(iso + mean.double().pow(2).sum())


def mlp_energy(block: nn.Module, arch: ArchSpec, gamma, beta, act) -> float:
    """c_mlp² of expression (M) (standard MLP) or (G) (gated MLP)."""
    if arch.mlp_kind == "gated":
        Wg, bg = _w(get_submodule(block, arch.mlp["gate"]))
        Wu, bu = _w(get_submodule(block, arch.mlp["up"]))
        Wd, bd = _w(get_submodule(block, arch.mlp["down"]))
        mg, rg = _mean_std(Wg, bg, gamma, beta)
        mu, ru = _mean_std(Wu, bu, gamma, beta)
        psi, phi = gaussian_moments(act, mg, rg)
        mu, ru = mu.to(F64), ru.to(F64)
        ea, ea2 = psi * mu, phi * (ru ** 2 + mu ** 2)
    else:
        W1, b1 = _w(get_submodule(block, arch.mlp["fc1"]))
        Wd, bd = _w(get_submodule(block, arch.mlp["fc2"]))
        m, r = _mean_std(W1, b1, gamma, beta)
        ea, ea2 = gaussian_moments(act, m, r)
    Wd = Wd.to(F64)
    col = Wd.pow(2).sum(0)
    mean = Wd @ ea + (0.0 if bd is None else bd.to(F64))
    return float((col * (ea2 - ea ** 2)).sum() + mean.pow(2).sum())


def activation_fn(model: nn.Module):
    from transformers.activations import ACT2FN

    cfg = model.config
    name = (getattr(cfg, "hidden_activation", None) or getattr(cfg, "hidden_act", None)
            or getattr(cfg, "activation_function", None))
    if name is None:
        raise ValueError(f"{type(model).__name__}: no activation name in the config")
    return ACT2FN[name]


def _embedding_energy(model: nn.Module, arch: ArchSpec) -> float:
    emb = get_submodule(model, arch.embed)
    E = emb.weight.detach().to(EST)
    mult = float(getattr(emb, "scalar_embed_scale", None) or getattr(emb, "embed_scale", 1.0))
    mult *= float(getattr(emb, "lpbench_multiplier", 1.0))
    return float(E.pow(2).sum(1).double().mean()) * mult ** 2


def predicted_norms(model: nn.Module, arch: ArchSpec) -> dict[str, dict]:
    """Per norm (full name): predicted squared L2 norm of its input ``sumsq_pred``, vector length ``d``,
    ``role``, ``layer``, and the linear layer its input comes from alone (``fold_into``, or None)."""
    cfg = model.config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    act = activation_fn(model)
    out: dict[str, dict] = {}
    blocks = arch.blocks(model)

    def put(name, S, layer, role, d, fold=None):
        out[name] = {"sumsq_pred": float(S), "layer": layer, "role": role, "d": int(d), "fold_into": fold}

    if arch.placement in ("pre", "sandwich"):
        S = _embedding_energy(model, arch)
        for i, block in enumerate(blocks):
            pre = f"{arch.layers}.{i}"
            n_in = get_submodule(block, arch.norms["attn_in"])
            g, b = norm_affine(n_in)
            put(f"{pre}.{arch.norms['attn_in']}", S, i, "attn_in", g.numel())
            c = attention_energy(block, arch, g, b, heads, kv_heads)
            for rel in arch.extra_norms:
                key = "q" if rel.endswith("q_norm") else "k" if rel.endswith("k_norm") else None
                if key is None:
                    raise ValueError(f"SLaNC: no closed form for extra norm '{rel}'")
                W, bias = _w(get_submodule(block, arch.attn[key]))
                nh = heads if key == "q" else kv_heads
                m, r = _mean_std(W, bias, g, b)
                put(f"{pre}.{rel}", float((r.double() ** 2 + m.double() ** 2).sum()) / nh, i, rel.rsplit(".", 1)[-1],
                    W.shape[0] // nh, f"{pre}.{arch.attn[key]}")
            if "attn_out" in arch.norms:
                put(f"{pre}.{arch.norms['attn_out']}", c, i, "attn_out", g.numel(), f"{pre}.{arch.attn['o']}")
                S += norm_energy(*norm_affine(get_submodule(block, arch.norms["attn_out"])))
            else:
                S += c
            g, b = norm_affine(get_submodule(block, arch.norms["mlp_in"]))
            put(f"{pre}.{arch.norms['mlp_in']}", S, i, "mlp_in", g.numel())
            c = mlp_energy(block, arch, g, b, act)
            if "mlp_out" in arch.norms:
                down = arch.mlp.get("down") or arch.mlp["fc2"]
                put(f"{pre}.{arch.norms['mlp_out']}", c, i, "mlp_out", g.numel(), f"{pre}.{down}")
                S += norm_energy(*norm_affine(get_submodule(block, arch.norms["mlp_out"])))
            else:
                S += c
        if arch.final_norm:
            fn = get_submodule(model, arch.final_norm)
            put(arch.final_norm, S, len(blocks), "final", norm_affine(fn)[0].numel())
    elif arch.placement == "post":
        try:
            g, b = norm_affine(get_submodule(model, "embeddings.LayerNorm"))
            nu = norm_energy(g, b)
        except (AttributeError, ValueError):
            nu = _embedding_energy(model, arch)
            g = torch.full((cfg.hidden_size,), math.sqrt(nu / cfg.hidden_size), dtype=EST)
            b = None
        for i, block in enumerate(blocks):
            pre = f"{arch.layers}.{i}"
            c = attention_energy(block, arch, g, b, heads, kv_heads)
            put(f"{pre}.{arch.norms['attn_out']}", nu + c, i, "attn_out", g.numel())
            g, b = norm_affine(get_submodule(block, arch.norms["attn_out"]))
            nu = norm_energy(g, b)
            c = mlp_energy(block, arch, g, b, act)
            put(f"{pre}.{arch.norms['mlp_out']}", nu + c, i, "mlp_out", g.numel())
            g, b = norm_affine(get_submodule(block, arch.norms["mlp_out"]))
            nu = norm_energy(g, b)
        if arch.final_norm:
            raise ValueError("SLaNC: a post-norm architecture with a final norm is not supported")
    else:
        raise ValueError(f"SLaNC: unknown norm placement '{arch.placement}'")
    missing = sorted(set(arch.norm_names(model)) - set(out))
    if missing:
        raise ValueError(f"SLaNC: no scale derived for norm(s) {missing}")
    return out


def slanc_scales(model: nn.Module, arch: ArchSpec, target_sumsq: float = 1.0,
                 apply_as: str = "fold") -> dict[str, dict]:
    """Per norm: the predicted norms plus ``scale`` (exact s), ``scale_pow2`` (2^round(log₂ s)), the
    ``mode`` actually used (fold where possible and requested, else pow2) and the ``applied`` scale."""
    pred = predicted_norms(model, arch)
    for name, p in pred.items():
        s = math.sqrt(p["sumsq_pred"] / target_sumsq)
        p["scale"] = s
        p["scale_pow2"] = 2.0 ** round(math.log2(s))
        p["mode"] = "fold" if (apply_as == "fold" and p["fold_into"]) else "pow2"
        p["applied"] = s if p["mode"] == "fold" else p["scale_pow2"]
    return pred


# ---- the emulated norm module ----------------------------------------------------------------------
def dynamic_prescale(x: torch.Tensor, fmt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic max scaling: m = max|x| on the incoming (FP32) value, r = fl(1/m), x' = fl(x·r) — the
    scale is applied before the value is rounded to ``fmt`` (the same entry point SLaNC's shift uses,
    so an input beyond the format's range is rescued by both). Returns x' in the format's native dtype
    and r per vector (float64). An all-zero vector keeps r = 1."""
    f = get_format(fmt)
    xd = x.to(F64)
    m = xd.abs().amax(-1)
    m = torch.where(m > 0, m, torch.ones_like(m))
    r = round_to(1.0 / m, f)
    # x (fp32, 24 bits) · r (≤ 24 bits) is exact in float64, so this is one rounding of the product
    return round_to(xd * r.unsqueeze(-1), f).to(f.dtype), r


def lowprec_norm(x: torch.Tensor, kind: str, fmt: str, order: str, eps: float, weight, bias,
                 variant: str, scale: float = 1.0, folded: bool = False, block: int = 16):
    """One norm in ``fmt`` for a variant (see docs/papers/slanc.md). ``scale`` is SLaNC's applied s;
    ``folded``: x is already x/s (computed by the folded linear layer). Returns (output, stats) of
    :func:`lpbench.lowprec.native_norm` (= :func:`lpbench.lowprec.emulated_norm`, plus ``var``, the variance in
    ``fmt``)."""
    if variant == "dynamic":
        xs, r = dynamic_prescale(x, fmt)
        out, st = native_norm(xs, kind, fmt, order, eps * r * r, weight, bias, block=block)
        st["overflow"] = st["overflow"] | ~torch.isfinite(r)
    elif variant == "static" and folded:
        out, st = native_norm(x, kind, fmt, order, eps / (scale * scale), weight, bias, block=block)
    elif variant == "static":
        out, st = native_norm(x, kind, fmt, order, eps, weight, bias, scale=scale, block=block)
    else:
        out, st = native_norm(x, kind, fmt, order, eps, weight, bias, block=block)
    return out, st


def underflow_tokens(st: dict, fmt: str) -> torch.Tensor:
    """Per vector: the variance, nonzero in exact arithmetic, reached the format as a subnormal or 0."""
    return (st["sumsq_exact"] > 0) & (st["var"].abs() < get_format(fmt).tiny) & ~st["overflow"]


class LowPrecNorm(nn.Module):
    """LayerNorm / RMSNorm with every statistic in ``fmt``; SLaNC static, dynamic or no scaling."""

    def __init__(self, kind: str, eps: float, weight, bias, weight_offset: float = 0.0,
                 fmt: str = "fp16", order: str = "pairwise", block: int = 16, variant: str = "none",
                 scale: float = 1.0, folded: bool = False):
        super().__init__()
        self.kind, self.eps, self.fmt, self.order, self.block = kind, eps, fmt, order, block
        self.variant, self.scale, self.folded = variant, float(scale), folded
        w = None if weight is None else weight.detach().to(F64) + weight_offset
        self.register_buffer("weight_eff", None if w is None else round_to(w, fmt))
        self.register_buffer("bias", None if bias is None else bias.detach().to(F64))
        self.counts = {"vectors": 0, "overflow": 0, "underflow": 0}

    @classmethod
    def from_module(cls, module: nn.Module, **params) -> "LowPrecNorm":
        kind, eps, weight, bias, offset = norm_params(module)
        check_formula(module, kind, eps, None if weight is None else weight.detach().to(F64) + offset, bias)
        return cls(kind, eps, weight, bias, offset, **params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out, st = lowprec_norm(x, self.kind, self.fmt, self.order, self.eps, self.weight_eff, self.bias,
                                   self.variant, self.scale, self.folded, self.block)
            self.counts["vectors"] += int(st["overflow"].numel())
            self.counts["overflow"] += int(st["overflow"].sum())
            self.counts["underflow"] += int(underflow_tokens(st, self.fmt).sum())
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.kind}, fmt={self.fmt}, order={self.order}, variant={self.variant}, scale={self.scale:.4g}"


def fold_scale(model: nn.Module, linear_name: str, s: float) -> None:
    """Divide a linear layer's weight rows (and bias) by s: its output becomes x/s."""
    lin = get_submodule(model, linear_name)
    with torch.no_grad():
        lin.weight.div_(s)
        if getattr(lin, "bias", None) is not None:
            lin.bias.div_(s)


@register
class SLaNCMethod(Method):
    """Every norm computed in an emulated format; ``variant`` none | static (SLaNC) | dynamic."""

    kind = "slanc"
    defaults: dict[str, Any] = {"variant": "static", "fmt": "fp16", "order": "pairwise", "block": 16,
                                "apply_as": "fold", "target_sumsq": 1.0}
    spec = {"block": Int(1), "target_sumsq": Real(0, open_lo=True)}

    def __init__(self, name: str = "", **params):
        super().__init__(name, **params)
        p = self.params
        self.require([(p["variant"] in VARIANTS, f"variant must be one of {VARIANTS}"),
                      (p["fmt"] in FORMATS, f"fmt must be one of {sorted(FORMATS)}"),
                      (p["order"] in ORDERS, f"order must be one of {ORDERS}"),
                      (p["apply_as"] in APPLY_AS, f"apply_as must be one of {APPLY_AS}")])
        self._arch: ArchSpec | None = None

    def calibrate(self, model, arch, stats=None, windows=None) -> dict:
        """Weights only: ``stats`` and ``windows`` are not used (that is the point of SLaNC)."""
        if self.params["variant"] != "static":
            return {}
        return {"scales": slanc_scales(model, arch, float(self.params["target_sumsq"]),
                                       self.params["apply_as"])}

    def apply(self, model, arch, artifact) -> nn.Module:
        p = self.params
        scales = artifact.get("scales", {}) if p["variant"] == "static" else {}
        if p["variant"] == "static" and not scales:
            raise ValueError(f"method '{self.name}': static variant needs the artifact's 'scales'")
        for name in arch.norm_names(model):
            parent_name, _, child = name.rpartition(".")
            parent = get_submodule(model, parent_name) if parent_name else model
            kw = dict(fmt=p["fmt"], order=p["order"], block=p["block"], variant=p["variant"])
            if name in scales:
                sc = scales[name]
                kw.update(scale=sc["applied"], folded=sc["mode"] == "fold")
                if sc["mode"] == "fold":
                    fold_scale(model, sc["fold_into"], sc["applied"])
            setattr(parent, child, LowPrecNorm.from_module(getattr(parent, child), **kw))
        self._arch = arch
        return model

    def ops_per_token(self, dims: ModelDims, arch: ArchSpec | None = None) -> dict[str, float]:
        """Runtime extras per token. none / static: nothing (SLaNC's scale is folded or an exponent
        offset wired into the norm unit). dynamic, per normalized vector of length d: d − 1 compares
        (charged as ``<fmt>_add``: a comparator is a subtractor), one reciprocal and d multiplies
        (``<fmt>_mult``; the reciprocal is charged as one multiply — a lower bound, the cost file has no
        divide)."""
        if self.params["variant"] != "dynamic":
            return {}
        counts = dynamic_op_counts(dims, arch or self._arch)
        f = get_format(self.params["fmt"]).name
        return {f"{f}_add": counts["compares"], f"{f}_mult": counts["mults"] + counts["divides"]}


def dynamic_op_counts(dims: ModelDims, arch: ArchSpec | None) -> dict[str, float]:
    """compares / divides / multiplies per token that dynamic max scaling adds over all norms."""
    c = {"compares": 0.0, "divides": 0.0, "mults": 0.0, "vectors": 0.0}
    for d, n in norm_instances(arch, dims):
        c["compares"] += n * (d - 1)
        c["divides"] += n
        c["mults"] += n * d
        c["vectors"] += n
    return c
