"""Unified Normalization (Yang et al., ACM MM 2022) and the baselines it is compared with.

Implemented from the official ``UN1d`` (hikvision-research/Unified-Normalization; the fairseq copy is the
same), written independently here; every default of the official module is kept (:data:`UN_DEFAULTS`:
window M = 4, warm-up 4000 iterations, momentum 0.9, eps 1e-5, outlier filtration off, ratio clamp
[1/5, 5]). Statistics are per channel over all tokens of the batch, **without centering**; training
smooths the variance over a window (geometric mean), compensates the gradient with an EMA, and can skip
outlier steps; inference is a per-channel affine map that folds into the next linear layer (``.fold``).
Window 1 makes every step a skip: the "no smoothing" ablation. A padding mask is not implemented (our
tasks have no padding).

The training step, the backward, inference, and the five points where the official code and the paper
digest differ (the code is followed): docs/papers/unified_norm.md.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

# Official defaults of UN1d.
UN_DEFAULTS = {"window": 4, "warmup_iters": 4000, "outlier_filtration": False, "eps": 1e-5,
               "momentum": 0.9, "ratio_clamp": 5.0, "clamp_start": None}


class _UNFunction(torch.autograd.Function):
    """Training-mode UN on a (T, C) matrix. ``mod`` carries the buffers (mutated in place) and settings."""

    @staticmethod
    def forward(ctx, x, weight, bias, mod):
        t = int(mod.iters.item())
        m_fp = mod.window_fp
        eps, mom = mod.eps, mod.momentum
        x2 = (x * x).mean(dim=0)
        rec_var = mod.buffer_x2.sqrt().var()  # unbiased, over all M*C entries, before the update
        slot = t % m_fp
        mod.buffer_x2[slot] = x2
        skip = m_fp <= 1
        filtered = False
        if mod.outlier_filtration and t >= mod.warmup_iters:
            am = mod.buffer_x2.mean(dim=0)
            gm = mod.buffer_x2.log().mean(dim=0).exp()
            if bool(((am - gm) > rec_var * m_fp).any()):
                mod.buffer_x2[slot] = mod.running_var
                mod.skip_counter += 1
                skip = filtered = True
        if t <= m_fp or t < mod.warmup_iters or skip:
            var = x2
        else:
            var = mod.buffer_x2.log().mean(dim=0).exp()
        std = (var + eps).sqrt()
        clamp_start = mod.clamp_start if mod.clamp_start is not None else max(1000, mod.warmup_iters)
        if t <= clamp_start or skip:
            r = torch.ones_like(var)
        else:
            r = (std / (mod.running_var + eps).sqrt()).clamp(1.0 / mod.ratio_clamp, mod.ratio_clamp)
        z = x / std
        mod.running_var.mul_(mom).add_((1 - mom) * var)
        mod.last = {"x2": x2.detach(), "var": var.detach(), "skip": skip, "filtered": filtered}
        ctx.save_for_backward(z, std, weight, r)
        ctx.mod, ctx.t, ctx.skip = mod, t, skip
        return z * weight + bias

    @staticmethod
    def backward(ctx, dy):
        z, std, weight, r = ctx.saved_tensors
        mod, t, skip = ctx.mod, ctx.t, ctx.skip
        m_bp, mom = mod.window_bp, mod.momentum
        g = dy * (weight * r)
        gz = (g * z).mean(dim=0)
        slot = t % m_bp
        mod.buffer_gz[slot] = mod.ema_gz if skip else gz
        if t <= m_bp or t < mod.warmup_iters or skip:
            psi_in = gz
        else:
            psi_in = mod.buffer_gz.mean(dim=0)
        mod.ema_gz.mul_(mom).add_((1 - mom) * psi_in)
        psi = psi_in if skip else mod.ema_gz
        dx = (g - psi * z) / std
        return dx, (dy * r * z).sum(dim=0), dy.sum(dim=0), None


class UnifiedNorm(nn.Module):
    """UN over the last dimension of (..., C) inputs; statistics over every other dimension."""

    def __init__(self, channels: int, window=4, warmup_iters: int = 4000, outlier_filtration: bool = False,
                 eps: float = 1e-5, momentum: float = 0.9, ratio_clamp: float = 5.0, clamp_start=None):
        super().__init__()
        self.window_fp, self.window_bp = (window, window) if isinstance(window, int) else tuple(window)
        if self.window_fp < 1 or self.window_bp < 1:
            raise ValueError(f"window sizes must be >= 1, got {window}")
        self.channels, self.eps, self.momentum = channels, eps, momentum
        self.warmup_iters, self.outlier_filtration = int(warmup_iters), bool(outlier_filtration)
        self.ratio_clamp, self.clamp_start = float(ratio_clamp), clamp_start
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("ema_gz", torch.zeros(channels))
        self.register_buffer("iters", torch.zeros((), dtype=torch.long))
        self.register_buffer("buffer_x2", torch.zeros(self.window_fp, channels))
        self.register_buffer("buffer_gz", torch.zeros(self.window_bp, channels))
        self.register_buffer("skip_counter", torch.zeros((), dtype=torch.long))
        self.last = None

    def extra_repr(self):
        return (f"{self.channels}, window=({self.window_fp}, {self.window_bp}), warmup={self.warmup_iters}, "
                f"filtration={self.outlier_filtration}, eps={self.eps}, momentum={self.momentum}")

    def scale_shift(self):
        """Inference map y = scale * x + shift."""
        scale = self.weight / (self.running_var + self.eps).sqrt()
        return scale, self.bias

    def forward(self, x):
        shape = x.shape
        x2d = x.reshape(-1, self.channels)
        if self.training:
            self.iters += 1
            y = _UNFunction.apply(x2d, self.weight, self.bias, self)
        else:
            scale, shift = self.scale_shift()
            y = x2d * scale + shift
        return y.reshape(shape)


class TokenBatchNorm(nn.Module):
    """Plain BatchNorm over all tokens (B*N rows) per channel: centering, batch statistics in training,
    running statistics at inference (torch defaults: momentum 0.1, eps 1e-5)."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.bn = nn.BatchNorm1d(channels, eps=eps, momentum=momentum)
        self.channels = channels

    def scale_shift(self):
        scale = self.bn.weight / (self.bn.running_var + self.bn.eps).sqrt()
        return scale, self.bn.bias - self.bn.running_mean * scale

    def forward(self, x):
        return self.bn(x.reshape(-1, self.channels)).reshape(x.shape)


# Norm kinds of the study; ``un`` takes the UnifiedNorm keyword arguments.
NORM_KINDS = ("ln", "bn", "un")
# warm-up / clamp-start readings (:func:`scaled_un_spec`) and the spec keys that choose between them
SCHEDULES = ("scaled", "official")
SCHEDULE_KEYS = {"warmup_frac", "clamp_frac", "schedule"}


def make_norm(spec: dict, channels: int) -> nn.Module:
    kind = spec.get("kind")
    if kind == "ln":
        return nn.LayerNorm(channels, eps=spec.get("eps", 1e-5))
    if kind == "bn":
        return TokenBatchNorm(channels, **{k: v for k, v in spec.items() if k in ("eps", "momentum")})
    if kind == "un":
        args = {k: v for k, v in spec.items() if k != "kind"}
        unknown = sorted(set(args) - set(UN_DEFAULTS) - SCHEDULE_KEYS)
        if unknown:
            raise ValueError(f"unknown UN parameter(s) {unknown}; known: {sorted(set(UN_DEFAULTS) | SCHEDULE_KEYS)}")
        for k in SCHEDULE_KEYS:
            args.pop(k, None)
        return UnifiedNorm(channels, **args)
    raise ValueError(f"unknown norm kind '{kind}'; known: {list(NORM_KINDS)}")


def scaled_un_spec(spec: dict, steps: int) -> dict:
    """Resolve UN's warm-up and ratio-clamp start for a run of ``steps`` steps (``schedule`` in the result).

    ``schedule: scaled`` (our reading; the default config's): the official warm-up (4000 of the NMT run's
    100k updates = 4 %) and the clamp start (max(1000, warm-up)) scaled to the run: ``warmup_frac`` /
    ``clamp_frac`` of it (default 0.04 each), at least one window + 1. ``schedule: official``: the official
    absolute iterations, warm-up ``warmup_iters`` (default 4000) and clamp from max(1000, warm-up) — in a
    run shorter than that, no smoothing, filtration or compensation ever starts. Without ``schedule`` the
    fractions are applied when given (``scaled``), else the official values stand."""
    if spec.get("kind") != "un":
        return dict(spec)
    out = dict(spec)
    sched = out.pop("schedule", None)
    if sched not in (None,) + SCHEDULES:
        raise ValueError(f"UN schedule must be one of {SCHEDULES}, got {sched!r}")
    fracs = [k for k in ("warmup_frac", "clamp_frac") if k in out]
    if sched == "official":
        if fracs:
            raise ValueError(f"UN schedule 'official' takes absolute iterations; remove {fracs}")
        out.setdefault("warmup_iters", UN_DEFAULTS["warmup_iters"])
        if out.get("clamp_start") is None:
            out["clamp_start"] = max(1000, int(out["warmup_iters"]))
        out["schedule"] = "official"
        return out
    if sched == "scaled":
        out.setdefault("warmup_frac", 0.04)
        out.setdefault("clamp_frac", 0.04)
    window = out.get("window", UN_DEFAULTS["window"])
    m = window if isinstance(window, int) else max(window)
    if "warmup_frac" in out:
        out["warmup_iters"] = max(int(math.ceil(out["warmup_frac"] * steps)), m + 1)
    if "clamp_frac" in out:
        out["clamp_start"] = max(int(math.ceil(out["clamp_frac"] * steps)), out.get("warmup_iters", 0))
    if "warmup_frac" in out or "clamp_frac" in out:
        out["schedule"] = "scaled"
    elif "warmup_iters" not in out and out.get("clamp_start") is None:
        out["schedule"] = "official"
    else:
        out["schedule"] = "custom"
    return out
