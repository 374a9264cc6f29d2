"""GPTQ (lpbench.gptq): vs a float64 OBQ reference, a hand-solvable optimum, RTN on a real layer; clip search
vs brute force; sequential GPTQ on a tiny model; Gemma-3 rotation invariance on the real model."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from helpers import tiny_model
from lpbench.archs import get_arch, get_submodule
from lpbench.gptq import Hessian, gptq_quantize, layer_error, weight_scale
from lpbench.methods import build_method
from lpbench.methods.gptq import compute_gptq, gptq_key
from lpbench.quant import _mse_clip_scale_literal, mse_clip_scale

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]


def _obq_reference(w, H, s, qmax, percdamp=0.01):
    """Optimal Brain Quantization in fixed column order, float64, no blocking, no Cholesky: after
    quantizing column j, every later column moves by -(w_j - q_j)/[H_F^-1]_jj · [H_F^-1]_{j,:} and j is
    eliminated from the inverse Hessian of the remaining columns (Frantar & Alistarh 2022, eq. 2-3)."""
    W, H = w.to(F64).clone(), H.to(F64).clone()
    n = H.shape[0]
    H += percdamp * torch.diag(H).mean() * torch.eye(n, dtype=F64)
    Hinv = torch.linalg.inv(H)
    Q = torch.zeros_like(W)
    for j in range(n):
        Q[:, j] = torch.clamp(torch.round(W[:, j:j + 1] / s), -qmax - 1, qmax).squeeze(1) * s.squeeze(1)
        err = (W[:, j] - Q[:, j]) / Hinv[j, j]
        W[:, j:] -= err[:, None] * Hinv[j, j:][None, :]
        Hinv = Hinv - Hinv[:, j:j + 1] @ Hinv[j:j + 1, :] / Hinv[j, j]
    return Q


def _layer(rows=24, cols=40, tokens=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(tokens, cols, generator=g, dtype=F64) @ torch.randn(cols, cols, generator=g, dtype=F64)
    X[:, 3] = 0                                                          # a dead input
    w = torch.randn(rows, cols, generator=g, dtype=F64)
    h = Hessian(cols, dtype=F64)
    h.add(X[:100])
    h.add(X[100:])
    return w, h.H, X


def test_hessian_is_two_over_n_xtx():
    _, H, X = _layer()
    assert torch.allclose(H, 2 * X.T @ X / X.shape[0])


@pytest.mark.parametrize("blocksize", [128, 16, 7])
def test_gptq_equals_float64_obq_reference(blocksize):
    w, H, _ = _layer()
    s = weight_scale(w, 4, "none")
    w_live = w.clone()
    w_live[:, 3] = 0                                                     # GPTQ zeroes dead columns
    ref = _obq_reference(w_live, torch.where(torch.eye(40, dtype=torch.bool) & (H == 0), 1.0, H), s, 7)
    q64 = gptq_quantize(w, H, 4, "none", blocksize=blocksize)
    assert torch.allclose(q64, ref, atol=1e-9)
    q32 = gptq_quantize(w.float(), H.float(), 4, "none", blocksize=blocksize)
    assert (q32.double() - ref).abs().gt(1e-4).float().mean() < 0.01    # float32: rare rounding ties only


def test_gptq_hand_solvable_optimum():
    """Two identical inputs (x2 = x1): only w1 + w2 matters. w = (0.3, 0.3)·s: RTN gives 0 (error 0.6 s), the
    optimum is any pair of codes summing to 1 (error 0.4 s); GPTQ quantizes w1 to 0 and moves its error onto
    w2 (0.3 + 0.3/(1+λ) ≈ 0.597 → 1): codes (0, 1), the optimum."""
    x = torch.randn(1000, 1, dtype=F64)
    H = 2 * torch.cat([x, x], 1).T @ torch.cat([x, x], 1) / 1000
    s = torch.tensor([[0.1]], dtype=F64)
    w = torch.tensor([[0.03, 0.03]], dtype=F64)
    q = gptq_quantize(w, H, 4, scale=s)
    assert torch.allclose(q / s, torch.tensor([[0.0, 1.0]], dtype=F64))
    # brute force over all code pairs: (0, 1) reaches the minimum of the layer error
    best = min(layer_error(w, torch.tensor([[a, b]], dtype=F64) * 0.1, H) for a in range(-8, 8) for b in range(-8, 8))
    assert layer_error(w, q, H) == pytest.approx(best, rel=1e-9)
    assert layer_error(w, torch.zeros_like(w), H) > 2 * best


def test_gptq_act_order_is_a_permutation_of_the_same_algorithm():
    w, H, _ = _layer(seed=3)
    q = gptq_quantize(w, H, 4, "none", act_order=True)
    perm = torch.argsort(torch.diag(H), descending=True)
    qp = gptq_quantize(w[:, perm], H[perm][:, perm], 4, "none", scale=weight_scale(w, 4, "none"))
    assert torch.allclose(q[:, perm], qp)


def test_clip_search_equals_brute_force():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 96, generator=g) * torch.rand(64, 1, generator=g)
    fast = mse_clip_scale(w, 4)
    lit = _mse_clip_scale_literal(w, 4)
    assert torch.allclose(fast.double(), lit, rtol=1e-6)
    # brute force: each row's error at every grid ratio, the argmin is the chosen ratio
    absmax = w.double().abs().amax(1, keepdim=True)
    errs = torch.stack([((torch.clamp(torch.round(w.double() / ((1 - i / 100) * absmax / 7)), -8, 7)
                          * (1 - i / 100) * absmax / 7 - w.double()).abs() ** 2.4).sum(1) for i in range(80)], 1)
    ratio = (fast.double().squeeze(1) * 7 / absmax.squeeze(1))
    assert torch.allclose(ratio, 1 - errs.argmin(1).double() / 100, atol=1e-6)
    assert (ratio < 0.99).float().mean() > 0.5                          # Gaussian rows: clipping pays


def test_clip_search_on_grid_weights_equals_brute_force():
    """Weights already on a 4-bit grid (as the suite's GGUF models: block scales × integer codes), where
    many |Q(w) - w| are exact zeros at some candidates, and more rows than one search block holds."""
    g = torch.Generator().manual_seed(1)
    rows, cols, block = 300, 512, 32
    codes = torch.randint(-8, 8, (rows, cols), generator=g).double()
    scales = torch.rand(rows, cols // block, generator=g).double().repeat_interleave(block, 1) + 0.1
    w = (codes * scales).float()
    w[0] = torch.arange(cols).remainder(15).float() - 7            # one row exactly on the INT4 grid
    fast = mse_clip_scale(w, 4)
    absmax = w.double().abs().amax(1, keepdim=True)
    errs = torch.stack([((torch.clamp(torch.round(w.double() / ((1 - i / 100) * absmax / 7)), -8, 7)
                          * (1 - i / 100) * absmax / 7 - w.double()).abs() ** 2.4).sum(1) for i in range(80)], 1)
    ratio = (fast.double().squeeze(1) * 7 / absmax.squeeze(1))
    assert torch.allclose(ratio, 1 - errs.argmin(1).double() / 100, atol=1e-6)
    assert ratio[0] == 1.0                                          # zero error unclipped: no shrink


def test_sequential_gptq_on_tiny_model_beats_rtn_in_output():
    model = tiny_model("llama")
    arch = get_arch(model)
    ids = torch.randint(0, 101, (4, 32), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(ids).logits
    meth = build_method("g", {"method": "w4a4", "weights": "gptq", "w_clip": "mse", "a_bits": 16})
    out = compute_gptq(meth, copy.deepcopy(model), arch, {}, ids)
    assert len(out["gptq"]) == len(arch.linear_names(model))
    from lpbench.gptq import dequantize
    g = meth.apply(copy.deepcopy(model), arch, {"gptq_weights": dequantize(out["gptq"])})
    r = build_method("r", {"method": "w4a4", "w_clip": "mse", "a_bits": 16}).apply(copy.deepcopy(model), arch, {})
    with torch.no_grad():
        eg, er = (g(ids).logits - ref).norm(), (r(ids).logits - ref).norm()
    assert eg < er


def test_gptq_keys_share_weights_by_transform():
    k = lambda e: gptq_key(build_method("x", e))  # noqa: E731
    assert k({"method": "rs", "weights": "gptq", "group_size": 1}) == k({"method": "rs", "weights": "gptq"}) \
        == k({"method": "w4a4", "weights": "gptq"})
    assert k({"method": "quarot", "weights": "gptq"}) == k({"method": "rrs", "weights": "gptq", "kv_bits": 4})
    assert k({"method": "quarot", "weights": "gptq"}) != k({"method": "rs", "weights": "gptq"})
    assert k({"method": "quarot"}) is None


# ---- real models (skipped until the pipeline has converted them) --------------------------------------------
def _real(name):
    d = ROOT / "resources" / "models" / name
    if not (d / "lpbench_model.json").exists():
        pytest.skip(f"{name} not converted (run the pipeline once)")
    from lpbench.sources import load_model
    model, _, _ = load_model(d)
    return model


def _real_tokens(name, n=256):
    p = ROOT / "resources" / "tokens" / name / "austen" / "calibration.pt"
    if not p.exists():
        pytest.skip("calibration tokens missing")
    t = torch.load(p)
    t = t["ids"] if isinstance(t, dict) else t
    return t.reshape(-1)[: 2 * n].reshape(2, n)


def test_gptq_below_rtn_on_a_real_layer():
    """SmolLM2 layer 1 down_proj on real calibration text: GPTQ's layer error is below RTN+clip's."""
    model = _real("smollm2-135m")
    ids = _real_tokens("smollm2-135m")
    lin = get_submodule(model, "model.layers.1.mlp.down_proj")
    h = Hessian(lin.in_features)
    handle = lin.register_forward_pre_hook(lambda m, a: h.add(a[0]))
    with torch.inference_mode():
        model.model.layers = model.model.layers[:2]                     # only the first two blocks run
        model.model(ids)
    handle.remove()
    w = lin.weight.data
    s = weight_scale(w, 4, "mse")
    rtn = torch.clamp(torch.round(w / s), -8, 7) * s
    e_rtn, e_gptq = layer_error(w, rtn, h.H), layer_error(w, gptq_quantize(w, h.H, 4, "mse"), h.H)
    assert e_gptq < 0.8 * e_rtn, (e_gptq, e_rtn)


def test_gemma3_rotation_is_exact_on_the_real_model():
    """Gemma-3-270M, every layer: QuaRot's sandwich rotation (online after the pre-norm gains) leaves the FP32
    logits unchanged to FP32 tolerance."""
    model = _real("gemma3-270m")
    ids = torch.cat([torch.tensor([[2]]), torch.randint(1000, 30000, (1, 63), generator=torch.Generator().manual_seed(0))], 1)
    with torch.inference_mode():
        ref = model(ids).logits
        rot = build_method("q", {"method": "quarot", "w_bits": 16, "a_bits": 16, "seed": 0})
        m = rot.apply(model, get_arch(model), {})
        out = m(ids).logits
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4
