"""The one fake-quantization primitive every method uses, and the quantized linear layer.

Fake quantization = quantize to integer codes, then dequantize back to float, in one pass, so a
quantized model runs as an ordinary float model (as the official code of QuaRot, RRS and Tender evaluates);
:func:`quantize_codes` materializes the codes, for integer emulation and tests.

Granularity names are explicit about which axis a scale is shared along, because "per-channel" means
different things for weights and activations:

``per_tensor``  one scale for the whole tensor
``per_row``     one scale per index of all leading dims, shared along the last dim. For activations
                (…, tokens, features) that is *per token*; for a weight (out, in) it is *per output channel*.
``per_column``  one scale per index of the last dim, shared along all leading dims. For activations that
                is *per input channel*; for a weight it is per input channel.
``per_group``   contiguous groups of ``group_size`` along the last dim, one scale per (row, group).

Rounding is round-half-to-even (``torch.round``), as in the official code of QuaRot/RRS/Tender.
Symmetric signed: scale = clip·max|x| / (2^(b-1) - 1), codes clamped to [-2^(b-1), 2^(b-1) - 1].
Symmetric unsigned (non-negative inputs, e.g. post-ReLU): scale = clip·max(x) / (2^b - 1), codes in
[0, 2^b - 1]. Asymmetric: scale = clip·(max - min) / (2^b - 1), zero point round(-clip·min / scale),
codes in [0, 2^b - 1] (the min/max range is shrunk by the clip ratio, as in QuaRot's asymmetric mode).
An all-zero slice gets scale 1 (its codes are 0), never a division by zero.

The W4A4 helpers ``weight_quant`` / ``act_spec`` and the official code: docs/papers/rrs.md ("W4A4 weights ...").
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule

GRANULARITIES = ("per_tensor", "per_row", "per_column", "per_group")


@dataclass(frozen=True)
class QuantSpec:
    bits: int
    granularity: str = "per_row"
    symmetric: bool = True
    signed: bool = True
    group_size: int | None = None
    clip_ratio: float = 1.0

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity '{self.granularity}'; known: {GRANULARITIES}")
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in 1..16, got {self.bits}")
        if self.symmetric and self.signed and self.bits < 2:
            # qmax = 2^(b-1) - 1 = 0 would make the scale infinite and every output NaN
            raise ValueError("symmetric signed quantization needs bits >= 2 (1 bit leaves codes {-1, 0}); "
                             "use signed=False or symmetric=False for 1-bit")
        if self.granularity == "per_group" and not self.group_size:
            raise ValueError("per_group quantization needs group_size")
        if not 0 < self.clip_ratio <= 1:
            raise ValueError(f"clip_ratio must be in (0, 1], got {self.clip_ratio}")
        if not self.symmetric and not self.signed:
            raise ValueError("asymmetric quantization is always unsigned codes with a zero point; "
                             "set signed=True (the default) for asymmetric")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) if (self.symmetric and self.signed) else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if (self.symmetric and self.signed) else 2 ** self.bits - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, self)


def _grouped(x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """View x so that a reduction over the last dim gives one statistic per scale."""
    if spec.granularity == "per_tensor":
        return x.reshape(1, -1)
    if spec.granularity == "per_row":
        return x
    if spec.granularity == "per_column":
        return x.reshape(-1, x.shape[-1]).transpose(0, 1)
    g = spec.group_size
    if x.shape[-1] % g:
        raise ValueError(f"last dim {x.shape[-1]} is not a multiple of group_size {g}")
    return x.reshape(*x.shape[:-1], x.shape[-1] // g, g)


def _ungrouped(y: torch.Tensor, x: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    if spec.granularity == "per_column":
        return y.transpose(0, 1).reshape(x.shape)
    return y.reshape(x.shape)


def abs_max(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``x.abs().amax(dim, keepdim=True)`` computed as ``max(max x, -min x)``: the same value (negation is
    exact; NaN propagates through both), without writing an ``|x|`` copy of an activation-sized tensor."""
    return torch.maximum(x.amax(dim=dim, keepdim=True), x.amin(dim=dim, keepdim=True).neg_())


def scales_and_zeros(xg: torch.Tensor, spec: QuantSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scale (and zero point for asymmetric) per slice of the last dim of a grouped view."""
    if spec.symmetric:
        if spec.signed:
            ref = abs_max(xg, dim=-1)
        else:
            ref = xg.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = ref * spec.clip_ratio / spec.qmax
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return scale, None
    hi = xg.amax(dim=-1, keepdim=True).clamp(min=0) * spec.clip_ratio
    lo = xg.amin(dim=-1, keepdim=True).clamp(max=0) * spec.clip_ratio
    scale = (hi - lo) / spec.qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-lo / scale)
    return scale, zero


def quantize_codes(x: torch.Tensor, spec: QuantSpec, inplace: bool = False):
    """Integer codes (as float tensor of integral values), scale and zero point, in the grouped view.
    ``inplace=True`` overwrites ``x`` with the codes (for a caller that owns a fresh ``x``)."""
    xg = _grouped(x, spec)
    scale, zero = scales_and_zeros(xg, spec)
    q = (xg.div_(scale) if inplace else xg / scale).round_()    # then shifted and clamped in place
    if zero is not None:
        q.add_(zero)
    return q.clamp_(spec.qmin, spec.qmax), scale, zero


def fake_quant(x: torch.Tensor, spec: QuantSpec, inplace: bool = False) -> torch.Tensor:
    """Quantize and dequantize ``x`` with ``spec``; same shape and dtype as ``x``.

    The activation hot path (every quantized linear input): the codes' buffer is fresh, so the zero point
    and the scale are applied to it in place — ~25 % less time than a new tensor per step, same values.
    ``inplace=True`` also computes the codes in ``x``'s own memory (``x`` is overwritten; for a caller
    whose ``x`` is a fresh intermediate, e.g. runtime smoothing's ``x / s``)."""
    q, scale, zero = quantize_codes(x, spec, inplace)
    if zero is not None:
        q.sub_(zero)
    return _ungrouped(q.mul_(scale), x, spec).to(x.dtype)


class QuantLinear(nn.Module):
    """A linear layer with (already fake-quantized) weights and an optional runtime input quantizer.

    ``input_transform`` runs before the activation quantizer (e.g. an online Hadamard rotation or a
    runtime smoothing); it must be a callable on the input tensor. The weight is stored quantized once,
    at apply time, so evaluation costs one elementwise pass over activations beyond the float GEMM.
    """

    def __init__(self, linear: nn.Linear, weight: torch.Tensor, act_quant=None, input_transform=None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(weight.detach(), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.act_quant = act_quant
        self.input_transform = input_transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        if self.act_quant is not None:
            x = self.act_quant(x)
        return nn.functional.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, act_quant={self.act_quant}"


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


WEIGHT_QUANTIZERS = ("rtn", "gptq")


# ---- weights -------------------------------------------------------------------------------------------
def mse_clip_scale(w: torch.Tensor, bits: int, grid: int = 100, maxshrink: float = 0.8,
                   norm: float = 2.4) -> torch.Tensor:
    """Per-row scale (rows, 1) of symmetric INT-b minimizing Σ|Q(w)-w|^norm over shrink factors p.

    QuaRot's ``WeightQuantizer(mse=True)`` grid: ``p = 1 - i/grid`` for ``i < maxshrink·grid`` (80 candidates),
    error norm 2.4, first minimum kept (strict ``<``). Computed as ``s^norm · Σ|round(w/s) - w/s|^norm`` (the
    per-row factor ``s^norm`` taken out of the sum, ``|r|^norm`` as ``exp(norm·log|r|)``): the same values
    up to float rounding, ~2x faster than the literal form on CPU (tested against it). Rows are independent,
    so the search runs over blocks of rows small enough (~2^17 elements) for the 80 candidate passes to
    stay in the core's cache: ~1.3x faster than whole-matrix passes, identical result. Within a block, only
    the candidates that can still be a row's minimum are computed (:func:`_mse_clip_rows`: a lower bound
    without log/exp rules out ~2/3 of them on the suite's weights; same result)."""
    w = w.float()
    rows = max(1, _CLIP_BLOCK // max(1, w.shape[1]))
    search = _mse_clip_rows if norm >= 2 else _mse_clip_rows_all     # the bound needs norm >= 2
    return torch.cat([search(w[i: i + rows], bits, grid, maxshrink, norm) for i in range(0, w.shape[0], rows)])


_CLIP_BLOCK = 2 ** 17
# 1e-15^2.4 = 1e-36, still a normal float32: a zero |r| adds 1e-36 instead of 0 to a row's error sum,
# which float32 absorbs in any sum that has one ordinary term (~1e-7 or more); the scales chosen are
# identical to the unfloored search on every linear weight of the suite's two LMs (checked for #15) and on
# grid weights with exact zeros (tests/test_gptq.py).
_CLIP_FLOOR = 1e-15


def _clip_error(w: torch.Tensor, inv: torch.Tensor, s_pow: torch.Tensor, qmax: int, norm: float,
                r: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Σ_row |Q(w) - w|^norm as ``s^norm · Σ|round(w/s) - w/s|^norm`` for per-row scales s (rows, 1), given
    ``inv`` = 1.0 / s and ``s_pow`` = s^norm; ``r``, ``q``: scratch tensors of ``w``'s shape."""
    torch.mul(w, inv, out=r)
    torch.round(r, out=q).clamp_(-qmax - 1, qmax)
    # |r|^norm; |r| floored at _CLIP_FLOOR first: log(0) and an exp that underflows take a slow path in
    # the vector math (~6x slower passes on Gemma-3's GGUF weights, where 6 % of the |r| are exact zeros)
    q.sub_(r).abs_().clamp_(min=_CLIP_FLOOR).log_().mul_(norm).exp_()
    return q.sum(1, keepdim=True) * s_pow


# a candidate is skipped for a row when its lower bound exceeds a computed error by this relative margin; the
# float32 sums and the float64 bound are accurate to ~1e-6 relative, so the margin leaves ~1000x slack
_PRUNE_MARGIN = 1e-3
# row widths whose every element goes through the vector math in full SIMD vectors (no scalar tail) in a
# block of any number of rows, on 1 thread: then a row's error is the same bits in any block (see below)
_PRUNE_WIDTH = 32


def _mse_clip_rows(w: torch.Tensor, bits: int, grid: int, maxshrink: float, norm: float) -> torch.Tensor:
    """The search on a block of rows, each candidate computed only on the rows where it can win.

    By the power-mean inequality Σ|d|^norm ≥ n·(Σd²/n)^(norm/2) for the n errors d of a row (norm ≥ 2), and
    Σd² needs no log/exp: a cheap pass per candidate gives every (row, candidate) a lower bound of its error.
    Each row's candidate with the least bound gets its error computed; a candidate whose bound exceeds that
    error (by :data:`_PRUNE_MARGIN`) is above the row's minimum and is skipped. The kept (row, candidate)
    pairs (~1/3 of them on the suite's weights) are computed in blocks of the same size, and the first
    minimum of each row is its scale, as in the full search (strict ``<`` in grid order).

    Bit-identical to computing every candidate (:func:`_mse_clip_rows_all`; tests on random, grid and the
    suite's real weights) because each pair's error is the same float operations on the same values: the
    elementwise steps are exact or run in full SIMD vectors (rows a multiple of :data:`_PRUNE_WIDTH` wide, one
    thread), the row sums do not depend on the other rows, and ``s^norm`` is taken from the full search's own
    per-candidate computation. Elsewhere (other widths, several threads) every candidate is computed."""
    n = w.shape[1]
    if n % _PRUNE_WIDTH or torch.get_num_threads() != 1:
        return _mse_clip_rows_all(w, bits, grid, maxshrink, norm)
    qmax = 2 ** (bits - 1) - 1
    absmax = w.abs().amax(1, keepdim=True).clamp(min=1e-5)
    cands = int(maxshrink * grid)
    r = torch.empty_like(w)
    q = torch.empty_like(w)
    per_cand = [(1 - i / grid) * absmax / qmax for i in range(cands)]      # each as the full search makes it
    scales = torch.cat(per_cand, 1)                                                    # (rows, cands)
    invs = torch.cat([1.0 / s for s in per_cand], 1)
    s_pows = torch.cat([s.pow(norm) for s in per_cand], 1)
    sq = torch.empty(w.shape[0], cands)
    for i in range(cands):
        torch.mul(w, invs[:, i: i + 1], out=r)
        torch.round(r, out=q).clamp_(-qmax - 1, qmax).sub_(r)
        sq[:, i] = torch.linalg.vecdot(q, q)
    bound = n * (sq.double() / n).pow(norm / 2) * scales.double().pow(norm)
    ref = bound.argmin(1, keepdim=True)
    ref_err = _clip_error(w, invs.gather(1, ref), s_pows.gather(1, ref), qmax, norm, r, q).double()
    rows, cand = (bound * (1 - _PRUNE_MARGIN) <= ref_err).nonzero(as_tuple=True)
    err = torch.full((w.shape[0], cands), float("inf"))
    step = w.shape[0]
    for a in range(0, rows.numel(), step):
        i, c = rows[a: a + step], cand[a: a + step]
        k = i.numel()
        err[i, c] = _clip_error(w.index_select(0, i), invs[i, c].unsqueeze(1), s_pows[i, c].unsqueeze(1), qmax,
                                norm, r[:k], q[:k]).squeeze(1)
    # the first minimum; NaN never wins (as with the strict ``<``); no finite error: candidate 0 (no shrink)
    first = torch.nan_to_num(err, nan=float("inf")).argmin(1, keepdim=True)
    return scales.gather(1, first)


def _mse_clip_rows_all(w: torch.Tensor, bits: int, grid: int, maxshrink: float, norm: float) -> torch.Tensor:
    """Every candidate computed on every row, in grid order, the first minimum kept (strict ``<``)."""
    qmax = 2 ** (bits - 1) - 1
    absmax = w.abs().amax(1, keepdim=True).clamp(min=1e-5)
    best = torch.full_like(absmax, float("inf"))
    scale = absmax / qmax
    r = torch.empty_like(w)
    q = torch.empty_like(w)
    for i in range(int(maxshrink * grid)):
        s = (1 - i / grid) * absmax / qmax
        err = _clip_error(w, 1.0 / s, s.pow(norm), qmax, norm, r, q)
        better = err < best
        best = torch.where(better, err, best)
        scale = torch.where(better, s, scale)
    return scale


def _mse_clip_scale_literal(w: torch.Tensor, bits: int, grid: int = 100, maxshrink: float = 0.8,
                            norm: float = 2.4) -> torch.Tensor:
    """The literal form of :func:`mse_clip_scale` (QuaRot's loop), for tests."""
    qmax = 2 ** (bits - 1) - 1
    w = w.double()
    absmax = w.abs().amax(1, keepdim=True).clamp(min=1e-5)
    best = torch.full_like(absmax, float("inf"))
    scale = absmax / qmax
    for i in range(int(maxshrink * grid)):
        s = (1 - i / grid) * absmax / qmax
        err = (torch.clamp(torch.round(w / s), -qmax - 1, qmax) * s - w).abs_().pow_(norm).sum(1, keepdim=True)
        better = err < best
        best = torch.where(better, err, best)
        scale = torch.where(better, s, scale)
    return scale


def weight_quant(w: torch.Tensor, bits: int, clip: str = "none", scale: torch.Tensor | None = None) -> torch.Tensor:
    """Fake-quantized copy of a weight (out, in): symmetric per output channel, INT-``bits``. ``scale``: the
    result of ``mse_clip_scale(w, bits)`` when it is already known (``clip="mse"`` only), instead of the search."""
    if bits >= 16:
        return w.detach().clone()
    if scale is not None and clip != "mse":
        raise ValueError(f"a given weight scale stands for the MSE clip search; this weight's clip is '{clip}'")
    if clip == "none":
        return fake_quant(w.detach(), QuantSpec(bits=bits, granularity="per_row"))
    if clip == "mse":
        qmax = 2 ** (bits - 1) - 1
        s = mse_clip_scale(w.detach(), bits) if scale is None else scale
        if s.shape != (w.shape[0], 1):
            raise ValueError(f"a given weight scale has shape {tuple(s.shape)}; this weight needs ({w.shape[0]}, 1)")
        return (torch.clamp(torch.round(w.detach().float() / s), -qmax - 1, qmax) * s).to(w.dtype)
    raise ValueError(f"unknown weight clip '{clip}'; known: 'none', 'mse'")


# ---- activations -----------------------------------------------------------------------------------------
def act_spec(bits: int, clip_ratio: float = 1.0) -> QuantSpec | None:
    """Symmetric per-token activation quantizer, or None for ``bits >= 16``."""
    return None if bits >= 16 else QuantSpec(bits=bits, granularity="per_row", clip_ratio=clip_ratio)


@torch.no_grad()
def quantize_block_linears(model: nn.Module, arch: ArchSpec, w_bits: int, act_quant_for,
                           transforms: dict[str, nn.Module] | None = None, w_clip: str = "none",
                           weights: dict[str, torch.Tensor] | None = None,
                           clip_scales: dict[str, torch.Tensor] | None = None) -> None:
    """Replace every block linear by a :class:`QuantLinear`.

    ``act_quant_for(role)`` gives the activation quantizer of a linear by its role (q, k, v, o, gate, up,
    down, fc1, fc2). ``transforms[full name]`` is an online input transform (already folded into the
    weight). ``weights[full name]``, when given, is the already quantized weight (GPTQ). ``clip_scales[full
    name]``, when given, is the result of the weight's MSE clip search (``w_clip="mse"``), known already (see
    :func:`lpbench.methods.gptq.clip_scales_key`). At ``w_bits >= 16`` the QuantLinear takes over the linear's
    own weight tensor (the linear is dropped: no copy needed)."""
    transforms = transforms or {}
    roles = {rel: role for role, rel in arch.block_linears().items()}
    for name in arch.linear_names(model):
        lin = get_submodule(model, name)
        role = roles[name.split(".", len(arch.layers.split(".")) + 1)[-1]]
        if weights is not None and name in weights:
            wq = weights[name]
        else:
            wq = lin.weight.data if w_bits >= 16 else weight_quant(lin.weight.data, w_bits, w_clip,
                                                                   (clip_scales or {}).get(name))
        replace_module(model, name, QuantLinear(lin, wq, act_quant=act_quant_for(role),
                                                input_transform=transforms.get(name)))
