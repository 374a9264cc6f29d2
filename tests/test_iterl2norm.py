"""Tests of IterL2Norm / FISR (lpbench.methods.iterl2norm) and the norm-macro latency model."""
import math
import struct

import numpy as np
import pytest
import torch

from lpbench.accel import norm_macro
from lpbench.archs import get_arch, get_submodule
from lpbench.lowprec import FORMATS, round_to
from lpbench.methods import ModelDims, build_method
from lpbench.methods.iterl2norm import (FISR_MAGIC, IterNorm, fisr, fisr_init, fisr_normalize,
                                        iter_inv_sqrt, iterl2norm, norm_ops, pow2_init)

F64 = torch.float64


# ---- FISR bit trick ----------------------------------------------------------------------------------
def _f32_trick(s):
    i = struct.unpack("<I", struct.pack("<f", s))[0]
    return struct.unpack("<f", struct.pack("<I", 0x5F3759DF - (i >> 1)))[0]


def _f16_trick(s, magic):
    i = struct.unpack("<H", struct.pack("<e", s))[0]
    return struct.unpack("<e", struct.pack("<H", magic - (i >> 1)))[0]


def _bf16_trick(s):
    i = struct.unpack("<I", struct.pack("<f", s))[0] >> 16      # s is exact in bf16: top half
    return struct.unpack("<f", struct.pack("<I", (0x5F37 - (i >> 1)) << 16))[0]


def test_fisr_first_estimate_is_the_bit_trick():
    vals = [1.0, 2.0, 4.0, 0.15625, 768.0, 3.0e-3]
    S = torch.tensor(vals, dtype=F64)
    assert fisr_init(S, "fp32").tolist() == [_f32_trick(v) for v in vals]
    assert fisr_init(S, "fp16").tolist() == [_f16_trick(float(round_to(torch.tensor(v), "fp16")), 0x59BB)
                                            for v in vals]
    vb = [float(round_to(torch.tensor(v, dtype=F64), "bf16")) for v in vals]
    assert fisr_init(S, "bf16").tolist() == [_bf16_trick(v) for v in vb]
    assert fisr(S, 0, "fp32").tolist() == [_f32_trick(v) for v in vals]
    assert _f32_trick(1.0) == pytest.approx(0.9662, abs=1e-4)     # the well-known first guess at 1


def test_fisr_magic_constants():
    assert FISR_MAGIC["fp32"] == 0x5F3759DF and FISR_MAGIC["bf16"] == 0x5F37 and FISR_MAGIC["fp16"] == 0x59BB


# ---- pow2 initialization -------------------------------------------------------------------------------
def test_pow2_init_is_exponent_based_and_in_newton_region():
    S = torch.from_numpy(np.random.default_rng(0).uniform(-40, 40, 5000)).exp2()
    a0 = pow2_init(S)
    assert torch.equal(torch.frexp(a0)[0], torch.full_like(a0, 0.5))       # exact powers of two
    r = S * a0 * a0
    assert ((r >= 0.5) & (r < 2)).all()                                    # inside Newton's region (0, 3)
    for s in (1.0, 3.8, 0.15625, 1000.0):                                  # matches the fp32 exponent field
        e = ((struct.unpack("<I", struct.pack("<f", s))[0] >> 23) & 0xFF) - 127
        assert pow2_init(torch.tensor([s], dtype=F64)).item() == 2.0 ** -math.ceil(e / 2)
    # the floor variant 2^-floor(e/2) would put S·a0² = 3.8 for S = 3.8 and the Newton step diverges
    assert 1 + 0.5 * (1 - 3.8) < 0


# ---- convergence -------------------------------------------------------------------------------------
def _normwise(out, y):
    ref = y / y.norm(dim=-1, keepdim=True)
    return (out - ref).norm(dim=-1) / ref.norm(dim=-1)


def test_fp64_iteration_reaches_1e12():
    y = torch.randn(64, 768, dtype=F64, generator=torch.Generator().manual_seed(0)) * 5 + 0.3
    assert _normwise(iterl2norm(y, 8, "fp64"), y).max() < 1e-12
    assert _normwise(fisr_normalize(y, 6, "fp64"), y).max() < 1e-12
    # linear rate for lam != 1/2 (|1 - 2λ| = 0.5 per step): more steps, same limit
    assert _normwise(iterl2norm(y, 60, "fp64", lam=0.25), y).max() < 1e-12


@pytest.mark.parametrize("fmt", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("d", [64, 1024])
def test_format_error_after_5_iterations_within_roundoff_bound(fmt, d):
    """Normwise relative error of fl(y·a) vs y/‖y‖ (y rounded to fmt, reference in float64).

    Bound, first order in the unit roundoff u (Higham's γ_n = nu/(1−nu) absorbs the higher orders):
      S: d rounded squares, pairwise tree of depth ⌈log₂d⌉, positive terms → rel. error ≤ γ_{⌈log₂d⌉+1};
         a* ∝ S^(-1/2) halves it.
      iteration at its fixed point (a = a*(1+ε)): IterL2Norm's step rounds S·a, ·a (2u, halved by λ=½)
         and a + … (u) → ≤ 2u; FISR's rounds h·a, ·a (2u halved), 1.5 − … (u), a·(…) (u) → ≤ 3u.
      output y·a: u per element; entries that land in the subnormal range add ≤ ½ min_subnormal each.
      truncation: the same iteration's error in float64 after 5 steps (0 once converged).
    """
    f = FORMATS[fmt]
    u = f.u
    y = round_to(torch.randn(32, d, dtype=F64, generator=torch.Generator().manual_seed(d)), fmt)
    S = y.pow(2).sum(-1)
    log_d = math.ceil(math.log2(d))
    for algo, c_iter in (("iterl2norm", 2), ("fisr", 3)):
        if algo == "iterl2norm":
            out, a64 = iterl2norm(y, 5, fmt), iter_inv_sqrt(S, 5, "fp64")
        else:
            out, a64 = fisr_normalize(y, 5, fmt), fisr(S, 5, "fp64")
        trunc = (a64 * S.sqrt() - 1).abs()
        n = 0.5 * (log_d + 1) + c_iter + 1
        bound = n * u / (1 - n * u) + trunc + math.sqrt(d) * f.min_subnormal / 2
        err = _normwise(out, y)
        assert (err <= bound).all(), (algo, err.max().item(), bound.min().item())
        assert trunc.max() < u            # 5 iterations suffice on these inputs


# ---- models ------------------------------------------------------------------------------------------
def _perturb_norms(model, arch, g):
    for name in arch.norm_names(model):
        m = get_submodule(model, name)
        with torch.no_grad():
            m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg)


def _tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM
    cfg = OPTConfig(vocab_size=128, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=64, word_embed_proj_dim=64)
    return OPTForCausalLM(cfg)


@pytest.mark.parametrize("build", [_tiny_llama, _tiny_opt])
@pytest.mark.parametrize("algorithm", ["iterl2norm", "fisr"])
def test_replaced_norms_reproduce_model_logits(build, algorithm):
    torch.manual_seed(0)
    model = build().eval()
    arch = get_arch(model)
    _perturb_norms(model, arch, torch.Generator().manual_seed(1))
    ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(ids).logits
    method = build_method("it", {"method": "iterl2norm", "iters": 30, "fmt": "fp32", "algorithm": algorithm})
    method.apply(model, arch, {})
    assert all(isinstance(get_submodule(model, n), IterNorm) for n in arch.norm_names(model))
    with torch.no_grad():
        out = model(ids).logits
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5


def test_gemma3_rmsnorm_offset_weight():
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm
    norm = Gemma3RMSNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(0.3 * torch.randn(48, generator=torch.Generator().manual_seed(0)))
    new = IterNorm.from_module(norm, iters=30, fmt="fp32")
    x = torch.randn(3, 5, 48, generator=torch.Generator().manual_seed(1)) * 4
    with torch.no_grad():
        torch.testing.assert_close(new(x), norm(x), rtol=1e-5, atol=1e-5)
        # in bf16 with 5 iterations: error at bf16's roundoff level. Bound (as in the format test):
        # S ½(⌈log₂48⌉+1)u, iteration 2u, y·a and ·(1+w) 2u, fl(1+w) u, input rounding u on y + ½u via S
        out, ref = IterNorm.from_module(norm, iters=5, fmt="bf16")(x), norm(x)
        n, u = 0.5 * 7 + 2 + 3 + 1.5, FORMATS["bf16"].u
        assert (((out - ref).norm(dim=-1) / ref.norm(dim=-1)) <= n * u / (1 - n * u)).all()


def test_method_parameters_checked_and_ops_counted():
    with pytest.raises(ValueError, match="algorithm"):
        build_method("bad", {"method": "iterl2norm", "algorithm": "newton"})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_method("bad", {"method": "iterl2norm", "k": 3})
    # one RMSNorm of d = 4, 2 iterations: 4 squares + ·(1/d) + 4·(y·a) + 4·γ + 4·2 iteration mults,
    # 3 tree adds + eps + 2·2 iteration adds
    # + 2 integer adds of the pow2 initialization
    assert norm_ops(4, "rmsnorm", "iterl2norm", 2) == {"mult": 4 + 1 + 4 + 4 + 8, "add": 3 + 1 + 4, "int": 2,
                                                       "sqrt": 0, "div": 0}
    assert norm_ops(4, "rmsnorm", "sqrtdiv", 0) == {"mult": 13, "add": 4, "int": 0, "sqrt": 1, "div": 1}
    assert norm_ops(4, "rmsnorm", "sqrtdiv", 0, divide_per_element=True)["div"] == 4
    m = build_method("it", {"method": "iterl2norm", "iters": 2, "fmt": "bf16"})
    dims = ModelDims(hidden=4, intermediate=8, layers=3, heads=1, kv_heads=1, head_dim=4, vocab=10)
    from lpbench.archs import FAMILIES
    gemm = {"fp32_mult": dims.gemm_macs, "fp32_add": dims.gemm_macs}
    # bf16 charged with the fp16 constants; 2 norms per layer + final = 7 norms
    norms = {"fp16_mult": 7 * 21, "fp16_add": 7 * 8, "int32_add": 7 * 2}
    assert m.norm_ops_per_token(dims, FAMILIES["llama"]) == norms
    assert m.ops_per_token(dims, arch=FAMILIES["llama"]) == {**gemm, **norms}
    # through the interface (dims only): the pre-norm estimate, the same for Llama
    assert m.ops_per_token(dims) == {**gemm, **norms}
    # Gemma3 with its registry entry: 4 norms per layer + q/k norms per head + final
    g = m.norm_ops_per_token(dims, FAMILIES["gemma3"])
    assert g["int32_add"] == 2 * (4 * 3 + 3 * (1 + 1) + 1)


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("algorithm", ["iterl2norm", "fisr"])
def test_ops_have_energy_constants_in_every_format(fmt, algorithm):
    from pathlib import Path

    from lpbench.hwcost import energy_pj, load_costs
    costs = load_costs(Path(__file__).parents[1] / "config" / "hw_costs.yaml")
    dims = ModelDims(hidden=8, intermediate=16, layers=2, heads=2, kv_heads=1, head_dim=4, vocab=10)
    m = build_method("it", {"method": "iterl2norm", "fmt": fmt, "algorithm": algorithm})
    assert energy_pj(m.ops_per_token(dims), costs)["total"] > 0
    with pytest.raises(ValueError, match="no energy constants for format fp64"):
        build_method("it", {"method": "iterl2norm", "fmt": "fp64"}).ops_per_token(dims)


# ---- norm macro latency model ------------------------------------------------------------------------
def test_norm_macro_tiny_configuration_hand_count():
    """L = 4 lanes, d = 8, RMSNorm, all latencies 1, k = 2 iterations of 3 cycles, fixed = 2.
    statistics: beats 1-2 read x[0:4], x[4:8] (n = 2); the last beat is read at cycle 2, squared at 3,
      lane-accumulated at 4; adder tree over 4 lanes: 2 levels → cycles 5, 6.        → 6
    finalize: Σ·(1/d) at 7, + eps at 8.                                              → 2
    init: exponent halving at 9.                                                     → 1
    iterations: 2 × 3 cycles, 10-15.                                                 → 6
    scale and write: beats 16-17 read, the last beat: ×a at 18, ×γ at 19, written at 20. → 5
    fixed: 2.                                                                        → total 22"""
    p = dict(kind="rmsnorm", lanes=4, mem_width=4, iters=2, cycles_per_iter=3, fixed=2)
    assert norm_macro.breakdown(8, **p) == {"statistics": 6, "finalize": 2, "init": 1, "iterations": 6,
                                            "scale_write": 5, "fixed": 2}
    assert norm_macro.cycles(8, **p) == 22


def test_norm_macro_fit_reports_residuals():
    r = norm_macro.fit(lanes=16, mem_width=16)
    assert r["predicted"][0] - r["residuals"][0] == 116 and r["predicted"][1] - r["residuals"][1] == 227
    assert abs(sum(r["residuals"])) < 1e-9                    # least squares for the constant
    assert r["overhead_U"] == pytest.approx(r["fixed_if_chain_iter"] + 5 * r["dependency_chain_per_iter"])
    with pytest.raises(ValueError, match="unknown norm-macro parameter"):
        norm_macro.cycles(64, lane=3)


# ---- declared starts (issue: the paper's initialisation is unknown) ----------------------------------
def test_centred_start_converges_in_five_steps_over_a_dense_sweep_float64():
    """Exact-ish (float64) arithmetic: from a0 = 2^-ceil(e/2)·2^-1/4 five λ = ½ steps reach fp32's unit
    roundoff for every S in a dense sweep over [2^-40, 2^40]; the pow2 start does not (it needs six)."""
    from lpbench.methods.iterl2norm import centred_init
    S = torch.logspace(-40, 40, 400_001, base=2.0, dtype=F64)
    u32 = 2.0 ** -24
    r = S * centred_init(S, "fp64") ** 2
    assert r.min() >= 2 ** -1.5 - 1e-15 and r.max() < 2 ** 0.5
    err = (iter_inv_sqrt(S, 5, "fp64", init="centred") * S.sqrt() - 1).abs()
    assert err.max().item() <= u32
    err_pow2 = (iter_inv_sqrt(S, 5, "fp64", init="pow2") * S.sqrt() - 1).abs()
    assert err_pow2.max().item() > u32            # worst case r -> 2: 4.7e-7
    assert (iter_inv_sqrt(S, 6, "fp64", init="pow2") * S.sqrt() - 1).abs().max().item() <= u32


def test_fisr_start_against_hand_computed_values():
    """0x5f3759df − (bits(S) >> 1), worked by hand:
    S = 1.0   bits 0x3f800000, >>1 0x1fc00000, R − … = 0x3f7759df = 2^-1·(1 + 7821791/2^23) = 0.9662150740623474
    S = 4.0   bits 0x40800000, >>1 0x20400000, R − … = 0x3ef759df = 0.4831075370311737 (half of the above)
    S = 2.0   bits 0x40000000, >>1 0x20000000, R − … = 0x3f3759df = 2^-1·(1 + 3627487/2^23) = 0.7162150740623474
    S = 0.25  bits 0x3e800000, >>1 0x1f400000, R − … = 0x3ff759df = 2^0·(1 + 7821791/2^23) = 1.9324301481246948"""
    S = torch.tensor([1.0, 4.0, 2.0, 0.25], dtype=F64)
    want = [1 + 0x7759DF / 2 ** 23, (1 + 0x7759DF / 2 ** 23) / 2, 1 + 0x3759DF / 2 ** 23, 1 + 0x7759DF / 2 ** 23]
    want = [want[0] / 2, want[1] / 2, want[2] / 2, want[3]]
    got = fisr_init(S, "fp32").tolist()
    assert got == want
    assert got == pytest.approx([0.9662150740623474, 0.4831075370311737, 0.7162150740623474, 1.9324301481246948],
                                rel=1e-15)


def test_init_parameter_declared_and_checked():
    from lpbench.methods import build_method
    from lpbench.methods.iterl2norm import INITS
    assert INITS == ("pow2", "centred", "magic")
    assert build_method("x", {"method": "iterl2norm", "init": "centred"}).params["init"] == "centred"
    with pytest.raises(ValueError, match="init must be one of"):
        build_method("x", {"method": "iterl2norm", "init": "guess"})


def test_centred_start_in_low_precision_is_the_pow2_start_times_a_rounded_constant():
    from lpbench.methods.iterl2norm import centred_init
    S = torch.tensor([0.3, 1.0, 3.9, 1000.0], dtype=F64)
    for fmt in ("fp32", "bf16", "fp16"):
        c = round_to(torch.tensor(2.0 ** -0.25, dtype=F64), fmt)
        assert torch.equal(centred_init(S, fmt), pow2_init(S) * c)
