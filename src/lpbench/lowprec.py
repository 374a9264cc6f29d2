"""Low-precision floating-point emulation: the one module SLaNC and IterL2Norm share.

Every value lives in a ``float64`` tensor that holds a number exactly representable in the emulated
format ``fmt`` ∈ {"fp64", "fp32", "fp16", "bf16"}. Each arithmetic operation is computed in float64 and
then rounded once to ``fmt`` (:func:`round_to`), so a chain of operations behaves like hardware that
rounds after every add and multiply (no fused multiply-add). By the double-rounding theorem (float64 has
53 ≥ 2·24 + 2 significand bits) a float64 operation followed by :func:`round_to` is a correctly rounded
fp32 / fp16 / bf16 operation. :func:`round_to` rounds to nearest, ties to even, with gradual underflow and
overflow to ±inf — for fp16 / bf16 not with torch's cast, which rounds twice (through float32).

:func:`accumulate_sum` reduces in a declared order (``sequential``, ``pairwise`` adder tree, ``blocked``
lanes). :func:`emulated_norm` computes LayerNorm / RMSNorm with every operation rounded, optionally on the
input scaled by SLaNC's static s (with eps/s², so in exact arithmetic the output does not depend on s),
and returns per-token overflow / underflow statistics.

Why the emulation is exact, how :func:`round_to` rounds, the summation orders, the norm statistics, the
static scale and eps, and the per-token statistics: docs/papers/slanc.md ("Low-precision emulation").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

F64 = torch.float64


@dataclass(frozen=True)
class Format:
    name: str
    p: int            # significand bits including the implicit leading one
    emin: int         # exponent of the smallest normal number
    emax: int         # exponent of the largest finite number
    dtype: torch.dtype
    int_dtype: torch.dtype   # integer type of the same width (bit views)

    @property
    def bits(self) -> int:
        return torch.finfo(self.dtype).bits

    @property
    def mantissa_bits(self) -> int:
        return self.p - 1

    @property
    def bias(self) -> int:
        return 1 - self.emin

    @property
    def u(self) -> float:
        """Unit roundoff of round-to-nearest: 2^-p."""
        return 2.0 ** -self.p

    @property
    def max(self) -> float:
        return (2.0 - 2.0 ** (1 - self.p)) * 2.0 ** self.emax

    @property
    def tiny(self) -> float:
        """Smallest positive normal number."""
        return 2.0 ** self.emin

    @property
    def min_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.p + 1)


FORMATS: dict[str, Format] = {
    "fp64": Format("fp64", 53, -1022, 1023, torch.float64, torch.int64),
    "fp32": Format("fp32", 24, -126, 127, torch.float32, torch.int32),
    "fp16": Format("fp16", 11, -14, 15, torch.float16, torch.int16),
    "bf16": Format("bf16", 8, -126, 127, torch.bfloat16, torch.int16),
}
ORDERS = ("sequential", "pairwise", "blocked")


def get_format(fmt: str | Format) -> Format:
    if isinstance(fmt, Format):
        return fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown floating-point format '{fmt}'; known: {sorted(FORMATS)}")
    return FORMATS[fmt]


def pow2(k: torch.Tensor) -> torch.Tensor:
    """Exact 2^k as float64 for an integer tensor k in [-1022, 1023] (built from the exponent bits)."""
    return ((k.to(torch.int64) + 1023) << 52).view(F64)


def exponent(x: torch.Tensor) -> torch.Tensor:
    """⌊log₂|x|⌋ as int64, exact (for a normal number of any format this is its biased exponent field
    minus the bias; for a subnormal it is what a leading-zero count gives). 0 maps to -1."""
    return torch.frexp(x.to(F64))[1].to(torch.int64) - 1


def _round_generic(x: torch.Tensor, f: Format) -> torch.Tensor:
    e = torch.clamp(exponent(x), min=f.emin)
    qexp = e - (f.p - 1)
    r = torch.round(x * pow2(-qexp)) * pow2(qexp)
    r = torch.where(r.abs() > f.max, torch.copysign(torch.full_like(r, math.inf), x), r)
    return torch.where(torch.isfinite(x), r, x)


def round_to(x, fmt: str | Format) -> torch.Tensor:
    """Round to the nearest value of ``fmt`` (ties to even, subnormals, overflow to ±inf); float64 out."""
    f = get_format(fmt)
    x = torch.as_tensor(x, dtype=F64) if not isinstance(x, torch.Tensor) else x.to(F64)
    if f.name == "fp64":
        return x
    if f.name == "fp32":
        return x.to(torch.float32).to(F64)
    return _round_generic(x, f)


class Arith:
    """Arithmetic in ``fmt``: every operation is computed in float64 and rounded once to the format
    (correctly rounded by the double-rounding theorem, see docs/papers/slanc.md). No fused ops.
    Operands must be representable already (use :meth:`r` / :meth:`const` on inputs).

    Fast path: the float64 result of +, −, ×, ÷, √ on *representable* operands is rounded with torch's
    cast (float64 → float32 → fp16/bf16). By the same theorem applied twice (53 ≥ 2·24+2 and
    24 ≥ 2·11+2) that chain equals one correct rounding of the exact result, so the cast is exact here
    — unlike for arbitrary float64 inputs, which :meth:`r` rounds with the generic method. The tests
    check the ops bit for bit against numpy float16 and torch bfloat16 arithmetic."""

    def __init__(self, fmt: str | Format):
        self.f = get_format(fmt)
        self.fmt = self.f.name

    def r(self, x) -> torch.Tensor:
        return round_to(x, self.f)

    const = r

    def _op(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.fmt == "fp64" else x.to(self.f.dtype).to(F64)

    def add(self, a, b):
        return self._op(a + b)

    def sub(self, a, b):
        return self._op(a - b)

    def mul(self, a, b):
        return self._op(a * b)

    def div(self, a, b):
        return self._op(a / b)

    def sqrt(self, a):
        return self._op(torch.sqrt(a))

    def rsqrt(self, a):
        """One rounded inverse-square-root unit: fl(1/√a) (float64 rsqrt, then rounded)."""
        return self.r(torch.rsqrt(a))


FormatOps = Arith


def _tree_sum(x: torch.Tensor, A: Arith) -> torch.Tensor:
    n = x.shape[-1]
    if n == 0:
        return x.new_zeros(x.shape[:-1])
    width = 1 << (n - 1).bit_length()
    if width != n:
        x = torch.nn.functional.pad(x, (0, width - n))
    while x.shape[-1] > 1:
        x = A.add(x[..., 0::2], x[..., 1::2])
    return x[..., 0]


def _sequential_sum(x: torch.Tensor, A: Arith) -> torch.Tensor:
    if x.shape[-1] == 0:
        return x.new_zeros(x.shape[:-1])
    acc = x[..., 0]
    for i in range(1, x.shape[-1]):
        acc = A.add(acc, x[..., i])
    return acc


def accumulate_sum(x: torch.Tensor, fmt: str | Format, order: str = "sequential",
                   block: int = 16) -> torch.Tensor:
    """Σ over the last dim in ``fmt`` with a rounding after every add, in the given ``order``
    (see docs/papers/slanc.md). Inputs are first rounded to ``fmt``. Vectorized over leading dims."""
    A = Arith(fmt)
    x = A.r(x)
    if order == "sequential":
        return _sequential_sum(x, A)
    if order == "pairwise":
        return _tree_sum(x, A)
    if order == "blocked":
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        n = x.shape[-1]
        nb = max(1, -(-n // block))
        x = torch.nn.functional.pad(x, (0, nb * block - n))
        partial = _sequential_sum(x.reshape(*x.shape[:-1], nb, block), A)
        return _tree_sum(partial, A)
    raise ValueError(f"unknown summation order '{order}'; known: {ORDERS}")


def emulated_norm(x: torch.Tensor, kind: str = "layernorm", fmt: str | Format = "fp16",
                  order: str = "sequential", eps: float = 1e-5, weight: torch.Tensor | None = None,
                  bias: torch.Tensor | None = None, scale: float = 1.0, block: int = 16,
                  rsqrt: Callable[[torch.Tensor], torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LayerNorm / RMSNorm over the last dim with every operation rounded to ``fmt``.

    ``x`` is the float value of the activation; the norm sees fl(x / scale) (SLaNC static scale, see
    docs/papers/slanc.md: ``eps`` is the unscaled norm's eps, eps/scale² is used internally so the
    exact result does not depend on ``scale``). ``weight``/``bias`` are the effective affine parameters
    (pass 1 + w for Gemma-style norms); they are rounded to ``fmt``. ``rsqrt`` maps S (per token,
    in ``fmt``) to an approximation of S^(-1/2) in ``fmt``; default one rounded 1/√S unit.
    Returns (output as float64 holding ``fmt`` values, per-token stats dict).
    """
    if kind not in ("layernorm", "rmsnorm"):
        raise ValueError(f"unknown norm kind '{kind}'; known: layernorm, rmsnorm")
    A = Arith(fmt)
    x = x.to(F64)
    d = x.shape[-1]
    xs = A.r(x / scale)
    inv_d = A.const(1.0 / d)
    nonfinite = torch.zeros(x.shape[:-1], dtype=torch.bool)
    if kind == "layernorm":
        total = accumulate_sum(xs, A.f, order, block)
        nonfinite |= ~torch.isfinite(total)
        mean = A.mul(total, inv_d)
        y = A.sub(xs, mean.unsqueeze(-1))
    else:
        y = xs
    sq = A.mul(y, y)
    sumsq = accumulate_sum(sq, A.f, order, block)
    var = A.mul(sumsq, inv_d)
    S = A.add(var, A.const(eps / (scale * scale)))
    nonfinite |= ~torch.isfinite(sumsq) | ~torch.isfinite(var) | ~torch.isfinite(S)
    lost = (y != 0) & (sq.abs() < A.f.tiny)
    r = A.rsqrt(S) if rsqrt is None else rsqrt(S)
    out = A.mul(y, r.unsqueeze(-1))
    if weight is not None:
        out = A.mul(out, A.r(weight.detach().to(F64)))
    if bias is not None:
        out = A.add(out, A.r(bias.detach().to(F64)))
    stats = {"overflow": nonfinite, "underflow": lost.sum(-1), "sumsq": sumsq,
             "sumsq_exact": (y * y).sum(-1), "S": S}
    return out, stats


def _native_sum(x: torch.Tensor, order: str, block: int) -> torch.Tensor:
    """Σ over the last dim in x's own dtype, one rounding per add, in the order of
    :func:`lpbench.lowprec.accumulate_sum`."""
    def tree(v):
        n = v.shape[-1]
        width = 1 << (n - 1).bit_length()
        if width != n:
            v = torch.nn.functional.pad(v, (0, width - n))
        while v.shape[-1] > 1:
            v = v[..., 0::2] + v[..., 1::2]
        return v[..., 0]

    def seq(v):
        acc = v[..., 0]
        for i in range(1, v.shape[-1]):
            acc = acc + v[..., i]
        return acc

    if order == "pairwise":
        return tree(x)
    if order == "sequential":
        return seq(x)
    if order == "blocked":
        n = x.shape[-1]
        nb = max(1, -(-n // block))
        x = torch.nn.functional.pad(x, (0, nb * block - n))
        return tree(seq(x.reshape(*x.shape[:-1], nb, block)))
    raise ValueError(f"unknown summation order '{order}'; known: {ORDERS}")


def _is_pow2(s: float) -> bool:
    return s > 0 and math.frexp(s)[0] == 0.5


def native_norm(x: torch.Tensor, kind: str = "layernorm", fmt: str = "fp16", order: str = "pairwise",
                eps=1e-5, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                scale: float = 1.0, block: int = 16) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Fast path of :func:`lpbench.lowprec.emulated_norm` for fp16 / bf16 / fp32: the same operations
    in the same order, executed in torch's native dtype. Each native elementwise op on CPU computes in
    float32 and rounds once to the dtype, which for +, −, × of fp16/bf16 operands equals one correct
    rounding (double-rounding theorem, 24 ≥ 2p + 2); the inverse square root and the constants are
    rounded from float64 with :func:`lpbench.lowprec.round_to`, as in the reference. Bit-identical to
    ``emulated_norm`` (checked by tests/test_slanc.py on random, overflowing and underflowing inputs)
    and about 15x faster. ``eps`` may be a per-vector tensor (dynamic scaling). Output float64."""
    f = get_format(fmt)
    if f.name == "fp64":
        out, st = emulated_norm(x, kind, fmt, order, eps, weight, bias, scale=scale, block=block)
        st["var"] = st["sumsq"] / x.shape[-1]
        return out, st
    dt = f.dtype
    d = x.shape[-1]
    if x.dtype == torch.float32 and _is_pow2(scale) or (scale == 1.0 and x.dtype in (torch.float32, dt)):
        xs = (x if scale == 1.0 else x / scale).to(dt)
    else:
        xs = round_to(x.to(F64) / scale, f).to(dt)
    inv_d = round_to(torch.tensor(1.0 / d, dtype=F64), f).to(dt)
    eps_t = eps / (scale * scale)
    eps_t = round_to(eps_t if isinstance(eps_t, torch.Tensor) else torch.tensor(eps_t, dtype=F64), f).to(dt)
    nonfinite = torch.zeros(x.shape[:-1], dtype=torch.bool)
    if kind == "layernorm":
        total = _native_sum(xs, order, block)
        nonfinite |= ~torch.isfinite(total)
        y = xs - (total * inv_d).unsqueeze(-1)
    elif kind == "rmsnorm":
        y = xs
    else:
        raise ValueError(f"unknown norm kind '{kind}'; known: layernorm, rmsnorm")
    sq = y * y
    sumsq = _native_sum(sq, order, block)
    var = sumsq * inv_d
    S = var + eps_t
    nonfinite |= ~torch.isfinite(sumsq) | ~torch.isfinite(var) | ~torch.isfinite(S)
    lost = (y != 0) & (sq.abs() < f.tiny)
    r = round_to(torch.rsqrt(S.to(F64)), f).to(dt)
    out = y * r.unsqueeze(-1)
    if weight is not None:
        out = out * round_to(weight.detach().to(F64), f).to(dt)
    if bias is not None:
        out = out + round_to(bias.detach().to(F64), f).to(dt)
    yd = y.to(F64)
    stats = {"overflow": nonfinite, "underflow": lost.sum(-1), "sumsq": sumsq.to(F64),
             "sumsq_exact": (yd * yd).sum(-1), "var": var.to(F64), "S": S.to(F64)}
    return out.to(F64), stats
