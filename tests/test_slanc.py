"""Tests of SLaNC (lpbench.methods.slanc) and its measurements (lpbench.studies.slanc)."""
import math

import numpy as np
import pytest
import torch
from helpers import tiny_model

from lpbench.archs import get_arch
from lpbench.lowprec import emulated_norm
from lpbench.methods import ModelDims, build_method
from lpbench.lowprec import native_norm
from lpbench.methods.slanc import LowPrecNorm, lowprec_norm, slanc_scales
from lpbench.studies.slanc.measure import measure, reparametrize, restore
from lpbench.studies.slanc.tables import summary_rows

F64 = torch.float64


def _eq(a, b):
    return torch.equal(a.nan_to_num(7.0, 8.0, 9.0), b.nan_to_num(7.0, 8.0, 9.0))


@pytest.mark.parametrize("fmt", ["fp16", "bf16"])
@pytest.mark.parametrize("order", ["pairwise", "sequential", "blocked"])
@pytest.mark.parametrize("kind", ["rmsnorm", "layernorm"])
def test_native_path_bit_identical_to_lowprec(fmt, order, kind):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30, 72, generator=g) * torch.logspace(-5, 3.5, 30).view(1, 30, 1)
    x[0, 0, 5] = 300.0          # a square that overflows fp16 on its own
    x[1, 1] = 0.0
    w, b = torch.randn(72, generator=g), torch.randn(72, generator=g)
    for scale in (1.0, 8.0, 3.0):
        ref, sr = emulated_norm(x, kind, fmt, order, 1e-5, w, b if kind == "layernorm" else None, scale=scale)
        out, so = native_norm(x, kind, fmt, order, 1e-5, w, b if kind == "layernorm" else None, scale=scale)
        assert _eq(ref, out)
        for key in sr:
            assert _eq(sr[key].to(F64), so[key].to(F64)), key


@pytest.mark.parametrize("kind", ["rmsnorm", "layernorm"])
def test_scale_invariance_with_eps(kind):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 48, generator=g, dtype=F64) * 1e-3      # var comparable with eps: eps matters
    w = torch.randn(48, generator=g, dtype=F64)
    eps = 1e-6
    ref, _ = emulated_norm(x, kind, "fp64", "pairwise", eps, w)
    for s in (1e3, 2.0 ** -7, 37.5):
        # LN(x/s; eps/s^2) == LN(x; eps): the norm told the scale uses eps/s^2 ...
        out, _ = emulated_norm(x, kind, "fp64", "pairwise", eps, w, scale=s)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-14)
        # ... and the folded form (input already x/s, eps/s^2 passed explicitly) agrees
        folded, _ = lowprec_norm(x / s, kind, "fp64", "pairwise", eps, w, None, "static", s, True)
        torch.testing.assert_close(folded, ref, rtol=1e-12, atol=1e-14)
        # keeping eps unscaled would be wrong here
        wrong, _ = emulated_norm(x / s, kind, "fp64", "pairwise", eps, w)
        assert (wrong - ref).abs().max() > 1e-6


def _phi_grid(act, m, r):
    """E act(m + r z)^2 and E act(m + r z) by a dense trapezoid on [-12, 12] (independent of the
    module's Gauss-Hermite quadrature)."""
    z = np.linspace(-12, 12, 20001)
    pdf = np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    h = torch.tensor(m[:, None] + r[:, None] * z[None, :], dtype=F64)
    a = act(h).numpy()
    return np.trapezoid(a * pdf, z, axis=1), np.trapezoid(a * a * pdf, z, axis=1)


def test_slanc_scales_equal_hand_computation_llama():
    model = tiny_model("llama")
    arch = get_arch(model)
    sc = slanc_scales(model, arch, target_sumsq=1.0)
    cfg = model.config
    H, KV, hd = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads
    E = model.model.embed_tokens.weight.detach().double().numpy()
    S = (E ** 2).sum(1).mean()
    from transformers.activations import ACT2FN
    act = ACT2FN[cfg.hidden_act]
    for i, layer in enumerate(model.model.layers):
        assert sc[f"model.layers.{i}.input_layernorm"]["scale"] == pytest.approx(math.sqrt(S), rel=1e-5)
        g = layer.input_layernorm.weight.detach().double().numpy()
        Wv = layer.self_attn.v_proj.weight.detach().double().numpy()
        Wo = layer.self_attn.o_proj.weight.detach().double().numpy()
        M = sum(Wo[:, h * hd:(h + 1) * hd] @ Wv[(h // (H // KV)) * hd:(h // (H // KV) + 1) * hd] for h in range(H))
        S += ((M * g[None, :]) ** 2).sum()
        assert sc[f"model.layers.{i}.post_attention_layernorm"]["scale"] == pytest.approx(math.sqrt(S), rel=1e-5)
        g = layer.post_attention_layernorm.weight.detach().double().numpy()
        Wg = layer.mlp.gate_proj.weight.detach().double().numpy()
        Wu = layer.mlp.up_proj.weight.detach().double().numpy()
        Wd = layer.mlp.down_proj.weight.detach().double().numpy()
        rg = np.linalg.norm(Wg * g[None, :], axis=1)
        ru = np.linalg.norm(Wu * g[None, :], axis=1)
        _, phi = _phi_grid(act, np.zeros_like(rg), rg)
        S += ((Wd ** 2).sum(0) * phi * ru ** 2).sum()
    assert sc["model.norm"]["scale"] == pytest.approx(math.sqrt(S), rel=1e-5)
    assert all(p["mode"] == "pow2" for p in sc.values())          # residual-stream inputs: no fold
    assert all(p["applied"] == 2.0 ** round(math.log2(p["scale"])) for p in sc.values())


def test_gemma_scales_fold_where_possible():
    model = tiny_model("gemma3")
    arch = get_arch(model)
    sc = slanc_scales(model, arch)
    modes = {p["role"]: p["mode"] for p in sc.values()}
    assert modes == {"attn_in": "pow2", "attn_out": "fold", "mlp_in": "pow2", "mlp_out": "fold",
                     "q_norm": "fold", "k_norm": "fold", "final": "pow2"}
    # embedding multiplier sqrt(d) enters the first scale
    E = model.model.embed_tokens.weight.detach().double()
    s0 = math.sqrt(float(E.pow(2).sum(1).mean()) * model.config.hidden_size)
    assert sc["model.layers.0.input_layernorm"]["scale"] == pytest.approx(s0, rel=1e-5)


@pytest.mark.parametrize("family", ["llama", "gemma3", "bert"])
def test_fold_and_eps_preserve_the_function(family):
    """SLaNC in (emulated) fp64: folding 1/s into linears + eps/s^2 leaves the model's output unchanged."""
    ids = torch.randint(0, 101, (2, 12), generator=torch.Generator().manual_seed(0))
    ref_model = tiny_model(family)
    with torch.no_grad():
        ref = ref_model(ids)
    model = tiny_model(family)
    arch = get_arch(model)
    method = build_method("slanc-fp64", {"method": "slanc", "variant": "static", "fmt": "fp64"})
    art = method.calibrate(model, arch, None, None)
    method.apply(model, arch, art)
    assert any(isinstance(m, LowPrecNorm) for m in model.modules())
    with torch.no_grad():
        out = model(ids)
    key = "logits" if family != "bert" else "last_hidden_state"
    torch.testing.assert_close(out[key], ref[key], rtol=1e-4, atol=1e-4)


def test_synthetic_overflow_fixed_by_slanc():
    """A model whose residual stream is 1000x larger (function-preserving reparametrization): FP16
    Σx² overflows without scaling, not with SLaNC's weight-derived scales; dynamic also survives."""
    model = tiny_model("llama")
    arch = get_arch(model)
    reparametrize(model, arch, 1000.0)
    ids = torch.randint(0, 101, (1, 16), generator=torch.Generator().manual_seed(0))
    sc = slanc_scales(model, arch)
    res = measure(model, arch, ids, sc, fmt="fp16", progress=False)
    rows = {r["variant"]: r for r in summary_rows(res)}
    assert rows["none"]["overflow_count"] > 0
    assert rows["slanc"]["overflow_count"] == 0 and rows["slanc"]["underflow_count"] == 0
    assert rows["dynamic"]["overflow_count"] == 0
    assert rows["slanc"]["max_rel_err"] < 5e-3


def test_reparametrization_is_function_preserving_and_restorable():
    for family in ("llama", "gemma3"):
        model = tiny_model(family)
        arch = get_arch(model)
        ids = torch.randint(0, 101, (1, 10), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref = model(ids).logits
            saved = reparametrize(model, arch, 16.0)
            out = model(ids).logits
            restore(saved)
            back = model(ids).logits
        torch.testing.assert_close(out, ref, rtol=1e-3, atol=1e-3)
        assert torch.equal(back, ref)


def test_stress_case_and_counts_on_tiny_model():
    model = tiny_model("gemma3")
    arch = get_arch(model)
    ids = torch.randint(0, 101, (2, 16), generator=torch.Generator().manual_seed(2))
    res = measure(model, arch, ids, slanc_scales(model, arch), stress_k=16, progress=False)
    assert res["stress_check_rel"] < 1e-3
    rows = summary_rows(res)
    assert {r["case"] for r in rows} == {"default", "stress x16"}
    n_vectors = {r["norm_vectors"] for r in rows}
    assert len(n_vectors) == 1                     # every variant saw the same vectors


def test_ops_per_token():
    model = tiny_model("gemma3")
    arch = get_arch(model)
    dims = ModelDims.from_config(model.config, arch)
    static = build_method("s", {"method": "slanc", "variant": "static"})
    dyn = build_method("d", {"method": "slanc", "variant": "dynamic"})
    assert static.ops_per_token(dims, arch) == {}
    ops = dyn.ops_per_token(dims, arch)
    L, d, hd = dims.layers, dims.hidden, dims.head_dim
    vectors = [(d, 4 * L), (hd, dims.heads * L), (hd, dims.kv_heads * L), (d, 1)]
    assert ops["fp16_add"] == sum(n * (dd - 1) for dd, n in vectors)
    assert ops["fp16_mult"] == sum(n * (dd + 1) for dd, n in vectors)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="variant"):
        build_method("x", {"method": "slanc", "variant": "sometimes"})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_method("x", {"method": "slanc", "scale": 3})


def test_scope_of_marks_the_papers_block_types_in_scope():
    from lpbench.studies.slanc.measure import scope_of
    assert scope_of("pre", ["attn_in", "mlp_in", "final"])[0] == "in-scope"
    assert scope_of("post", ["attn_out", "mlp_out"])[0] == "in-scope"
    scope, why = scope_of("sandwich", ["attn_in", "attn_out", "q_norm", "k_norm", "mlp_in", "mlp_out", "final"])
    assert scope == "extension" and "sandwich" in why and "q_norm" in why


def test_flushed_eps_is_what_turns_a_zero_variance_into_inf():
    """fl16(eps/s²) = 0 and a variance that underflows to 0 give S = 0 and a non-finite output; the same
    input with an eps that survives (s = 1) stays finite."""
    from lpbench.lowprec import native_norm
    x = torch.full((1, 64), 1e-4, dtype=torch.float32)           # x/s = 1e-7: squares flush, var = 0
    out, st = native_norm(x, "rmsnorm", "fp16", "pairwise", 1e-6, None, None, scale=1e3)
    assert st["S"].item() == 0 and not torch.isfinite(out).all()
    out, st = native_norm(x * 1e-3, "rmsnorm", "fp16", "pairwise", 1e-6, None, None, scale=1.0)
    assert st["var"].item() == 0 and st["S"].item() > 0 and torch.isfinite(out).all()
