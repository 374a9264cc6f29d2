"""Tender's datapath (Lee et al., ISCA 2024): the decomposition of an activation into channel groups
whose scales are powers of two apart, and the integer-only execution of one linear layer on it.

The decomposition is steps 1–5 of docs/papers/tender.md, where its behaviour is checked against the
official code ``snu-comparch/Tender``; the method, its calibration and its modules are :mod:`lpbench.methods.tender`.

Integer execution (:func:`tender_int_linear`) proves TENDER-2: with codes per group and the group scales
powers of two apart, the shift accumulation A ← 2^k·A + P_i (largest scale first) followed by one float
multiply by s_w·s_min equals the dequantize-and-sum result (exactly, in integers), barring INT32 overflow,
which is detected and reported. The emulation runs chunk by chunk (one output-tile row), one exact GEMM per
non-empty group over that group's channels only (float64 BLAS when every partial sum is an integer below
2^53, else int64). :func:`exactness_check` compares it with an independent exact reference built from the
fake-quant float tensor alone; :meth:`Tender.exactness_on_model` runs that on real layers with a calibrated
artifact (rule ``tender_exactness``); :func:`artifact_nonempty_groups` measures the non-empty groups per
chunk that the accelerator cost model (:mod:`lpbench.accel.systolic`) charges shift slots for.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SCALE_FLOOR = 1e-9          # official sym_quant: torch.clamp(scale.abs(), min=1e-9)
SCHEMES = ("round_up", "round_down")


# ---------------------------------------------------------------------------------------------------
# core decomposition
# ---------------------------------------------------------------------------------------------------
def qrange(bits: int, unsigned: bool) -> tuple[int, int]:
    return (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def chunk_rows(x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, int]:
    """(..., T, C) → (..., n, chunk, C) with the last chunk zero-padded (as the official code)."""
    tokens = x.shape[-2]
    if tokens < 1:
        raise ValueError("Tender needs at least one token")
    n = math.ceil(tokens / chunk)
    pad = n * chunk - tokens
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    return x.reshape(*x.shape[:-2], n, chunk, x.shape[-1]), tokens


def unchunk_rows(y: torch.Tensor, tokens: int) -> torch.Tensor:
    """(..., n, chunk, C) → (..., T, C), dropping the padding rows."""
    return y.reshape(*y.shape[:-3], y.shape[-3] * y.shape[-2], y.shape[-1])[..., :tokens, :]


def take_positions(t: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """First ``n`` chunk positions of a calibrated per-position tensor along ``dim``; when fewer were
    calibrated, the last calibrated position is repeated."""
    have = t.shape[dim]
    if have >= n:
        return t.narrow(dim, 0, n)
    last = t.narrow(dim, have - 1, 1)
    reps = [1] * t.dim()
    reps[dim] = n - have
    return torch.cat([t, last.repeat(*reps)], dim=dim)


def tender_thresholds(tmax: torch.Tensor, groups: int) -> torch.Tensor:
    """θ_i = TMax / 2^(G−1−i), i = 0..G−1, on a new last dim (exact power-of-two divisions)."""
    div = torch.pow(2.0, torch.arange(groups - 1, -1, -1, dtype=tmax.dtype, device=tmax.device))
    return tmax.unsqueeze(-1) / div


def tender_group_index(cmax: torch.Tensor, tmax: torch.Tensor, groups: int,
                       scheme: str = "round_up") -> torch.Tensor:
    """Group of each channel. ``cmax`` (..., C), ``tmax`` (...) → int64 (..., C) in [0, G−1].

    Round-up: the number of thresholds θ_0..θ_{G−2} that CMax exceeds (so θ_{i−1} < CMax ≤ θ_i → i,
    CMax ≤ θ_0 → 0, and anything above θ_{G−2} → G−1, which is also the official rule for the softmax
    probabilities and the LM head). Round-down: one group lower, group 0 stays 0.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown Tender scheme '{scheme}'; known: {SCHEMES}")
    thr = tender_thresholds(tmax, groups)[..., : groups - 1]
    gi = (cmax.unsqueeze(-1) > thr.unsqueeze(-2)).sum(-1)
    if scheme == "round_down":
        gi = (gi - 1).clamp(min=0)
    return gi


@dataclass
class TenderParts:
    """Everything one decomposition produced, in the chunked layout (..., n, chunk, C)."""
    deq: torch.Tensor                 # dequantized X' (bias removed), float32
    codes: torch.Tensor               # integer codes (float tensor of integral values)
    scale: torch.Tensor               # (..., n, 1, C): the scale of each channel's group
    group_index: torch.Tensor         # (..., n, C) int64
    tmax: torch.Tensor                # (..., n)
    cmax: torch.Tensor | None         # (..., n, C) runtime CMax (None when static groups were given)
    bias: torch.Tensor | None         # (..., n, 1, C) channel bias that was subtracted, or None
    tokens: int
    bits: int
    groups: int
    unsigned: bool


def decompose(x: torch.Tensor, bits: int, groups: int, chunk: int, bias, scheme: str, unsigned: bool,
               tmax: torch.Tensor | None = None, group_index: torch.Tensor | None = None) -> TenderParts:
    if groups < 1:
        raise ValueError(f"groups must be >= 1, got {groups}")
    xc, tokens = chunk_rows(x.float(), chunk)
    n = xc.shape[-3]
    if bias is False or unsigned:
        b = None
    elif bias is None:
        b = (xc.amax(-2, keepdim=True) + xc.amin(-2, keepdim=True)) / 2
    else:
        b = take_positions(bias.float().to(xc.device), n, -2).unsqueeze(-2)
    xs = xc - b if b is not None else xc
    cmax = None
    if tmax is None or group_index is None:
        cmax = xs.abs().amax(-2)
    tm = cmax.amax(-1) if tmax is None else take_positions(tmax.float().to(xc.device), n, -1)
    if group_index is None:
        gi = tender_group_index(cmax, tm, groups, scheme)
    else:
        gi = take_positions(group_index.long().to(xc.device), n, -2)
    qmin, qmax = qrange(bits, unsigned)
    theta = tm.unsqueeze(-1) / torch.exp2((groups - 1 - gi).to(tm.dtype))
    scale = (theta / qmax).clamp(min=SCALE_FLOOR).unsqueeze(-2)
    codes = torch.round(xs / scale).clamp_(qmin, qmax)
    return TenderParts(deq=codes * scale, codes=codes, scale=scale, group_index=gi, tmax=tm, cmax=cmax,
                       bias=b, tokens=tokens, bits=bits, groups=groups, unsigned=unsigned)


def tender_decompose(x: torch.Tensor, bits: int, groups: int, chunk: int = 256, bias=None,
                     scheme: str = "round_up", unsigned: bool = False, *, tmax: torch.Tensor | None = None,
                     group_index: torch.Tensor | None = None, add_bias: bool = True,
                     return_parts: bool = False):
    """Tender fake quantization of an activation ``x`` (..., tokens, channels).

    ``bias``: ``None`` → runtime channel bias (max+min)/2 per chunk; a tensor (n_cal, C) (or with leading
    dims broadcastable to x's, e.g. (heads, n_cal, C)) → calibrated bias per chunk position; ``False`` →
    no bias. Unsigned inputs never get a bias. ``tmax`` (…, n_cal) and ``group_index`` (…, n_cal, C)
    optionally give static (calibrated) TMax and channel groups.

    Returns the dequantized tensor of x's shape. With ``add_bias`` the channel bias is added back to the
    input (X̂' + b); the official code instead adds b·Wᵀ after the GEMM with the FP weight (see module
    docstring; :class:`TenderLinear` does that). ``return_parts`` returns the :class:`TenderParts`.
    """
    parts = decompose(x, bits, groups, chunk, bias, scheme, unsigned, tmax, group_index)
    if return_parts:
        return parts
    y = parts.deq + parts.bias if (add_bias and parts.bias is not None) else parts.deq
    return unchunk_rows(y, parts.tokens).to(x.dtype)


# ---------------------------------------------------------------------------------------------------
# integer-only execution of one Tender linear layer
# ---------------------------------------------------------------------------------------------------
class TenderOverflowError(ArithmeticError):
    """The shift-accumulated integer result does not fit the accumulator."""


@dataclass
class TenderIntResult:
    y: torch.Tensor                   # (..., T, N) output in x's dtype
    acc: torch.Tensor                 # (..., n, chunk, N) int64 holding the accumulator values
    s_min: torch.Tensor               # (..., n) scale of the smallest non-empty group per chunk
    i_min: torch.Tensor               # (..., n) index of that group
    w_scale: torch.Tensor             # (N,) per-output-channel weight scale
    w_codes: torch.Tensor             # (N, K) int64
    nonempty: torch.Tensor            # (..., n, G) bool
    overflow: bool
    max_abs: int                      # largest |value| the accumulator (or a group partial sum) held
    acc_bits: int
    exact: bool                       # False if a non-empty group's scale hit the 1e-9 floor


def _int_codes_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    qmax = 2 ** (bits - 1) - 1
    s = (w.float().abs().amax(-1, keepdim=True) / qmax)
    s = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.round(w.float() / s).clamp(-(qmax + 1), qmax)
    return q.long(), s.squeeze(-1)


def tender_int_linear(x: torch.Tensor, w: torch.Tensor, bits: int, groups: int, chunk: int = 256,
                      bias=None, scheme: str = "round_up", unsigned: bool = False, *,
                      weight_bits: int | None = None, layer_bias: torch.Tensor | None = None,
                      tmax: torch.Tensor | None = None, group_index: torch.Tensor | None = None,
                      acc_bits: int = 32, on_overflow: str = "raise") -> TenderIntResult:
    """Integer-only execution of one Tender linear layer y = x·Wᵀ (W: (N, K)).

    Activation codes per group and weight codes (per-output-channel symmetric, ``weight_bits``) are int64
    tensors holding int4/int8 (uint for ``unsigned``) values. Per chunk, the groups are visited from the
    largest scale (G−1) to the smallest; for each non-empty group i the integer partial product
    P_i = Q_i·W_qᵀ is accumulated as A ← 2^k·A + P_i, where k is the distance to the previously visited
    non-empty group (k = 1 when no group is empty: the paper's A ← 2A + P). After the last non-empty
    group i_min, Y = A · (s_w · s_{i_min}) — one float multiply per output (in float64, then cast) — plus
    b·Wᵀ (FP weight, as the official code) and the layer bias.

    Overflow: every group partial P_i, every shifted accumulator and every A after an addition is checked
    against the signed ``acc_bits`` range. (Intermediate sums inside one group in a particular streaming
    order are not checked; with wrap-around arithmetic they would not change a final value that fits.)
    ``on_overflow="raise"`` raises :class:`TenderOverflowError` naming the layer size; ``"flag"`` returns
    the result with ``overflow=True`` (the int64 values are the true, unwrapped ones).
    """
    if on_overflow not in ("raise", "flag"):
        raise ValueError("on_overflow must be 'raise' or 'flag'")
    wb = weight_bits or bits
    parts = decompose(x, bits, groups, chunk, bias, scheme, unsigned, tmax, group_index)
    q = parts.codes.long()                                  # (..., n, chunk, K)
    gi = parts.group_index                                  # (..., n, K)
    qw, s_w = _int_codes_weight(w, wb)                      # (N, K), (N,)
    lead = q.shape[:-2]                                     # (..., n)
    gi = gi.expand(*lead, gi.shape[-1])
    limit = 2 ** (acc_bits - 1)
    K, N = qw.shape[1], qw.shape[0]
    # Integer GEMMs: exact in float64 when every partial sum is an integer below 2^53 (|code_x| <= 2^bits,
    # |code_w| <= 2^(wb-1)), whatever the summation order; otherwise in int64 (slow, no BLAS).
    exact_f64 = K * 2 ** bits * 2 ** (wb - 1) < 2 ** 53
    qf = q.reshape(-1, *q.shape[-2:])                       # (L, chunk, K)
    gf = gi.reshape(-1, K)                                  # (L, K)
    acc = torch.zeros(qf.shape[0], qf.shape[1], N, dtype=torch.int64)
    last = torch.full((qf.shape[0],), -1, dtype=torch.int64)
    nonempty = torch.zeros(qf.shape[0], groups, dtype=torch.bool)
    hi, lo = 0, 0
    qw_f = qw.double() if exact_f64 else qw
    for tile in range(qf.shape[0]):                         # one chunk (output-tile row) at a time
        present = torch.unique(gf[tile])
        nonempty[tile, present] = True
        for g in sorted(present.tolist(), reverse=True):    # largest scale first
            cols = (gf[tile] == g).nonzero().flatten()
            if exact_f64:
                p = (qf[tile][:, cols].double() @ qw_f[:, cols].T).long()
            else:
                p = qf[tile][:, cols] @ qw[:, cols].T
            k = int(last[tile]) - g if int(last[tile]) >= 0 else 0
            shifted = torch.bitwise_left_shift(acc[tile], k)
            new = shifted + p
            for t in (p, shifted, new):
                hi, lo = max(hi, int(t.max())), min(lo, int(t.min()))
            acc[tile] = new
            last[tile] = g
    acc = acc.reshape(*lead, qf.shape[1], N)
    last = last.reshape(lead)
    nonempty = nonempty.reshape(*lead, groups)
    max_abs = max(hi, -lo)
    overflow = hi > limit - 1 or lo < -limit
    if overflow and on_overflow == "raise":
        rows = parts.tokens * math.prod(lead[:-1])
        raise TenderOverflowError(
            f"INT{acc_bits} accumulator overflow in a Tender linear layer of size K={K} → N={N} "
            f"({rows} token rows, INT{bits} activations / INT{wb} weights, G={groups}): "
            f"values reach [{lo}, {hi}], outside [-2^{acc_bits - 1}, 2^{acc_bits - 1} - 1]")
    i_min = last.clamp(min=0)
    qmax = qrange(bits, unsigned)[1]
    theta = parts.tmax / torch.exp2((groups - 1 - i_min).to(parts.tmax.dtype))
    s_min_raw = theta / qmax
    s_min = s_min_raw.clamp(min=SCALE_FLOOR)
    # exactness of the power-of-two relation fails only if a used (non-empty) group's scale was floored
    g_idx = torch.arange(groups, device=q.device)
    used_scales = parts.tmax.unsqueeze(-1) / torch.exp2((groups - 1 - g_idx).to(parts.tmax.dtype)) / qmax
    exact = not bool(((used_scales < SCALE_FLOOR) & nonempty).any())
    fscale = (s_min.double()[..., None, None] * s_w.double())      # (..., n, 1, N)
    y = acc.double() * fscale
    if parts.bias is not None:
        y = y + (parts.bias.double() @ w.double().T)
    y = unchunk_rows(y, parts.tokens)
    if layer_bias is not None:
        y = y + layer_bias.double()
    return TenderIntResult(y=y.to(x.dtype), acc=acc, s_min=s_min, i_min=i_min, w_scale=s_w, w_codes=qw,
                           nonempty=nonempty, overflow=overflow, max_abs=max_abs, acc_bits=acc_bits,
                           exact=exact)


def _exact_int_gemm(a: torch.Tensor, b: torch.Tensor, bound: float) -> torch.Tensor:
    """a @ b.T for integer-valued int64 tensors: float64 BLAS when every partial sum stays below 2^53
    (then the result is exact whatever the summation order), else int64."""
    if bound < 2 ** 53:
        return (a.double() @ b.double().T).long()
    return a @ b.T


def exactness_check(x: torch.Tensor, w: torch.Tensor, bits: int, groups: int, chunk: int = 256, bias=None,
                    scheme: str = "round_up", unsigned: bool = False, *, weight_bits: int | None = None,
                    tmax: torch.Tensor | None = None, group_index: torch.Tensor | None = None,
                    acc_bits: int = 32) -> dict:
    """TENDER-2 on one layer: the integer shift accumulation against the fake-quant dequantize-and-sum.

    Reference (independent of the shift path): the fake quantizer's float output X̂' (what the official
    code and :class:`TenderLinear` multiply) is turned back into integers in the unit of the smallest
    non-empty group's scale, X_int[t, j] = round(X̂'[t, j] / s_{g(j)}) · 2^(g(j) − i_min) (checking that
    those codes reproduce X̂' bit for bit), and multiplied by the weight codes in one exact integer GEMM:
    R = X_int · W_qᵀ, i.e. the dequantize-and-sum result Σ_g s_g·s_w·P_g in units of s_min·s_w, without
    groups, partial sums or shifts. The emulation's accumulator A (per-group GEMMs, A ← 2^k·A + P) must
    equal R in every output element (``mismatches`` counts those that do not). The accumulator is int64,
    so values are exact even where a real INT``acc_bits`` accumulator would overflow (``overflow``).
    Also reported: the relative difference of the final outputs from the float64 GEMM of the fake-quant
    tensors (float rounding of the dequantized values only) and from the float32 fake-quant layer.
    """
    wb = weight_bits or bits
    r = tender_int_linear(x, w, bits, groups, chunk, bias, scheme, unsigned, weight_bits=wb, tmax=tmax,
                          group_index=group_index, acc_bits=acc_bits, on_overflow="flag")
    parts = decompose(x, bits, groups, chunk, bias, scheme, unsigned, tmax, group_index)
    deq, scale = parts.deq, parts.scale                     # (..., n, chunk, K), (..., n, 1, K)
    codes = torch.round(deq / scale)
    code_mismatch = int((codes * scale != deq).sum())       # recovered codes must give X̂' back exactly
    gi = parts.group_index.expand(*deq.shape[:-2], deq.shape[-1])
    shift = (gi - r.i_min.unsqueeze(-1)).clamp(min=0)       # 2^(g - i_min); groups below i_min are empty
    x_int = codes.long() * torch.bitwise_left_shift(torch.ones_like(shift), shift).unsqueeze(-2)
    qw, s_w = r.w_codes, r.w_scale
    K = w.shape[1]
    bound = K * 2 ** bits * 2 ** (groups - 1) * 2 ** (wb - 1)
    ref = _exact_int_gemm(x_int.reshape(-1, K), qw, bound).reshape(r.acc.shape)
    mismatches = int((ref != r.acc).sum())
    # float comparisons (informational): float64 GEMM of the fake-quant tensors, and the float32 layer
    w_hat = (qw.double() * s_w.double().unsqueeze(-1))
    y64 = deq.double() @ w_hat.T
    y32 = F.linear(deq, w_hat.float())
    if parts.bias is not None:
        y64 = y64 + parts.bias.double() @ w.double().T
        y32 = y32 + parts.bias @ w.float().T
    y64, y32 = unchunk_rows(y64, parts.tokens), unchunk_rows(y32, parts.tokens)
    yi = r.y.double()
    denom = y64.abs().max().clamp(min=1e-30)
    return {"outputs": int(r.acc.numel()), "mismatches": mismatches, "code_mismatches": code_mismatch,
            "overflow": bool(r.overflow), "acc_max_abs": int(r.max_abs),
            "acc_bits_needed": int(r.max_abs).bit_length() + 1, "acc_bits": acc_bits,
            "scale_exact": bool(r.exact),
            "nonempty_groups_mean": float(r.nonempty.sum(-1).double().mean()),
            "max_rel_diff_fp64_fakequant": float((yi - y64).abs().max() / denom),
            "max_rel_diff_fp32_fakequant": float((yi - y32.double()).abs().max() / denom)}


def overflow_check(rows: list[dict], acc_bits: int = 32) -> dict:
    """TENDER-2's accumulator check over the layers :func:`exactness_check` ran on (its result rows, each
    with ``acc_max_abs``, ``overflow`` and ``acc_bits``; layer fields ``block`` / ``site`` / ``linear`` /
    ``K`` name the worst one when present): the largest value any group partial sum, shifted accumulator or
    accumulator held against the signed INT``acc_bits`` range. ``pass`` is 1 iff no layer overflowed.
    ``mismatches`` is the sum over the layers (so the row also reads as their exactness total)."""
    if not rows:
        raise ValueError("overflow_check needs at least one checked layer")
    bad = sorted({int(r["acc_bits"]) for r in rows} - {acc_bits})
    if bad:
        raise ValueError(f"overflow_check(acc_bits={acc_bits}) on rows checked against INT{bad}")
    worst = max(rows, key=lambda r: int(r["acc_max_abs"]))
    peak = int(worst["acc_max_abs"])
    where = " ".join(f"{k}={worst[k]}" for k in ("block", "site", "linear", "K") if k in worst)
    over = [r for r in rows if r["overflow"]]
    return {"check": f"int{acc_bits}_overflow", "layers": len(rows), "acc_bits": acc_bits,
            "acc_max_abs": peak, "acc_limit": 2 ** (acc_bits - 1) - 1, "acc_bits_needed": peak.bit_length() + 1,
            "headroom_bits": acc_bits - (peak.bit_length() + 1), "overflow_layers": len(over),
            "overflow": bool(over), "pass": int(not over), "result": "fail" if over else "pass", "worst_layer": where,
            "mismatches": int(sum(int(r["mismatches"]) for r in rows))}
