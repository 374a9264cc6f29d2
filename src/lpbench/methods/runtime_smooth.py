"""``rs`` (Runtime Smooth) and ``rrs`` (Rotated Runtime Smooth), Yi et al., ICLR 2025.

Read from the official code (``Coco58323/Rotated_Runtime_Smooth``), implemented by :func:`runtime_smooth_quant`:
for a linear input X (B, T, C), s = max_T |X| per sequence and channel (runtime, clamped ≥ 1e-5); channels
sorted by s and grouped by ``group_size`` (128; 1 = per channel), each taking its group's maximum s̃;
symmetric per-token INT-b of X / s̃, with s̃ multiplied back onto the dequantized activation before the
(quantized, unsmoothed) weight GEMM. Applied to the inputs of o_proj, gate/up_proj and down_proj (q/k/v get
plain per-token INT4); the LM head stays in full precision.

``rs`` smooths the unrotated model; ``rrs`` applies QuaRot's rotation (:mod:`lpbench.methods.quarot`) first,
then runtime smoothing of the rotated activation.

The step-by-step reading of the official code, the run script's RS/RRS grouping and the default config that
follows it, and ties at group boundaries: docs/papers/rrs.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from lpbench.methods import Int, register
from lpbench.methods.quarot import QuaRot, W4A4Base
from lpbench.quant import QuantSpec, abs_max, act_spec, fake_quant

SMOOTHED_ROLES = ("o", "gate", "up", "down", "fc1", "fc2")


def runtime_smooth_scales(x: torch.Tensor, group_size: int = 128, eps: float = 1e-5) -> torch.Tensor:
    """Grouped runtime scales ``s̃`` of shape (..., 1, C) for ``x`` of shape (..., T, C)."""
    s = abs_max(x, dim=-2).clamp_min_(eps)
    c = s.shape[-1]
    if group_size <= 1:
        return s
    if group_size >= c:
        return s.amax(dim=-1, keepdim=True).expand_as(s)
    srt, idx = torch.sort(s, dim=-1, descending=True)
    gmax = srt[..., ::group_size]                                        # first of each group = its max
    grouped = gmax.repeat_interleave(group_size, dim=-1)[..., :c]
    return torch.empty_like(s).scatter_(-1, idx, grouped)


def runtime_smooth_quant(x: torch.Tensor, spec: QuantSpec, group_size: int = 128) -> torch.Tensor:
    """Runtime smoothing + per-token fake quantization, scale re-applied (see docs/papers/rrs.md)."""
    s = runtime_smooth_scales(x, group_size)
    # x / s is a fresh buffer: quantized in place, then rescaled in place (same operations, same order)
    return fake_quant(x / s, spec, inplace=True).mul_(s)


class RuntimeSmoothQuant(nn.Module):
    """Activation quantizer callable for :class:`lpbench.quant.QuantLinear` (``act_quant``)."""

    def __init__(self, spec: QuantSpec, group_size: int = 128):
        super().__init__()
        self.spec, self.group_size = spec, group_size

    def forward(self, x):
        return runtime_smooth_quant(x, self.spec, self.group_size)

    def extra_repr(self):
        return f"bits={self.spec.bits}, group_size={self.group_size}"


def rs_ops(dims, group_size: int, fmt: str) -> dict[str, float]:
    """Runtime-smoothing ops per token beyond plain W4A4 (kernel view, paper §3.2), per smoothed linear:

    * runtime channel max: one compare per input element (charged as an add);
    * sorting/grouping: ``C·log2 C`` compares per *sequence* (amortized over ``seqlen`` = 2048 tokens,
      the papers' window) — negligible, counted;
    * smoothing ``X/s̃``: one multiply (by the reciprocal) per input element;
    * epilogue: one multiply per output element and group (``s̃_g`` on the dequantized partial product)
      and one add per output element and extra group (summing the tiles).
    q/k/v are not smoothed. Gated MLP: gate and up share one input (max/smoothing counted once)."""
    d = dims
    lin = [(d.heads * d.head_dim, d.hidden, 1)]                                   # o_proj
    if d.mlp_matrices == 3:
        lin += [(d.hidden, d.intermediate, 2), (d.intermediate, d.hidden, 1)]    # gate+up, down
    else:
        lin += [(d.hidden, d.intermediate, 1), (d.intermediate, d.hidden, 1)]
    adds = mults = 0.0
    seq = 2048
    for c_in, c_out, n_mat in lin:
        groups = math.ceil(c_in / max(1, group_size)) if group_size > 1 else c_in
        adds += c_in + c_in * math.log2(c_in) / seq + n_mat * c_out * (groups - 1)
        mults += c_in + n_mat * c_out * groups
    return {f"{fmt}_add": d.layers * adds, f"{fmt}_mult": d.layers * mults}


@register
class RuntimeSmooth(W4A4Base):
    """``rs``: runtime smoothing without rotation."""

    kind = "rs"
    defaults = {**W4A4Base.defaults, "group_size": 128}
    spec = {**W4A4Base.spec, "group_size": Int(1)}

    def act_quant_for(self):
        spec = act_spec(self.params["a_bits"], self.params["clip_ratio"])
        if spec is None:
            return lambda role: None
        rs = RuntimeSmoothQuant(spec, self.params["group_size"])
        return lambda role: rs if role in SMOOTHED_ROLES else spec

    def transform(self, model, arch, artifact):
        return self.act_quant_for(), None

    def apply(self, model, arch, artifact):
        act_quant_for, transforms = self.transform(model, arch, artifact)
        return self.finish(model, arch, artifact, act_quant_for, transforms)

    def extra_ops(self, dims, sandwich: bool = False):
        return self.merge(rs_ops(dims, self.params["group_size"], self.scale_fmt), self.kv_ops(dims))

    def ops_per_token(self, dims):
        return self.merge(self.plain_ops(dims), self.extra_ops(dims))


@register
class RotatedRuntimeSmooth(RuntimeSmooth):
    """``rrs``: QuaRot's rotation, then runtime smoothing."""

    kind = "rrs"
    defaults = {**RuntimeSmooth.defaults, "rotation": "hadamard", "seed": None, "sandwich_rotation": "online"}
    spec = {**RuntimeSmooth.spec, **{k: QuaRot.spec[k] for k in ("seed", "rotation", "sandwich_rotation")}}

    def transform(self, model, arch, artifact, skip=()):
        _, transforms = QuaRot.transform(self, model, arch, artifact, skip=skip)
        return self.act_quant_for(), transforms

    apply = QuaRot.apply           # the rotation leaves the weights GPTQ replaces (replaced_linears) as they are

    def extra_ops(self, dims, sandwich: bool = False):
        rot = QuaRot.extra_ops(self, dims, sandwich)
        rot = {k: v for k, v in rot.items()}
        for k, v in self.kv_ops(dims).items():          # counted once
            rot[k] -= v
        return self.merge(rot, RuntimeSmooth.extra_ops(self, dims))
