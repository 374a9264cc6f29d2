"""Hardware cost: per-token op counts → energy, and the whole-model energy per generated token.

Constants come from ``config/hw_costs.yaml``: ``energy_pj`` (Horowitz ISSCC 2014, 45 nm arithmetic) and
``whole_model`` (memory access, and the assumptions made where no sourced constant exists). An op name
the file does not define is an error naming the known ones (no silent zero).

Two levels
    :func:`energy_pj` prices a method's ``ops_per_token`` (what the per-paper tables use).
    :func:`token_energy` prices everything one generated token costs on a datapath described by a
    :class:`Datapath` (built per method kind, stacks included, by :mod:`lpbench.methods.datapath`), at a
    batch size ``B`` and a context length ``L``. Components (pJ per token):

    ``gemm_blocks``    MACs of the blocks' linears (``dims.gemm_macs``) × (multiply + accumulate) at the
                       operand format: FP32 / FP16 multiply + add of that format, or an integer multiply at
                       ``b = max(weight bits, activation bits)`` + an INT32 accumulate. ``b`` < 8 (INT4) has no
                       Horowitz constant: ``int_mult="upper"`` charges INT8 (the suite's convention, a stated
                       upper bound), ``"quadratic"`` charges ``int8_mult·(b/8)²`` (labelled alternative).
    ``lm_head``        vocab × hidden MACs at the head's format (every method here keeps it in float).
    ``attention``      Q·Kᵀ and P·V: 2 · heads · head_dim · L MACs per layer at the attention format.
    ``softmax``        per head and layer over L scores: L−1 max compares and L subtractions (adds), L exps
                       (``whole_model.softmax_exp`` mults + adds each: assumed), L−1 adds of the sum, one
                       reciprocal (charged as ``sqrt_div`` multiplies) and L multiplies.
    ``norms``          the norm datapath's op counts, given by the datapath (see
                       :mod:`lpbench.methods.datapath`); square roots and divides are charged as
                       ``whole_model.sqrt_div`` multiplies of the norm's format.
    ``method_extra``   the method's runtime extras (online Hadamards, runtime smoothing, quantize /
                       dequantize, Tender's shifts and bias terms, dynamic scaling), priced by ``energy_pj``.
    ``weight_memory``  DRAM bytes of the block-linear weights at their stored width (plus one FP16 scale per
                       output row when quantized) and of the LM head, read once per forward step and shared by
                       the B tokens of the batch (÷ B), plus the token's own embedding row.
    ``kv_memory``      DRAM bytes of the K and V cache read for L positions at their stored width (plus one
                       FP16 scale per head vector when quantized); per sequence, so not divided by B.

    Not counted (the same for every method here, and ≪ the GEMMs: ~0.2 % on SmolLM2): RoPE, the MLP
    activation and gating product, residual adds, the embedding multiplier, norm gains' storage; on-chip
    SRAM traffic. Gemma 3's local layers attend to at most ``sliding_window`` (512) positions: exact for
    L ≤ 512, an overstatement of its attention and KV terms above.

The per-paper cost tables read the same ``energy_pj`` constants; where they count the same ops they give
the same numbers (tests/test_energy.py checks each line), and where they differ it is by design:
    ``hwcost.csv``    ``energy_pj(ops_per_token(dims))`` in each kind's own convention: GEMMs + runtime extras
                      (= gemm_blocks + method_extra) for the GEMM-side kinds and stacks; SLaNC's is its
                      runtime extras only, IterL2Norm's the FP32 GEMMs + its whole norm datapath. No LM head,
                      attention, softmax or memory; on Gemma 3 the interface call (no architecture) misses the
                      sandwich rotation's two extra Hadamards per layer, which the tables below count.
    ``rrs_cost``      extra_pj_per_token = method_extra of the method − method_extra of plain W4A4.
    ``slanc_cost``    extra_energy_pj_per_token = SLaNC's method_extra (the same call).
    ``iterl2norm_energy``  one norm at div_sqrt_vs_mult = 1 = the norms component per normalized vector.
    ``unified_norm_energy``  counts a d-term sum as d adds (config ``norm_ops_per_vector``), this model as
                      d − 1 (IterL2Norm's op count): one FP32 add more per RMSNorm, two per LayerNorm
                      (0.9 / 1.8 pJ per vector, < 0.1 %); the same square-root / divide charge.
    ``tender_cost``   (TENDER-4) the same MAC energies; a GEMM-level array model: its vector-unit terms are
                      per GEMM (q/k/v and gate/up each quantize and bias-correct their shared input again,
                      the bias terms on every GEMM), its shifts use the measured non-empty groups (here G,
                      the upper bound), prefill of 2048 tokens, and no memory energy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lpbench.config import load_yaml

#: components of :func:`token_energy`, in table order (their sum is ``total``)
COMPONENTS = ("gemm_blocks", "lm_head", "attention", "softmax", "norms", "method_extra", "weight_memory",
              "kv_memory")
INT_MULT_MODELS = ("upper", "quadratic")
_WHOLE_MODEL_KEYS = ("dram_pj_per_byte", "int_narrow_mult", "softmax_exp", "sqrt_div")


def load_costs(path: str | Path) -> dict:
    data = load_yaml(path)  # strict: a key given twice is an error naming file and line
    for op, entry in data["energy_pj"].items():
        if "value" not in entry or "source" not in entry:
            raise ValueError(f"{path}: energy_pj.{op} needs 'value' and 'source'")
    for key in _WHOLE_MODEL_KEYS if "whole_model" in data else ():
        if "source" not in data["whole_model"].get(key, {}):
            raise ValueError(f"{path}: whole_model.{key} needs a 'source' (or the assumption made)")
    return data


def energy_pj(ops: dict[str, float], costs: dict) -> dict[str, float]:
    """Energy per op family and in total (pJ per token)."""
    table = costs["energy_pj"]
    unknown = sorted(set(ops) - set(table))
    if unknown:
        raise KeyError(f"op(s) {unknown} have no energy constant in the cost file; known: {sorted(table)}")
    parts = {op: count * table[op]["value"] for op, count in ops.items()}
    parts["total"] = sum(parts.values())
    return parts


@dataclass(frozen=True)
class Datapath:
    """The number formats one model configuration runs per token, as :func:`token_energy` needs them.

    Formats are ``"fp32"`` / ``"fp16"`` (energy families of ``energy_pj``; BF16 is charged as FP16) or
    ``"int<b>"`` (an integer MAC at operand width b). Bit widths are storage widths."""
    gemm: str = "fp32"                  # block linears' MAC format
    weight_bits: float = 32             # stored width of block-linear weights
    weight_scales: bool = False         # one FP16 scale per output row stored with quantized weights
    head: str = "fp32"                  # LM head MAC format
    head_bits: float = 32               # stored width of the LM head and embedding
    attention: str = "fp32"             # Q·Kᵀ and P·V MAC format
    softmax: str = "fp32"
    kv_bits: float = 32                 # stored width of the K/V cache
    kv_scales: bool = False             # one FP16 scale per stored head vector
    norm_fmt: str = "fp32"              # format family of the norm datapath (sqrt/div charged in it)
    norm_ops: dict = field(default_factory=dict)   # {"mult", "add", "int", "sqrt", "div"} per token
    extra_ops: dict = field(default_factory=dict)  # method's runtime extras, energy_pj op names per token
    notes: tuple = ()                   # assumptions specific to this datapath (shown in tables)
    realizable: bool = True             # False: an accuracy reference no integer GEMM can run as priced


def int_bits(fmt: str) -> int | None:
    return int(fmt[3:]) if fmt.startswith("int") else None


def mac_pj(fmt: str, costs: dict, int_mult: str = "upper") -> tuple[float, float]:
    """(multiply, accumulate) energy of one MAC in ``fmt``. Integers: INT8 multiply up to 8 bits (or the
    quadratic estimate below 8 bits), INT32 above; the accumulator is INT32."""
    e = costs["energy_pj"]
    b = int_bits(fmt)
    if b is None:
        if f"{fmt}_mult" not in e:
            raise KeyError(f"no energy constants for format '{fmt}'; known: fp32, fp16, int<b>")
        return e[f"{fmt}_mult"]["value"], e[f"{fmt}_add"]["value"]
    if int_mult not in INT_MULT_MODELS:
        raise ValueError(f"int_mult must be one of {INT_MULT_MODELS}, got {int_mult!r}")
    if b > 8:
        mult = e["int32_mult"]["value"]
    elif b < 8 and int_mult == "quadratic":
        mult = e["int8_mult"]["value"] * (b / 8) ** 2
    else:
        mult = e["int8_mult"]["value"]
    return mult, e["int32_add"]["value"]


def _float_pj(fmt: str, costs: dict) -> tuple[float, float]:
    """(mult, add) of a float format; an integer format's scalar work (softmax, norms) runs in FP32."""
    f = "fp32" if int_bits(fmt) is not None else fmt
    return costs["energy_pj"][f"{f}_mult"]["value"], costs["energy_pj"][f"{f}_add"]["value"]


def weight_bytes(dims, dp: Datapath) -> float:
    """Bytes read from DRAM per forward step for the weights (block linears + LM head)."""
    lin = dims.gemm_macs * dp.weight_bits / 8
    if dp.weight_scales:
        lin += 2.0 * dims.layers * block_output_rows(dims)
    return lin + dims.vocab * dims.hidden * dp.head_bits / 8


def block_output_rows(dims) -> int:
    """Output rows of one block's linears (q, k, v, o and the MLP's)."""
    return ((dims.heads + 2 * dims.kv_heads) * dims.head_dim + dims.hidden
            + (dims.mlp_matrices - 1) * dims.intermediate + dims.hidden)


def kv_bytes(dims, dp: Datapath, context: int) -> float:
    """Bytes of K and V read for ``context`` positions, all layers."""
    vectors = 2.0 * dims.layers * dims.kv_heads * context
    return vectors * (dims.head_dim * dp.kv_bits / 8 + (2.0 if dp.kv_scales else 0.0))


def token_energy(dims, dp: Datapath, costs: dict, batch: int, context: int,
                 int_mult: str = "upper") -> dict[str, float]:
    """pJ per generated token by component (see the module docstring) and ``total``. ``dims`` is a
    :class:`lpbench.methods.ModelDims` (any object with its fields)."""
    if batch < 1 or context < 1:
        raise ValueError(f"batch and context must be >= 1, got {batch}, {context}")
    wm = costs["whole_model"]
    e = costs["energy_pj"]
    d = dims
    out: dict[str, float] = {}
    out["gemm_blocks"] = d.gemm_macs * sum(mac_pj(dp.gemm, costs, int_mult))
    out["lm_head"] = d.vocab * d.hidden * sum(mac_pj(dp.head, costs, int_mult))
    out["attention"] = 2.0 * d.layers * d.heads * d.head_dim * context * sum(mac_pj(dp.attention, costs, int_mult))
    sm_mult, sm_add = _float_pj(dp.softmax, costs)
    exp = wm["softmax_exp"]
    L = context
    row = ((L - 1) + L + (L - 1)) * sm_add + L * (exp["mult"] * sm_mult + exp["add"] * sm_add) \
        + (L + wm["sqrt_div"]["value"]) * sm_mult
    out["softmax"] = d.layers * d.heads * row
    n_mult, n_add = _float_pj(dp.norm_fmt, costs)
    n = dp.norm_ops
    out["norms"] = (n.get("mult", 0.0) * n_mult + n.get("add", 0.0) * n_add
                    + n.get("int", 0.0) * e["int32_add"]["value"]
                    + (n.get("sqrt", 0.0) + n.get("div", 0.0)) * wm["sqrt_div"]["value"] * n_mult)
    out["method_extra"] = energy_pj(dp.extra_ops, costs)["total"] if dp.extra_ops else 0.0
    dram = wm["dram_pj_per_byte"]["value"]
    out["weight_memory"] = dram * (weight_bytes(d, dp) / batch + d.hidden * dp.head_bits / 8)
    out["kv_memory"] = dram * kv_bytes(d, dp, context)
    out["total"] = sum(out[c] for c in COMPONENTS)
    return out
