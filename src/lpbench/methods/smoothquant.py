"""``smoothquant``: SmoothQuant (Xiao et al. 2023) α-migration, then RTN W4A4 — an RRS-paper baseline.

Reading of ``mit-han-lab/smoothquant`` (``smooth.smooth_ln_fcs``) implemented here: for a norm feeding a set
of linears (``input_layernorm`` → q/k/v, ``post_attention_layernorm`` (llama) / ``pre_feedforward_layernorm``
(gemma3) → gate/up), with ``a_j`` the calibration max |x_j| of the shared input channel j and
``w_j = max over the linears and their output rows of |W_ij|``::

    s_j = clamp(a_j^α / w_j^(1-α), min=1e-5),     γ ← γ / s,     W ← W · diag(s)

The FP model is unchanged (γ absorbs 1/s); quantization then sees the smoothed input. ``a_j`` comes from
the shared calibration statistics (``stats['linear'][<q or gate>]['absmax']``, the max over the calibration
windows, as SmoothQuant's ``get_act_scales``). As in the official code only norm→linear pairs are
smoothed: o_proj and down_proj inputs are not (they get plain per-token INT4). Gemma-3's gain is
``1 + w``: the division is applied to ``1 + w``. LayerNorm families divide the bias as well.

α: 0.5 (SmoothQuant's default; ``alpha`` configurable, a sweep is a list of config entries). Weights:
per-channel symmetric INT4 RTN; activations: per-token symmetric INT4 (as ``rtn``); KV16 or KV4.
"""
from __future__ import annotations

import torch

from lpbench.archs import get_submodule
from lpbench.methods import Real, register
from lpbench.methods.quarot import W4A4Base
from lpbench.quant import act_spec

_F64 = torch.float64


def smooth_pairs(arch) -> list[tuple[str, list[str]]]:
    """(norm role, linear roles) pairs that SmoothQuant smooths."""
    mlp_in = ["gate", "up"] if arch.mlp_kind == "gated" else ["fc1"]
    pairs = []
    if "attn_in" in arch.norms:
        pairs.append(("attn_in", ["q", "k", "v"]))
    if "mlp_in" in arch.norms:
        pairs.append(("mlp_in", mlp_in))
    return pairs


def smoothing_scales(act_absmax: torch.Tensor, weights: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """SmoothQuant's per-input-channel scales s (float64)."""
    w = torch.stack([wt.detach().to(_F64).abs().amax(0) for wt in weights]).amax(0).clamp(min=1e-5)
    a = act_absmax.to(_F64)
    return (a.pow(alpha) / w.pow(1 - alpha)).clamp(min=1e-5)


@register
class SmoothQuant(W4A4Base):
    kind = "smoothquant"
    defaults = {**W4A4Base.defaults, "alpha": 0.5}
    spec = {**W4A4Base.spec, "alpha": Real(0, 1)}

    def calibrate(self, model, arch, stats, windows):
        roles = {**arch.attn, **arch.mlp}
        scales = {}
        for i, block in enumerate(arch.blocks(model)):
            for norm_role, lin_roles in smooth_pairs(arch):
                names = [f"{arch.layers}.{i}.{roles[r]}" for r in lin_roles]
                acts = [stats["linear"][n]["absmax"] for n in names if n in stats["linear"]]
                if not acts:
                    raise KeyError(f"smoothquant: no calibration absmax for {names[0]}")
                a = torch.stack([x.to(_F64) for x in acts]).amax(0)
                ws = [get_submodule(block, roles[r]).weight for r in lin_roles]
                scales[f"{arch.layers}.{i}.{arch.norms[norm_role]}"] = smoothing_scales(a, ws, self.params["alpha"])
        art = {"scales": scales}
        return art

    @torch.no_grad()
    def transform(self, model, arch, artifact):
        roles = {**arch.attn, **arch.mlp}
        gemma_gain = arch.family == "gemma3"
        for i, block in enumerate(arch.blocks(model)):
            for norm_role, lin_roles in smooth_pairs(arch):
                norm = get_submodule(block, arch.norms[norm_role])
                s = artifact["scales"][f"{arch.layers}.{i}.{arch.norms[norm_role]}"].to(_F64)
                w = norm.weight.to(_F64)
                if gemma_gain:
                    norm.weight.copy_(((1 + w) / s - 1).to(norm.weight.dtype))
                else:
                    norm.weight.copy_((w / s).to(norm.weight.dtype))
                if getattr(norm, "bias", None) is not None:
                    norm.bias.copy_((norm.bias.to(_F64) / s).to(norm.bias.dtype))
                for r in lin_roles:
                    lin = get_submodule(block, roles[r])
                    lin.weight.copy_((lin.weight.to(_F64) * s).to(lin.weight.dtype))
        spec = act_spec(self.params["a_bits"], self.params["clip_ratio"])
        return (lambda role: spec), None

    def apply(self, model, arch, artifact):
        act_quant_for, transforms = self.transform(model, arch, artifact)
        return self.finish(model, arch, artifact, act_quant_for, transforms)

    def extra_ops(self, dims, sandwich: bool = False):
        return self.kv_ops(dims)                      # smoothing is folded offline: no runtime cost

    def ops_per_token(self, dims):
        return self.merge(self.plain_ops(dims), self.extra_ops(dims))
