"""Analytical systolic-array model (TENDER-4 mechanism)."""
import pytest

from lpbench.accel.systolic import compare_designs, effective_array, gemm_cost, layer_gemms, workload_cost
from lpbench.methods import ModelDims

BIG = {"mem_bytes_per_cycle": 10 ** 9, "vector_lanes": 10 ** 6}     # array-bound: isolate the array
ENERGY = {"int8_mult": 0.2, "int32_add": 0.1, "int32_mult": 3.1, "fp16_add": 0.4, "fp16_mult": 1.1,
          "fp32_add": 0.9, "fp32_mult": 3.7}


def test_tiny_gemm_hand_count():
    # (M×K)·(K×N) with M = N = 4, K = 8 on a 2×2 array of 4-bit PEs, INT4 operands, G = 2 non-empty groups.
    # Output tiles: ⌈4/2⌉·⌈4/2⌉ = 4. Per tile, Tender:
    #   8 cycles streaming K (one MAC per PE per cycle)
    # + 2 cycles, one shift slot per non-empty group
    # + 4 cycles fill/drain (R + C = 2 + 2)
    # = 14 cycles; 4 tiles → 56 cycles.
    cfg = {"rows": 2, "cols": 2, "pe_bits": 4, **BIG}
    assert gemm_cost(4, 8, 4, "tender", cfg, bits=4, groups=2)["cycles"] == 4 * (8 + 2 + 4) == 56
    # explicit requantization: each group's partial tile drains separately: 8 + 2·4 = 16 per tile → 64
    assert gemm_cost(4, 8, 4, "requant", cfg, bits=4, groups=2)["cycles"] == 4 * (8 + 2 * 4) == 64
    # per-tensor INT and FP16: 8 + 4 = 12 per tile → 48
    assert gemm_cost(4, 8, 4, "per_tensor", cfg, bits=4)["cycles"] == 48
    assert gemm_cost(4, 8, 4, "fp16", cfg, bits=4)["cycles"] == 48


def test_int8_uses_2x2_pes_and_bounds():
    assert effective_array({"rows": 64, "cols": 64, "pe_bits": 4}, 8) == (32, 32)
    assert effective_array({"rows": 64, "cols": 64, "pe_bits": 4}, 4) == (64, 64)
    # a 4×4 array of 4-bit PEs runs INT8 as 2×2: the tiny GEMM above then costs the same 56 cycles
    cfg = {"rows": 4, "cols": 4, "pe_bits": 4, **BIG}
    assert gemm_cost(4, 8, 4, "tender", cfg, bits=8, groups=2)["cycles"] == 56
    # vector-bound requantization: 1 lane, g·M·N = 32 FMA cycles > array cycles
    r = gemm_cost(4, 8, 4, "requant", {"rows": 2, "cols": 2, "vector_lanes": 1, "mem_bytes_per_cycle": 10 ** 9},
                  bits=4, groups=2)
    assert r["vector_cycles"] == 32 and r["cycles"] == 64                  # max(64, 32)
    r = gemm_cost(4, 8, 4, "requant", {"rows": 2, "cols": 2, "vector_lanes": 1, "mem_bytes_per_cycle": 10 ** 9,
                                       "overlap": False}, bits=4, groups=2)
    assert r["cycles"] == 64 + 32
    with pytest.raises(ValueError, match="unknown systolic config"):
        gemm_cost(4, 8, 4, "tender", {"lanes": 3})


def test_energy_parts_and_comparison():
    r = gemm_cost(4, 8, 4, "tender", {"rows": 2, "cols": 2, **BIG}, ENERGY, bits=4, groups=2)
    macs = 4 * 4 * 8
    assert r["energy_pj_parts"]["mac"] == pytest.approx(macs * (0.2 + 0.1))
    assert r["energy_pj_parts"]["shift"] == pytest.approx(16 * 1 * 0.1)          # g-1 shifts as INT32 adds
    with pytest.raises(KeyError, match="no energy constant"):
        gemm_cost(4, 8, 4, "tender", None, {"int32_add": 0.1}, bits=4)
    dims = ModelDims(hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, head_dim=128, vocab=32000)
    gem = layer_gemms(dims, 2048, scope="all")
    assert [g["name"] for g in gem][-2:] == ["qk", "pv"] and gem[-1]["count"] == 32
    cmp = compare_designs(gem, None, ENERGY, bits=4, groups=14)
    assert cmp["speedup"]["requant"] > 1 and cmp["energy_ratio"]["requant"] > 1
    assert cmp["speedup"]["per_tensor"] <= 1          # Tender pays G shift slots per tile
    assert cmp["energy_ratio"]["fp16"] > 1
    w = workload_cost(layer_gemms(dims, 16), "tender", bits=8, groups=8)
    assert w["cycles"] > 0 and len(w["gemms"]) == 7


def test_layer_comparison_row():
    from lpbench.accel.systolic import layer_comparison
    dims = ModelDims(hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, head_dim=128, vocab=32000)
    row = layer_comparison(dims, 2048, 4, 14, None, ENERGY)
    cmp = compare_designs(layer_gemms(dims, 2048), None, ENERGY, bits=4, groups=14)
    assert row["speedup_vs_requant"] == pytest.approx(cmp["speedup"]["requant"])
    assert row["cycles_tender"] == pytest.approx(32 * cmp["designs"]["tender"]["cycles"])
    assert row["energy_vs_requant"] > 1 and row["tender_bound"] in ("array", "vector", "memory")
    # one group: requantization drains once, like Tender; Tender's only extra is its one shift slot per tile
    one = layer_comparison(dims, 2048, 4, 1, None, ENERGY)
    assert one["speedup_vs_requant"] == pytest.approx(1.0, abs=1e-3) and one["speedup_vs_requant"] < 1
