"""Outlier statistics of linear inputs and the data of the RRS activation-magnitude figure (RRS-3).

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
              ``X·(I⊗H_hd)·H`` — the same matrices and seeds as :mod:`lpbench.methods.quarot`)
``rrs``       the rotated view, runtime-smoothed

— :func:`outlier_stats` reports: ``channel_ratio`` = max_j c_j / median_j c_j with c_j = max_t |X_tj|
(channel-wise outliers), ``token_ratio`` = max_t m_t / median_t m_t with m_t = max_j |X_tj| (spikes),
``kurtosis`` (Pearson, of all values), and ``int4_rel_err`` = ‖Q(view) ⊙ s̃ − X_view‖ / ‖X_view‖ of the
symmetric per-token INT4 fake quantization each method applies (with the scale re-applied for rs/rrs).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.methods.runtime_smooth import runtime_smooth_scales
from lpbench.quant import QuantSpec, fake_quant
from lpbench.rotation import OnlineHadamard, hadamard_matrix, rotation_matrix

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
    """The rotations a quantizer input sees in the QuaRot/RRS model, per linear role."""

    def __init__(self, model: nn.Module, arch: ArchSpec, seed: int):
        cfg = model.config
        self.d = cfg.hidden_size
        self.hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.q = rotation_matrix(self.d, "hadamard", seed).float()
        self.h_hd = hadamard_matrix(self.hd).float()
        self.seed = seed
        self._online: dict[int, OnlineHadamard] = {}
        self.arch = arch

    def online(self, n: int) -> OnlineHadamard:
        if n not in self._online:
            self._online[n] = OnlineHadamard(n, seed=self.seed + 1)
        return self._online[n]

    def rotate(self, role: str, x: torch.Tensor, gamma: torch.Tensor | None = None) -> torch.Tensor:
        if role in ("gate", "up", "q", "k", "v", "fc1"):
            return (x / gamma) @ self.q
        if role == "o":
            y = (x.reshape(*x.shape[:-1], -1, self.hd) @ self.h_hd).reshape(x.shape)
            return self.online(x.shape[-1])(y)
        return self.online(x.shape[-1])(x)


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
        model(window.reshape(1, -1), use_cache=False)
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
