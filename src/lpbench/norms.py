"""Norm-swap helpers shared by every method that replaces a model's LayerNorm / RMSNorm modules
(IterL2Norm, SLaNC): what a norm module computes (kind, eps, gain, bias, Gemma's gain offset), a check
that a replacement formula reproduces the module, and where a model's norms are (for op counts)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec
from lpbench.lowprec import F64, emulated_norm

if TYPE_CHECKING:
    from lpbench.methods import ModelDims


def norm_params(module: nn.Module) -> tuple[str, float, torch.Tensor | None, torch.Tensor | None, float]:
    """(kind, eps, weight, bias, weight offset) of a LayerNorm / RMSNorm module."""
    if isinstance(module, nn.LayerNorm):
        if len(module.normalized_shape) != 1:
            raise ValueError(f"LayerNorm over {module.normalized_shape}: only the last dim is supported")
        return "layernorm", module.eps, module.weight, module.bias, 0.0
    name = type(module).__name__
    if name.endswith("RMSNorm") and hasattr(module, "weight"):
        eps = getattr(module, "variance_epsilon", None)
        eps = getattr(module, "eps", None) if eps is None else eps
        if eps is None:
            raise ValueError(f"{name}: no 'variance_epsilon' or 'eps' attribute")
        return "rmsnorm", float(eps), module.weight, None, (1.0 if name.startswith("Gemma") else 0.0)
    raise ValueError(f"cannot replace norm module of type {name}: supported are nn.LayerNorm and "
                     "*RMSNorm modules (x·rsqrt(mean(x²)+eps)·w, or ·(1+w) for Gemma)")


def check_formula(module: nn.Module, kind: str, eps: float, weight: torch.Tensor | None,
                   bias: torch.Tensor | None) -> None:
    """The exact (fp64) version of our formula, with the unrounded effective weight, must reproduce the
    original module's forward on a probe input (catches a wrong eps placement or weight offset)."""
    d = weight.shape[-1] if weight is not None else module.normalized_shape[0]
    probe = torch.randn(4, d, generator=torch.Generator().manual_seed(0)) * 3 + 0.5
    with torch.no_grad():
        ref = module(probe).to(F64)
        ours, _ = emulated_norm(probe, kind, "fp64", "pairwise", eps, weight, bias)
    err = ((ours - ref).norm() / ref.norm().clamp_min(1e-30)).item()
    if not err < 1e-5:
        raise ValueError(f"replacement of {type(module).__name__} does not match its forward "
                         f"(relative error {err:.2e}): unsupported norm variant")


def norm_instances(arch: ArchSpec | None, dims: ModelDims) -> list[tuple[int, int]]:
    """(vector length, normalizations per token) for every norm of the model.

    With ``arch``: the registry's layout (per-block norms, Gemma3's q/k norms over ``head_dim`` once per
    head, the final norm). Without it — the dims-only estimate the Method interface allows — the pre-norm
    layout: 2 hidden-size norms per layer plus the final norm. That is exact for Llama/Qwen2/OPT and for
    BERT up to one norm (BERT has no final norm but an embedding LayerNorm, same length); for Gemma3 it
    undercounts (4 hidden norms per layer instead of 2, and q/k norms over head_dim are missing)."""
    if arch is None:
        return [(dims.hidden, 2 * dims.layers + 1)]
    out = [(dims.hidden, len(arch.norms) * dims.layers)]
    for rel in arch.extra_norms:
        if rel.endswith("q_norm"):
            out.append((dims.head_dim, dims.heads * dims.layers))
        elif rel.endswith("k_norm"):
            out.append((dims.head_dim, dims.kv_heads * dims.layers))
        else:
            out.append((dims.hidden, dims.layers))
    if arch.final_norm:
        out.append((dims.hidden, 1))
    return out
