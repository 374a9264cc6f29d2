"""The datapath of each method kind (and of a stack) as the whole-model energy model prices it.

:func:`datapath` turns a built method into a :class:`lpbench.hwcost.Datapath`: the operand format of the
blocks' GEMMs and of the LM head, the attention and KV-cache formats, the norm datapath (format,
algorithm, op counts over the model's norms) and the method's runtime extras. The extras are the
method's own accounting (its ``ops_per_token`` / ``plain_ops`` / ``extra_ops`` / ``ops_breakdown``)
without the GEMM multiply-accumulates, which :func:`lpbench.hwcost.token_energy` prices itself from the
operand format. A stack's datapath merges its components' (sites: :mod:`lpbench.methods.sites`): on a site
that two components both change, the declared composition says whose formats are used; extras add up.

Formats, as the suite evaluates them (what is emulated is what is charged)
    Outside the quantized GEMMs every method runs FP32 (the half-precision baselines: FP16, with BF16 on
    the FP16 constants). A weight or KV width of 16 bits or more in a W4A4-family or RTN entry means
    "not quantized", which the evaluation keeps in FP32: charged at 32 bits. Integer GEMMs follow the RTN
    convention of the suite: the MAC runs at max(weight bits, activation bits) (activations ≥ 16 bits =
    weight-only), INT32 accumulate. The norms use IterL2Norm's op count (:func:`lpbench.methods.iterl2norm.
    norm_ops`: a d-term sum is d − 1 adds) for every datapath — square root + divide, IterL2Norm, FISR.
"""
from __future__ import annotations

from lpbench.hwcost import Datapath, int_bits
from lpbench.methods.iterl2norm import ENERGY_FAMILY, norm_ops
from lpbench.methods.sites import W4A4_KINDS, composition
from lpbench.norms import norm_instances

#: Datapath field (or norm setting) -> the site whose owner decides it in a stack
FIELD_SITE = {"gemm": "linear_weights", "weight_bits": "linear_weights", "weight_scales": "linear_weights",
              "head": "linear_weights", "head_bits": "linear_weights", "attention": "attention_kv",
              "softmax": "attention_kv", "kv_bits": "attention_kv", "kv_scales": "attention_kv",
              "norm_fmt": "norm_format", "norm_algorithm": "norm_algorithm", "norm_iters": "norm_algorithm",
              "norm_init": "norm_algorithm"}
_HALF = {"gemm": "fp16", "weight_bits": 16, "head": "fp16", "head_bits": 16, "attention": "fp16",
         "softmax": "fp16", "kv_bits": 16, "norm_fmt": "fp16"}


def _family(fmt: str, who: str) -> str:
    if fmt not in ENERGY_FAMILY:
        raise ValueError(f"{who}: no energy constants for format {fmt} (known: {sorted(ENERGY_FAMILY)})")
    return ENERGY_FAMILY[fmt]


def _int_gemm(w_bits: int, a_bits: int) -> dict:
    """GEMM format and stored weights of an integer-quantized linear (RTN convention of the suite)."""
    quantized = w_bits < 16
    return {"gemm": f"int{max(w_bits, min(a_bits, 16))}", "weight_bits": w_bits if quantized else 32,
            "weight_scales": quantized}


def gemm_ops(dims, fmt: str) -> dict[str, float]:
    """The blocks' GEMM MACs as op counts (the part of ``ops_per_token`` the energy model prices itself)."""
    macs = float(dims.gemm_macs)
    b = int_bits(fmt)
    if b is None:
        return {f"{fmt}_mult": macs, f"{fmt}_add": macs}
    return {f"{'int8' if b <= 8 else 'int32'}_mult": macs, "int32_add": macs}


def _minus(ops: dict, sub: dict) -> dict[str, float]:
    out = dict(ops)
    for k, v in sub.items():
        out[k] = out.get(k, 0.0) - v
    return {k: v for k, v in out.items() if abs(v) > 1e-9 * max(1.0, abs(ops.get(k, 0.0)))}


def _add(*parts: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = out.get(k, 0.0) + float(v)
    return out


def partial(method, dims, arch) -> dict:
    """The Datapath fields a method sets (the rest stay FP32) plus ``extra_ops``."""
    k, p = method.kind, method.params
    sandwich = arch is not None and arch.placement == "sandwich"
    if k == "fp32":
        return {"extra_ops": {}}
    if k in ("fp16", "bf16"):
        return {**_HALF, "extra_ops": {}}
    if k == "rtn":
        part = _int_gemm(p["w_bits"], p["a_bits"])
        if p["a_granularity"] == "per_column" and p["a_bits"] < 16:
            part["realizable"] = False      # one scale per input channel: not an integer GEMM's reduction
        return {**part, "extra_ops": _minus(method.ops_per_token(dims), gemm_ops(dims, part["gemm"]))}
    if k in W4A4_KINDS:
        part = _int_gemm(p["w_bits"], p["a_bits"])
        base = _minus(method.plain_ops(dims), gemm_ops(dims, part["gemm"]))
        more = method.extra_ops(dims, sandwich) if hasattr(method, "extra_ops") else method.kv_ops(dims)
        if p["kv_bits"] < 16:
            part.update(kv_bits=p["kv_bits"], kv_scales=True)
        return {**part, "extra_ops": _add(base, more)}
    if k == "tender":
        bits, wb = p["bits"], p["weight_bits"] or p["bits"]
        part = {"gemm": f"int{max(bits, wb)}", "weight_bits": wb, "weight_scales": True}
        if p["scope"] == "all":
            part.update(attention=f"int{bits}", kv_bits=bits, kv_scales=True)
        extra = _add(*({i["op"]: i["count"]} for name, i in method.ops_breakdown(dims).items()
                       if name not in ("gemm_mult", "gemm_acc")))
        return {**part, "extra_ops": extra}
    if k == "slanc":
        return {"norm_fmt": _family(p["fmt"], f"method '{method.name}'"),
                "extra_ops": method.ops_per_token(dims, arch)}
    if k == "iterl2norm":
        return {"norm_fmt": _family(p["fmt"], f"method '{method.name}'"), "norm_algorithm": p["algorithm"],
                "norm_iters": p["iters"], "norm_init": p["init"], "extra_ops": {}}
    if k == "stack":
        return merged(method.components, dims, arch)
    raise NoDatapath(f"method kind '{k}' has no datapath for the energy model: declare it in "
                     f"lpbench.methods.datapath (docs/extending.md)")


class NoDatapath(ValueError):
    """A method kind the energy model cannot price (its energy row is left empty, with this reason)."""


def merged(components: list, dims, arch) -> dict:
    """Fields of a stack: each from the component that changes its site; where two compose on a site,
    from the one the declaration names (``formats_from``); extras summed."""
    out: dict = {}
    owner: dict = {}
    extras = []
    for m in components:
        part = partial(m, dims, arch)
        extras.append(part.pop("extra_ops"))
        if not part.pop("realizable", True):
            out["realizable"] = False
        for field, value in part.items():
            if field in out:
                c = composition(owner[field], m, FIELD_SITE[field])
                if c is None:
                    raise ValueError(f"methods '{owner[field].name}' and '{m.name}' both set {field} "
                                     f"({FIELD_SITE[field]}) without a declared composition")
                if c.formats_from != m.kind:
                    continue
            out[field], owner[field] = value, m
    return {**out, "extra_ops": _add(*extras)}


def norm_datapath_ops(dims, arch, fmt: str, algorithm: str = "sqrtdiv", iters: int = 0,
                      init: str = "pow2") -> dict[str, float]:
    """Ops per token of every norm of the model (``{"mult", "add", "int", "sqrt", "div"}``)."""
    kind = arch.norm_kind if arch else ("rmsnorm" if dims.mlp_matrices == 3 else "layernorm")
    total = {"mult": 0.0, "add": 0.0, "int": 0.0, "sqrt": 0.0, "div": 0.0}
    for d, count in norm_instances(arch, dims):
        for op, n in norm_ops(d, kind, algorithm, iters, init=init).items():
            total[op] += count * n
    return total


def datapath(method, dims, arch=None) -> Datapath:
    """The :class:`lpbench.hwcost.Datapath` of a built method (any registered kind with a datapath)."""
    part = partial(method, dims, arch)
    extra = part.pop("extra_ops")
    alg = part.pop("norm_algorithm", "sqrtdiv")
    iters, init = part.pop("norm_iters", 0), part.pop("norm_init", "pow2")
    fmt = part.get("norm_fmt", "fp32")
    notes = []
    if not part.get("realizable", True):
        notes.append("per-column activation scales: an accuracy reference, not realizable in an integer GEMM")
    narrow = [b for b in (int_bits(part.get("gemm", "fp32")), int_bits(part.get("attention", "fp32"))) if b]
    if narrow and min(narrow) < 8:
        notes.append("INT<8 multiplies charged as INT8 (upper bound); see total_pj_quadratic")
    return Datapath(**part, norm_ops=norm_datapath_ops(dims, arch, fmt, alg, iters, init),
                    extra_ops={k: v for k, v in extra.items() if v}, notes=tuple(notes))


def interface_ops(method, dims, arch=None) -> dict[str, float]:
    """A stack's ``ops_per_token`` in the convention of its components': the blocks' GEMMs once, at the
    stack's operand format, plus every component's runtime extras, plus the norm datapath where a
    component counts it (IterL2Norm does: its ops are the replaced norms)."""
    dp = datapath(method, dims, arch)
    ops = _add(gemm_ops(dims, dp.gemm), dp.extra_ops)
    if any(m.kind == "iterl2norm" for m in getattr(method, "components", [method])):
        n = dp.norm_ops
        ops = _add(ops, {f"{dp.norm_fmt}_mult": n["mult"] + 0.0, f"{dp.norm_fmt}_add": n["add"],
                         "int32_add": n["int"]})
    return ops
