"""IterL2Norm (Ye et al., arXiv 2412.04778) and the fast inverse square root (FISR) it is compared with.

The paper's body (its exact update rule, initialization and update-rate settings) is not available, so this
module implements a reconstruction — a reading, not the paper's verified scheme: the explicit Euler step
a_{k+1} = a_k + λ·a_k·(1 − S·a_k²) of da/dt = a(1 − S a²), whose positive steady state is a = S^(-1/2) =
1/‖y‖ (λ is ``lam``; λ = ½ is Newton's step, the update FISR uses). Only multiplications and additions.
The start is the declared parameter ``init``: ``pow2`` (a₀ = 2^(−⌈e/2⌉) from the exponent of S),
``centred`` (× 2^(−1/4)) or ``magic`` (FISR's bit trick, :func:`fisr_init`). :func:`fisr` runs the bit
trick on the emulated format's own bits with the constants of :data:`FISR_MAGIC`, then Newton steps. Every
operation is rounded to ``fmt`` (:class:`lpbench.lowprec.Arith`).

:class:`IterL2NormMethod` (kind ``iterl2norm``) replaces every norm of ``arch.norm_names(model)`` by
:class:`IterNorm`: the statistics are accumulated in ``fmt`` by :func:`lpbench.lowprec.emulated_norm`, and
the inverse square root of S = Σy²/d + eps is the iteration.

The derivation, why ``pow2`` deviates from the brief, the error bound of each start, the order of operations,
how the FISR constants are derived and the model integration: docs/papers/iterl2norm.md.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.lowprec import F64, FORMATS, ORDERS, Arith, accumulate_sum, emulated_norm, exponent, \
    get_format, pow2, round_to
from lpbench.methods import Int, Method, ModelDims, Real, register
from lpbench.norms import check_formula, norm_instances, norm_params

#: σ implied by the classic fp32 constant 0x5f3759df: 127 − 0x5f3759df / (1.5·2²³), exact rational
FISR_SIGMA = Fraction(127) - Fraction(0x5F3759DF) / (Fraction(3, 2) * 2 ** 23)


def fisr_magic(fmt: str) -> int:
    """R = round(1.5 · 2^M · (bias − σ)) for a format with M mantissa bits and the given bias
    (exact rational arithmetic; reproduces 0x5f3759df for fp32 by construction)."""
    f = get_format(fmt)
    return round(Fraction(3, 2) * 2 ** f.mantissa_bits * (f.bias - FISR_SIGMA))


FISR_MAGIC = {name: fisr_magic(name) for name in FORMATS}
INITS = ("pow2", "centred", "magic")
#: 2^(−1/4): the centring factor of ``init="centred"`` (rounded once to the format)
CENTRE = 2.0 ** -0.25
ALGORITHMS = ("iterl2norm", "fisr")


# ---- scalar inverse square root ------------------------------------------------------------------
def pow2_init(S: torch.Tensor) -> torch.Tensor:
    """a₀ = 2^(−⌈e/2⌉) with e = ⌊log₂ S⌋, so that S·a₀² ∈ [½, 2). Exact (built from exponent bits)."""
    e = exponent(S)
    return pow2(-torch.div(e + 1, 2, rounding_mode="floor"))


def centred_init(S: torch.Tensor, fmt: str) -> torch.Tensor:
    """a₀ = fl(2^(−⌈e/2⌉)·fl(2^(−1/4))): :func:`pow2_init` times the stored constant 2^(−1/4), so that
    S·a₀² ∈ [2^(−3/2), 2^(1/2)) — centred on 1 in the log domain. Exact up to the constant's rounding
    (a power-of-two multiple of a representable constant), barring underflow."""
    return round_to(pow2_init(S) * round_to(torch.tensor(CENTRE, dtype=F64), fmt), fmt)


def initial_estimate(S: torch.Tensor, init: str, fmt: str) -> torch.Tensor:
    """a₀ of ``init`` ∈ :data:`INITS` for S (already in ``fmt``)."""
    if init == "pow2":
        return pow2_init(S)
    if init == "centred":
        return centred_init(S, fmt)
    if init == "magic":
        return fisr_init(S, fmt)
    raise ValueError(f"unknown init '{init}'; known: {INITS}")


def fisr_init(S: torch.Tensor, fmt: str) -> torch.Tensor:
    """FISR's first estimate: bits⁻¹(R − (bits(S) >> 1)) on the bit pattern of S in ``fmt``."""
    f = get_format(fmt)
    bits = round_to(S, f).to(f.dtype).view(f.int_dtype).to(torch.int64)
    return (FISR_MAGIC[f.name] - (bits >> 1)).to(f.int_dtype).view(f.dtype).to(F64)


def iter_inv_sqrt(S: torch.Tensor, iters: int, fmt: str, lam: float = 0.5,
                  init: str = "pow2") -> torch.Tensor:
    """a_k ≈ S^(-1/2) by a_{k+1} = a_k + λ·a_k·(1 − S·a_k²), every op rounded to ``fmt``."""
    A = Arith(fmt)
    S = A.r(S)
    a = initial_estimate(S, init, A.fmt)
    a, lam_f, one = A.r(a), A.const(lam), A.const(1.0)
    for _ in range(iters):
        t = A.mul(A.mul(S, a), a)
        t = A.mul(lam_f, A.mul(a, A.sub(one, t)))
        a = A.add(a, t)
    return a


def fisr(S: torch.Tensor, iters: int, fmt: str) -> torch.Tensor:
    """Fast inverse square root: bit-trick estimate, then ``iters`` steps a ← a·(1.5 − (0.5·S)·a·a)."""
    A = Arith(fmt)
    S = A.r(S)
    a = fisr_init(S, A.fmt)
    h, three_halves = A.mul(A.const(0.5), S), A.const(1.5)
    for _ in range(iters):
        a = A.mul(a, A.sub(three_halves, A.mul(A.mul(h, a), a)))
    return a


def _sumsq(y: torch.Tensor, fmt: str, order: str, block: int) -> torch.Tensor:
    A = Arith(fmt)
    y = A.r(y)
    return accumulate_sum(A.mul(y, y), fmt, order, block)


def iterl2norm(y: torch.Tensor, iters: int, fmt: str, lam: float = 0.5, init: str = "pow2",
               order: str = "pairwise", block: int = 16) -> torch.Tensor:
    """y/‖y‖₂ over the last dim: S = Σy² accumulated in ``fmt`` (``order``), a = IterL2Norm's
    iteration, output fl(y·a). Float64 tensor holding ``fmt`` values."""
    A = Arith(fmt)
    y = A.r(y)
    a = iter_inv_sqrt(_sumsq(y, fmt, order, block), iters, fmt, lam, init)
    return A.mul(y, a.unsqueeze(-1))


def fisr_normalize(y: torch.Tensor, iters: int, fmt: str, order: str = "pairwise",
                   block: int = 16) -> torch.Tensor:
    """y/‖y‖₂ with the inverse square root from :func:`fisr`; otherwise as :func:`iterl2norm`."""
    A = Arith(fmt)
    y = A.r(y)
    a = fisr(_sumsq(y, fmt, order, block), iters, fmt)
    return A.mul(y, a.unsqueeze(-1))


# ---- norm module -----------------------------------------------------------------------------------
class IterNorm(nn.Module):
    """A LayerNorm/RMSNorm whose statistics are accumulated in ``fmt`` and whose inverse square root is
    IterL2Norm's iteration or FISR (all ops rounded to ``fmt``). Output in the input's dtype."""

    def __init__(self, kind: str, eps: float, weight: torch.Tensor | None, bias: torch.Tensor | None,
                 weight_offset: float = 0.0, iters: int = 5, fmt: str = "fp32", lam: float = 0.5,
                 algorithm: str = "iterl2norm", init: str = "pow2", order: str = "pairwise",
                 block: int = 16):
        super().__init__()
        self.kind, self.eps, self.weight_offset = kind, eps, weight_offset
        self.iters, self.fmt, self.lam, self.algorithm = iters, fmt, lam, algorithm
        self.init, self.order, self.block = init, order, block
        w = None if weight is None else weight.detach().to(F64) + weight_offset
        self.register_buffer("weight_eff", None if w is None else round_to(w, fmt))
        self.register_buffer("bias", None if bias is None else bias.detach().to(F64))

    @classmethod
    def from_module(cls, module: nn.Module, **params) -> "IterNorm":
        kind, eps, weight, bias, offset = norm_params(module)
        check_formula(module, kind, eps, None if weight is None else weight.detach().to(F64) + offset, bias)
        return cls(kind, eps, weight, bias, offset, **params)

    def rsqrt(self, S: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "fisr":
            return fisr(S, self.iters, self.fmt)
        return iter_inv_sqrt(S, self.iters, self.fmt, self.lam, self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out, _ = emulated_norm(x, self.kind, self.fmt, self.order, self.eps, self.weight_eff,
                                   self.bias, block=self.block, rsqrt=self.rsqrt)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.kind}, algorithm={self.algorithm}, iters={self.iters}, fmt={self.fmt}, "
                f"lam={self.lam}, order={self.order}")


# ---- op counts --------------------------------------------------------------------------------------
#: Energy op family of each emulated format in ``config/hw_costs.yaml``. Horowitz (ISSCC 2014) gives
#: FP16 and FP32 adders/multipliers only: BF16 is charged with the FP16 constants (its 8-bit significand
#: multiplier is smaller than FP16's 11-bit one, so this is an upper bound — the same convention as the
#: ``bf16`` baseline). FP64 has no constant: asking for its energy is an error.
ENERGY_FAMILY = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp16"}
#: Integer op of the initialization (exponent halving / bit-trick subtract). The datapath word is 32 bits
#: (FP32) or 16 bits (FP16/BF16); Horowitz gives 8- and 32-bit adds only, so every such add is charged as
#: ``int32_add`` — an upper bound for the 16-bit formats, and 1–2 ops per normalized vector, negligible
#: next to the 3d–5d float ops of the vector itself.
INT_OP = "int32_add"


def norm_ops(d: int, kind: str, algorithm: str, iters: int, affine_bias: bool = True,
             init: str = "pow2", divide_per_element: bool = False) -> dict[str, int]:
    """Ops of one normalization of a length-d vector (γ always, β if LayerNorm).

    ``algorithm``: ``iterl2norm`` (per step S·a, ·a, a·(…), λ·(…) and 1 − …, a + …), ``fisr`` (h = ½S once;
    per step h·a, ·a, a·(…) and 1.5 − …) or ``sqrtdiv``, the conventional datapath: one square root of S
    and one reciprocal division 1/√S (then d multiplies y·r), or with ``divide_per_element`` d divisions
    y_i/√S. Keys: ``mult``, ``add``, ``int`` (initialization: ``pow2`` = exponent + 1 then bias − ·/2, two
    integer adds; ``magic`` / FISR = one subtract R − (i >> 1)), ``sqrt``, ``div``."""
    mult = d + 1 + d + d          # squares, ·(1/d), y·a, ·γ
    add = (d - 1) + 1             # Σy², + eps
    if kind == "layernorm":
        mult += 1                 # mean = Σx·(1/d)
        add += (d - 1) + d + (d if affine_bias else 0)   # Σx, x − mean, + β
    ops = {"mult": mult, "add": add, "int": 0, "sqrt": 0, "div": 0}
    if algorithm == "fisr":
        ops["mult"] += 1 + 3 * iters
        ops["add"] += iters
        ops["int"] = 1
    elif algorithm == "iterl2norm":
        ops["mult"] += 4 * iters
        ops["add"] += 2 * iters
        ops["int"] = 2 if init in ("pow2", "centred") else 1
        if init == "centred":
            ops["mult"] += 1      # a₀ = 2^(−⌈e/2⌉) · 2^(−1/4): one multiply by the stored constant
    elif algorithm == "sqrtdiv":
        ops["sqrt"] = 1
        if divide_per_element:
            ops["mult"] -= d          # y/√S replaces y·a
            ops["div"] = d
        else:
            ops["div"] = 1
    else:
        raise ValueError(f"unknown algorithm '{algorithm}'; known: iterl2norm, fisr, sqrtdiv")
    return ops


@register
class IterL2NormMethod(Method):
    """Replace every LayerNorm/RMSNorm by :class:`IterNorm` (IterL2Norm or FISR inverse square root)."""

    kind = "iterl2norm"
    defaults: dict[str, Any] = {"iters": 5, "fmt": "fp32", "lam": 0.5, "algorithm": "iterl2norm",
                                "init": "pow2", "order": "pairwise", "block": 16}
    spec = {"iters": Int(0), "lam": Real(0, 1, open_lo=True, open_hi=True), "block": Int(1)}

    def __init__(self, name: str = "", **params):
        super().__init__(name, **params)
        p = self.params
        self.require([(p["fmt"] in FORMATS, f"fmt must be one of {sorted(FORMATS)}"),
                      (p["algorithm"] in ALGORITHMS, f"algorithm must be one of {ALGORITHMS}"),
                      (p["init"] in INITS, f"init must be one of {INITS}"),
                      (p["order"] in ORDERS, f"order must be one of {ORDERS}")])

    def apply(self, model: nn.Module, arch: ArchSpec, artifact: dict) -> nn.Module:
        for name in arch.norm_names(model):
            parent_name, _, child = name.rpartition(".")
            parent = get_submodule(model, parent_name) if parent_name else model
            setattr(parent, child, IterNorm.from_module(getattr(parent, child), **self.params))
        return model

    def norm_ops_per_token(self, dims: ModelDims, arch: ArchSpec | None = None) -> dict[str, float]:
        """Ops of the replaced normalizations per token, ``{<family>_mult, <family>_add, int32_add}``
        (see :data:`ENERGY_FAMILY`, :data:`INT_OP`). Norm kind and layout from ``arch`` if given, else
        the dims-only estimate of :func:`norm_instances` with the kind read from the MLP (gated →
        RMSNorm: Llama/Qwen2/Gemma3; standard → LayerNorm: OPT/BERT)."""
        fmt = self.params["fmt"]
        if fmt not in ENERGY_FAMILY:
            raise ValueError(f"method '{self.name}': no energy constants for format {fmt} "
                             f"(config/hw_costs.yaml has {sorted(set(ENERGY_FAMILY.values()))} ops)")
        fam = ENERGY_FAMILY[fmt]
        kind = arch.norm_kind if arch else ("rmsnorm" if dims.mlp_matrices == 3 else "layernorm")
        total = {f"{fam}_mult": 0.0, f"{fam}_add": 0.0, INT_OP: 0.0}
        for d, count in norm_instances(arch, dims):
            ops = norm_ops(d, kind, self.params["algorithm"], self.params["iters"], init=self.params["init"])
            total[f"{fam}_mult"] += count * ops["mult"]
            total[f"{fam}_add"] += count * ops["add"]
            total[INT_OP] += count * ops["int"]
        return total

    def ops_per_token(self, dims: ModelDims, *, arch: ArchSpec | None = None) -> dict[str, float]:
        """Everything the evaluated model runs per token: the blocks' GEMMs in FP32 (unchanged, as the
        ``fp32`` baseline counts them) plus the whole replaced norm datapath (:meth:`norm_ops_per_token`).
        Through the interface (``ops_per_token(dims)``) the norm layout is the dims-only estimate; pass
        ``arch`` for the exact layout. The ``fp32`` baseline does not count its (exact) norms, so the
        difference to it is the whole norm datapath, not a delta over an exact norm."""
        ops = {"fp32_mult": dims.gemm_macs, "fp32_add": dims.gemm_macs}
        for op, n in self.norm_ops_per_token(dims, arch).items():
            ops[op] = ops.get(op, 0.0) + n
        return ops


def relative_error(out: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Per-vector normwise relative error of ``out`` against float64 y/‖y‖ (mean and max), and the
    largest elementwise relative error over nonzero reference entries."""
    y = y.to(F64)
    ref = y / y.norm(dim=-1, keepdim=True)
    rel = (out - ref).norm(dim=-1) / ref.norm(dim=-1)
    nz = ref != 0
    elem = ((out - ref).abs()[nz] / ref.abs()[nz]).max() if nz.any() else torch.tensor(0.0)
    return {"mean": rel.mean().item(), "max": rel.max().item(), "elem_max": elem.item()}

