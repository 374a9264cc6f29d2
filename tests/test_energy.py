"""Whole-model energy per token (lpbench.hwcost.token_energy) and its agreement with the per-paper cost tables."""
from pathlib import Path

import pytest

from lpbench.archs import FAMILIES
from lpbench.hwcost import COMPONENTS, Datapath, energy_pj, load_costs, token_energy
from lpbench.methods import ModelDims, build_method
from lpbench.methods.datapath import datapath
from lpbench.config import expand_stacks

COSTS = load_costs(Path(__file__).parents[1] / "config" / "hw_costs.yaml")
LLAMA = FAMILIES["llama"]
SMOL = ModelDims(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64, vocab=49152)
ENTRIES = {
    "fp32": {"method": "fp32"}, "fp16": {"method": "fp16"},
    "rtn-w4a4": {"method": "rtn", "w_bits": 4, "a_bits": 4},
    "rrs": {"method": "rrs", "group_size": 128, "weights": "gptq"},
    "rrs-kv4": {"method": "rrs", "group_size": 128, "kv_bits": 4},
    "tender": {"method": "tender", "bits": 8}, "tender4-all": {"method": "tender", "bits": 4, "scope": "all"},
    "slanc": {"method": "slanc", "fmt": "fp16"}, "dyn": {"method": "slanc", "variant": "dynamic", "fmt": "fp16"},
    "iter": {"method": "iterl2norm", "iters": 5},
    "rrs+slanc": {"method": "stack", "of": ["rrs", "slanc"]},
    "slanc+iter": {"method": "stack", "of": ["slanc", "iter"]},
    "slanc+tender": {"method": "stack", "of": ["slanc", "tender"]},
}


def method(name):
    return build_method(name, expand_stacks(ENTRIES)[0][name])


def test_fp32_on_a_hand_sized_model_equals_a_hand_count():
    """2 layers, d = 8, 2 heads of 4, MLP 16 (gated), vocabulary 10; batch 4, context 6."""
    d = ModelDims(hidden=8, intermediate=16, layers=2, heads=2, kv_heads=2, head_dim=4, vocab=10)
    e = token_energy(d, datapath(method("fp32"), d, LLAMA), COSTS, batch=4, context=6)
    mac = 3.7 + 0.9                                        # FP32 multiply + add
    macs = 2 * (4 * 8 * 8 + 3 * 8 * 16)                    # q, k, v, o + gate, up, down
    assert e["gemm_blocks"] == pytest.approx(macs * mac)   # 1280 MACs
    assert e["lm_head"] == pytest.approx(10 * 8 * mac)
    assert e["attention"] == pytest.approx(2 * 2 * (4 * 6 + 4 * 6) * mac)     # layers x heads x (QK + PV)
    exp = 4 * 3.7 + 4 * 0.9
    row = (5 + 6 + 5) * 0.9 + 6 * exp + (6 + 1) * 3.7     # max, subtract, sum; exps; 1/sum and 6 mults
    assert e["softmax"] == pytest.approx(2 * 2 * row)
    rms = (3 * 8 + 1) * 3.7 + 8 * 0.9 + 2 * 3.7            # squares, /d, ·r, ·γ; 7 adds + eps; sqrt + divide
    assert e["norms"] == pytest.approx((2 * 2 + 1) * rms)  # two per layer + the final norm
    assert e["method_extra"] == 0
    assert e["weight_memory"] == pytest.approx(162.5 * ((macs + 10 * 8) * 4 / 4 + 8 * 4))
    assert e["kv_memory"] == pytest.approx(162.5 * 2 * 2 * 2 * 4 * 6 * 4)    # layers, K+V, heads, hd, L, bytes
    assert e["total"] == pytest.approx(sum(e[c] for c in COMPONENTS))


@pytest.mark.parametrize("name", list(ENTRIES))
@pytest.mark.parametrize("int_mult", ["upper", "quadratic"])
def test_components_sum_to_the_total(name, int_mult):
    e = token_energy(SMOL, datapath(method(name), SMOL, LLAMA), COSTS, 16, 512, int_mult)
    assert set(e) == {*COMPONENTS, "total"}
    assert e["total"] == pytest.approx(sum(e[c] for c in COMPONENTS), rel=1e-12)
    assert all(e[c] >= 0 for c in COMPONENTS)


@pytest.mark.parametrize("name", ["fp32", "rtn-w4a4", "tender", "rrs+slanc"])
def test_memory_traffic_scales_as_one_over_batch(name):
    dp = datapath(method(name), SMOL, LLAMA)
    embed_row = 162.5 * SMOL.hidden * dp.head_bits / 8                  # the token's own row: not shared
    e = {b: token_energy(SMOL, dp, COSTS, b, 512) for b in (1, 2, 8, 64)}
    for b in (2, 8, 64):
        assert (e[b]["weight_memory"] - embed_row) * b == pytest.approx(e[1]["weight_memory"] - embed_row)
        assert all(e[b][c] == e[1][c] for c in COMPONENTS if c != "weight_memory")   # compute, KV: per token
    assert token_energy(SMOL, dp, COSTS, 8, 1024)["kv_memory"] == pytest.approx(2 * e[8]["kv_memory"])


def test_int4_upper_bound_and_quadratic_alternative():
    dp = datapath(method("rtn-w4a4"), SMOL, LLAMA)
    up, quad = (token_energy(SMOL, dp, COSTS, 1, 512, m)["gemm_blocks"] for m in ("upper", "quadratic"))
    assert up == pytest.approx(SMOL.gemm_macs * (0.2 + 0.1))
    assert quad == pytest.approx(SMOL.gemm_macs * (0.2 / 4 + 0.1))
    int8 = datapath(method("tender"), SMOL, LLAMA)
    assert token_energy(SMOL, int8, COSTS, 1, 512, "quadratic") == token_energy(SMOL, int8, COSTS, 1, 512)


def test_datapaths_of_methods_and_stacks():
    dp = {n: datapath(method(n), SMOL, LLAMA) for n in ENTRIES}
    assert (dp["rrs"].gemm, dp["rrs"].weight_bits, dp["rrs"].kv_bits) == ("int4", 4, 32)
    assert (dp["rrs-kv4"].kv_bits, dp["tender4-all"].attention, dp["tender4-all"].kv_bits) == (4, "int4", 4)
    assert dp["slanc"].norm_fmt == "fp16" and dp["slanc"].gemm == "fp32"
    stacked = dp["rrs+slanc"]                       # RRS's GEMMs and extras, SLaNC's FP16 norms
    assert (stacked.gemm, stacked.norm_fmt, stacked.extra_ops) == ("int4", "fp16", dp["rrs"].extra_ops)
    both = dp["slanc+iter"]                         # the iteration in SLaNC's FP16 (IterL2Norm's fmt is fp32)
    assert both.norm_fmt == "fp16" and both.norm_ops == dp["iter"].norm_ops
    assert dp["slanc+tender"].extra_ops == dp["tender"].extra_ops and dp["slanc+tender"].norm_fmt == "fp16"
    percol = build_method("p", {"method": "rtn", "a_granularity": "per_column"})     # an accuracy reference
    assert not datapath(percol, SMOL, LLAMA).realizable and all(d.realizable for d in dp.values())
    for n in ("rrs+slanc", "slanc+iter", "slanc+tender"):            # energy of a stack = its parts'
        parts = [datapath(m, SMOL, LLAMA) for m in method(n).components]
        e = token_energy(SMOL, dp[n], COSTS, 16, 512)
        assert e["method_extra"] == pytest.approx(sum(token_energy(SMOL, p, COSTS, 16, 512)["method_extra"]
                                                      for p in parts))


# ---- the per-paper cost tables read the same constants for the same ops --------------------------------
def test_hwcost_table_prices_the_same_gemm_and_extras():
    """hwcost.csv = energy_pj(ops_per_token(dims)) of each kind's own convention: GEMMs + runtime extras
    (= gemm_blocks + method_extra here, for a pre-norm model: on Gemma 3 the interface call does not know
    the sandwich rotation's two extra Hadamards per layer, which energy.csv and rrs_cost count); SLaNC's
    ops_per_token is its runtime extras only, IterL2Norm's the FP32 GEMMs + its whole norm datapath."""
    for name in ("fp32", "fp16", "rtn-w4a4", "rrs", "rrs-kv4", "tender", "rrs+slanc", "slanc+tender", "dyn"):
        m = method(name)
        e = token_energy(SMOL, datapath(m, SMOL, LLAMA), COSTS, 1, 512)
        gemm = 0 if name == "dyn" else e["gemm_blocks"]
        assert energy_pj(m.ops_per_token(SMOL), COSTS)["total"] == pytest.approx(gemm + e["method_extra"]), name
    e = token_energy(SMOL, datapath(method("iter"), SMOL, LLAMA), COSTS, 1, 512)
    assert energy_pj(method("iter").ops_per_token(SMOL), COSTS)["total"] == pytest.approx(e["gemm_blocks"] + e["norms"])


def test_rrs_cost_extra_equals_the_difference_to_plain_w4a4():
    from lpbench.studies.rrs.analysis import cost_rows

    rrs = method("rrs")
    rows = cost_rows({"m": SMOL}, {"m": LLAMA}, {"rrs": ENTRIES["rrs"]}, COSTS,
                     [{"model": {"id": "m"}, "method": {"name": "rrs"}}])
    plain = build_method("p", {"method": "w4a4", "weights": "gptq"})
    extra = (token_energy(SMOL, datapath(rrs, SMOL, LLAMA), COSTS, 1, 512)["method_extra"]
             - token_energy(SMOL, datapath(plain, SMOL, LLAMA), COSTS, 1, 512)["method_extra"])
    assert rows[0]["extra_pj_per_token"] == pytest.approx(extra)


@pytest.mark.parametrize("kind, fmt", [("rmsnorm", "fp32"), ("rmsnorm", "fp16"), ("layernorm", "fp32")])
def test_iterl2norm_energy_table_is_the_same_norm_model(kind, fmt):
    """results/tables/iterl2norm_energy.csv at div_sqrt_vs_mult = 1 prices one norm as the norms component."""
    from lpbench.studies.iterl2norm.hardware import energy_table

    d = ModelDims(hidden=512, intermediate=1024, layers=1, heads=8, kv_heads=8, head_dim=64, vocab=8,
                  mlp_matrices=3 if kind == "rmsnorm" else 2)
    arch = LLAMA if kind == "rmsnorm" else FAMILIES["opt"]
    t = energy_table(COSTS, [512], [fmt], [1], iters=5, kind=kind).set_index("datapath")["energy_pj"]
    for datapath_name, entry in (("sqrtdiv-recip", {"method": "slanc", "variant": "none", "fmt": fmt}),
                                 ("iterl2norm", {"method": "iterl2norm", "iters": 5, "fmt": fmt})):
        e = token_energy(d, datapath(build_method("x", entry), d, arch), COSTS, 1, 8)["norms"]
        assert e / 3 == pytest.approx(t[datapath_name]), datapath_name        # 2 per layer + final norm


def test_unified_norm_energy_table_differs_by_one_add_per_sum():
    """UN's table (config norm_ops_per_vector) counts a d-term sum as d adds, ours as d − 1: RMSNorm one
    FP32 add more per vector, LayerNorm two (its mean and its variance); the same sqrt/div constant."""
    from lpbench.studies.unified_norm.speed import energy_table

    un = energy_table(COSTS, {"m": (576, 61)}).set_index("norm")["energy_pj_per_token"]
    ours = {k: token_energy(d, datapath(method("fp32"), d, a), COSTS, 1, 8)["norms"]
            for k, d, a in (("rmsnorm", SMOL, LLAMA), ("layernorm", ModelDims(**{**SMOL.__dict__, "mlp_matrices": 2}),
                                                                        FAMILIES["opt"]))}
    assert un["rmsnorm"] - ours["rmsnorm"] == pytest.approx(61 * 1 * 0.9)
    assert un["layernorm"] - ours["layernorm"] == pytest.approx(61 * 2 * 0.9)


def test_tender_cost_model_charges_the_same_macs():
    """TENDER-4's array model (tender_cost) prices the MACs with the same constants; its vector-unit terms
    are per GEMM (q/k/v and gate/up each quantize their shared input; bias terms on every GEMM) and it
    counts no memory energy, so only the MAC part is compared."""
    from lpbench.accel.systolic import gemm_cost, layer_gemms

    energy = {op: e["value"] for op, e in COSTS["energy_pj"].items()}
    T = 64
    mac = sum(g["count"] * gemm_cost(g["M"], g["K"], g["N"], "tender", None, energy, 8, 8)["energy_pj_parts"]["mac"]
              for g in layer_gemms(SMOL, T)) * SMOL.layers / T
    assert mac == pytest.approx(token_energy(SMOL, datapath(method("tender"), SMOL, LLAMA), COSTS, 1, 8)["gemm_blocks"])


def test_unknown_kind_has_no_datapath():
    class Odd:
        kind, name, params = "odd", "odd", {}
    with pytest.raises(ValueError, match="kind 'odd' has no datapath"):
        datapath(Odd(), SMOL, LLAMA)
    with pytest.raises(ValueError, match="batch and context"):
        token_energy(SMOL, Datapath(), COSTS, 0, 8)


def test_a_kind_without_datapath_gets_an_empty_energy_row_not_a_failed_job(monkeypatch):
    """A newly added method kind must not break the energy table of every other method."""
    import lpbench.studies.pareto as pareto

    real = pareto.build_method

    def build(name, entry):
        m = real(name, entry)
        if name == "odd":
            m.kind = "odd"                        # a registered kind the energy model does not know
        return m

    monkeypatch.setattr(pareto, "build_method", build)
    entries = {"fp32": {"method": "fp32"}, "odd": {"method": "fp32"}}
    rows = pareto.energy_rows({"m": SMOL}, {"m": LLAMA}, entries, [("m", "fp32"), ("m", "odd")], COSTS, [1, 4], 8)
    odd = [r for r in rows if r["method"] == "odd"]
    assert len(odd) == 2 and all(r["total_pj"] != r["total_pj"] and "no datapath" in r["notes"] for r in odd)
    assert all(r["total_pj"] > 0 for r in rows if r["method"] == "fp32")


# ---- Pareto table ---------------------------------------------------------------------------------------
def test_front_is_the_non_dominated_points():
    from lpbench.studies.pareto import on_front

    e, r = [1, 2, 3, 2, 5, float("nan")], [5, 3, 1, 4, 1, 0.5]
    assert on_front(e, r).tolist() == [True, True, True, False, False, False]


def test_pareto_table_pairs_energy_with_the_ratio_to_fp32_and_draws(tmp_path):
    import numpy as np
    import pandas as pd

    from lpbench.plots import save
    from lpbench.studies.pareto import pareto_figure, pareto_table

    rng = np.random.default_rng(0)
    base = rng.gamma(2.0, 1.5, size=(4, 63))
    shift = {"fp32": 0.0, "cheap": 0.3, "mid": 0.05, "bad": None}
    results = [{"model": {"id": "m"}, "corpus": {"id": "c"}, "method": {"name": n, "kind": "rtn"},
                "metrics": {"kind": "perplexity", "perplexity": 1.0,
                            "token_nll": [None] * 4 if s is None else (base + s).tolist()}}
               for n, s in shift.items()]
    energy = pd.DataFrame([{"model": "m", "method": n, "batch": b, "context": 8, "components": "",
                            "total_pj": {"fp32": 9e6, "cheap": 1e6, "mid": 5e6, "bad": 1e5}[n] / b}
                           for n in shift for b in (1, 16)])
    df = pareto_table(energy, results)
    one = df[df["batch"] == 16].set_index("method")
    assert one.loc["cheap", "ppl_ratio"] == pytest.approx(np.exp(0.3))
    assert one.loc["cheap", "ci_low"] == pytest.approx(np.exp(0.3)) and one.loc["fp32", "ppl_ratio"] == 1.0
    assert one["on_front"].to_dict() == {"fp32": True, "cheap": True, "mid": True, "bad": False}
    assert not one.loc["bad", "finite"] and one.loc["bad", "status"] == "NaN/inf logits"
    ref = energy.assign(realizable=energy["method"] != "mid")          # an accuracy reference: off the front
    assert not pareto_table(ref, results).set_index(["method", "batch"]).loc[("mid", 16), "on_front"]
    save(pareto_figure(df, "m", 16), tmp_path / "p.png", tmp_path / "p.pdf")
    assert (tmp_path / "p.png").stat().st_size > 10_000 and (tmp_path / "p.pdf").is_file()
