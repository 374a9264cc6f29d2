"""Analytical cycle / energy model of an output-stationary systolic array running Tender (claim TENDER-4).

The official Tender repository has no simulator and the baselines' designs (ANT, OLAccel, OliVe) are not
available to us, so this module reproduces the *mechanism* of the paper's speedup: power-of-two-apart group
scales let the channel groups' partial sums be combined by shifts inside the PE accumulator, whereas arbitrary
group scales send every group's partial sums out to a vector unit to be requantized. The ratios are against
the four generic designs of :data:`DESIGNS` on the same array. The configuration keys, the cycle and energy
formulas of each design and what is assumed or inferred in them: docs/papers/tender.md ("Accelerator cost
model"); :data:`DEFAULT_CONFIG` lists every key with an assumed default.

:func:`layer_comparison` gives one row of the TENDER-4 table (all blocks of a model, every design, ratios
to Tender); the array constants it is run with live in ``config/hw_costs.yaml`` (``tender_accelerator``).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

DESIGNS = ("tender", "requant", "per_tensor", "fp16")

#: Assumed defaults (Tender's array geometry and vector unit from the paper; clock from a third-party
#: re-implementation (Omni-LUT, 7 nm, 500 MHz); bandwidth: one HBM2 stack, 256 GB/s at 500 MHz).
DEFAULT_CONFIG: dict[str, Any] = {
    "rows": 64, "cols": 64, "pe_bits": 4, "clock_hz": 500e6, "mem_bytes_per_cycle": 512,
    "vector_lanes": 64, "overlap": True, "out_bytes": 2, "vector_fp": "fp32",
}


def _cfg(config: dict | None) -> dict:
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    unknown = sorted(set(cfg) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown systolic config key(s) {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    return cfg


def effective_array(config: dict | None, bits: int, design: str = "tender") -> tuple[int, int]:
    """PE rows/cols one MAC of ``bits``-bit operands occupies as a whole array (FP16: the full array)."""
    cfg = _cfg(config)
    f = 1 if design == "fp16" else math.ceil(bits / cfg["pe_bits"])
    r, c = cfg["rows"] // f, cfg["cols"] // f
    if r < 1 or c < 1:
        raise ValueError(f"a {bits}-bit MAC needs {f}x{f} PEs; the {cfg['rows']}x{cfg['cols']} array is too small")
    return r, c


def tile_cycles(K: int, design: str, rows: int, cols: int, groups: float = 1) -> float:
    """Array cycles of one output tile (see the module docstring for the formulas)."""
    fill = rows + cols
    if design == "tender":
        return K + groups + fill
    if design == "requant":
        return K + groups * fill
    if design in ("per_tensor", "fp16"):
        return K + fill
    raise ValueError(f"unknown design '{design}'; known: {DESIGNS}")


def _e(energy: dict, op: str) -> float:
    if op not in energy:
        raise KeyError(f"no energy constant for '{op}'; given: {sorted(energy)}")
    return float(energy[op])


def gemm_cost(M: int, K: int, N: int, design: str, config: dict | None = None, energy: dict | None = None,
              bits: int = 4, groups: float = 1, bias: bool = False) -> dict:
    """Cycles (array / vector / memory / total), seconds and energy (pJ, by part) of one GEMM."""
    if design not in DESIGNS:
        raise ValueError(f"unknown design '{design}'; known: {DESIGNS}")
    if groups < 1:
        raise ValueError("groups (non-empty groups per tile) must be >= 1")
    cfg = _cfg(config)
    r, c = effective_array(cfg, bits, design)
    tiles = math.ceil(M / r) * math.ceil(N / c)
    array = tiles * tile_cycles(K, design, r, c, groups)
    V = cfg["vector_lanes"]
    vector = {"tender": math.ceil(M * N / V), "requant": math.ceil(groups * M * N / V),
              "per_tensor": math.ceil(M * N / V), "fp16": 0}[design]
    ab = 2 if design == "fp16" else bits / 8
    nbytes = M * K * ab + K * N * ab + M * N * cfg["out_bytes"]
    memory = math.ceil(nbytes / cfg["mem_bytes_per_cycle"])
    total = max(array, vector, memory) if cfg["overlap"] else max(array + vector, memory)

    out = {"design": design, "M": M, "K": K, "N": N, "bits": bits, "groups": groups, "tiles": tiles,
           "array_rows": r, "array_cols": c, "array_cycles": array, "vector_cycles": vector,
           "memory_cycles": memory, "cycles": total, "seconds": total / cfg["clock_hz"], "bytes": nbytes}
    if energy is None:
        return out
    macs = M * N * K
    vf = cfg["vector_fp"]
    vmul, vadd = _e(energy, f"{vf}_mult"), _e(energy, f"{vf}_add")
    parts: dict[str, float] = {}
    if design == "fp16":
        parts["mac"] = macs * (_e(energy, "fp16_mult") + _e(energy, "fp16_add"))
    else:
        if bits <= 4 and "int4_mult" in energy:
            mult = _e(energy, "int4_mult")
        else:
            mult = _e(energy, "int8_mult" if bits <= 8 else "int32_mult")
        parts["mac"] = macs * (mult + _e(energy, "int32_add"))
        parts["input_quant"] = M * K * vmul
        if design == "tender":
            shift = float(energy["shift"]) if "shift" in energy else _e(energy, "int32_add")
            parts["shift"] = M * N * (groups - 1) * shift
            parts["dequant"] = M * N * vmul
        elif design == "requant":
            parts["requant"] = groups * M * N * (vmul + vadd)
        else:
            parts["dequant"] = M * N * vmul
        if bias and design in ("tender", "requant"):
            parts["bias"] = (M * K + M * N) * vadd
    if "dram_byte" in energy:
        parts["dram"] = nbytes * float(energy["dram_byte"])
    out["energy_pj_parts"] = parts
    out["energy_pj"] = sum(parts.values())
    return out


def layer_gemms(dims, seqlen: int, scope: str = "linear") -> list[dict]:
    """The GEMMs of one transformer block at prefill of ``seqlen`` tokens, from a
    :class:`lpbench.methods.ModelDims`: ``{name, M, K, N, count}`` (count = repetitions, e.g. per head).
    ``scope="all"`` adds the attention matmuls Q·Kᵀ and P·V per head."""
    if scope not in ("linear", "all"):
        raise ValueError("scope must be 'linear' or 'all'")
    d, T = dims, seqlen
    qd, kvd = d.heads * d.head_dim, d.kv_heads * d.head_dim
    g = [{"name": "q_proj", "M": T, "K": d.hidden, "N": qd, "count": 1},
         {"name": "k_proj", "M": T, "K": d.hidden, "N": kvd, "count": 1},
         {"name": "v_proj", "M": T, "K": d.hidden, "N": kvd, "count": 1},
         {"name": "o_proj", "M": T, "K": qd, "N": d.hidden, "count": 1}]
    if d.mlp_matrices == 3:
        g += [{"name": "gate_proj", "M": T, "K": d.hidden, "N": d.intermediate, "count": 1},
              {"name": "up_proj", "M": T, "K": d.hidden, "N": d.intermediate, "count": 1},
              {"name": "down_proj", "M": T, "K": d.intermediate, "N": d.hidden, "count": 1}]
    else:
        g += [{"name": "fc1", "M": T, "K": d.hidden, "N": d.intermediate, "count": 1},
              {"name": "fc2", "M": T, "K": d.intermediate, "N": d.hidden, "count": 1}]
    if scope == "all":
        g += [{"name": "qk", "M": T, "K": d.head_dim, "N": T, "count": d.heads},
              {"name": "pv", "M": T, "K": T, "N": d.head_dim, "count": d.heads}]
    return g


def workload_cost(gemms: Iterable[dict], design: str, config: dict | None = None, energy: dict | None = None,
                  bits: int = 4, groups: float = 1, bias: bool = False) -> dict:
    """Sum of :func:`gemm_cost` over a GEMM list (``count`` repetitions each)."""
    tot = {"cycles": 0.0, "array_cycles": 0.0, "vector_cycles": 0.0, "memory_cycles": 0.0, "seconds": 0.0}
    e = 0.0
    per = []
    for gm in gemms:
        r = gemm_cost(gm["M"], gm["K"], gm["N"], design, config, energy, bits, groups, bias)
        n = gm.get("count", 1)
        for k in tot:
            tot[k] += n * r[k]
        if energy is not None:
            e += n * r["energy_pj"]
        per.append({"name": gm.get("name", ""), "count": n, **r})
    out = {"design": design, **tot, "gemms": per}
    if energy is not None:
        out["energy_pj"] = e
    return out


def compare_designs(gemms: list[dict], config: dict | None = None, energy: dict | None = None,
                    bits: int = 4, groups: float = 1, bias: bool = True) -> dict:
    """Tender (a) against explicit requantization (b), per-tensor INT (c) and FP16 (d) on the same
    workload: ``speedup[d] = cycles_d / cycles_tender`` and ``energy_ratio[d] = E_d / E_tender``
    (> 1 means Tender is faster / more energy-efficient). Note that (c) does not quantize as accurately
    as Tender; the comparison is of cost only."""
    res = {d: workload_cost(gemms, d, config, energy, bits, groups, bias) for d in DESIGNS}
    ta = res["tender"]
    out = {"designs": {d: {k: v for k, v in r.items() if k != "gemms"} for d, r in res.items()},
           "speedup": {d: res[d]["cycles"] / ta["cycles"] for d in DESIGNS if d != "tender"}}
    if energy is not None:
        out["energy_ratio"] = {d: res[d]["energy_pj"] / ta["energy_pj"] for d in DESIGNS if d != "tender"}
    return out


def layer_comparison(dims, seqlen: int, bits: int, groups: float, config: dict | None = None,
                     energy: dict | None = None, scope: str = "linear", bias: bool = True) -> dict:
    """One row of the TENDER-4 table: the blocks' GEMMs of a model (``dims``: :class:`ModelDims`) at
    prefill of ``seqlen`` tokens under every design, totals over all layers (cycles, seconds, µJ), and
    the ratios of each design to Tender (``speedup_vs_<d>`` = cycles_d / cycles_tender,
    ``energy_vs_<d>`` = E_d / E_tender)."""
    cmp = compare_designs(layer_gemms(dims, seqlen, scope), config, energy, bits, groups, bias)
    row: dict = {}
    for d, r in cmp["designs"].items():
        row[f"cycles_{d}"] = r["cycles"] * dims.layers
        row[f"ms_{d}"] = r["seconds"] * dims.layers * 1e3
        if energy is not None:
            row[f"energy_uj_{d}"] = r["energy_pj"] * dims.layers * 1e-6
    for d, v in cmp["speedup"].items():
        row[f"speedup_vs_{d}"] = v
    for d, v in cmp.get("energy_ratio", {}).items():
        row[f"energy_vs_{d}"] = v
    t = cmp["designs"]["tender"]
    row["tender_bound"] = max(("array", t["array_cycles"]), ("vector", t["vector_cycles"]),
                              ("memory", t["memory_cycles"]), key=lambda kv: kv[1])[0]
    q = cmp["designs"]["requant"]
    row["requant_bound"] = max(("array", q["array_cycles"]), ("vector", q["vector_cycles"]),
                               ("memory", q["memory_cycles"]), key=lambda kv: kv[1])[0]
    return row
