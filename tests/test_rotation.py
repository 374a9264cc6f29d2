"""Tests for lpbench.rotation: Hadamard/orthogonal matrices, norm fusion, QuaRot rotation invariance,
online Hadamard transforms."""
from __future__ import annotations

import math

import pytest
import torch
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, OPTConfig,
                          OPTForCausalLM, Qwen2Config, Qwen2ForCausalLM)

from lpbench.archs import get_arch
from lpbench.quant import QuantLinear
from lpbench.rotation import (OnlineHadamard, _random_signs, fold_online_rotation, fuse_norms,
                              hadamard_matrix, has_hadamard, random_orthogonal, rotate_model,
                              rotation_matrix)

F64 = torch.float64
SIZES = [64, 256, 384, 576, 640, 1536, 2048, 12, 20]


def assert_orthonormal(m: torch.Tensor, tol: float = 1e-10):
    """M Mᵀ = I (for a square matrix this implies Mᵀ M = I)."""
    assert (m @ m.T - torch.eye(m.shape[0], dtype=m.dtype)).abs().max().item() <= tol


# ---- matrices -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", [None, 3])
def test_hadamard_orthonormal_with_pm_entries(n, seed):
    h = hadamard_matrix(n, seed=seed)
    assert h.dtype == F64 and h.shape == (n, n)
    assert_orthonormal(h)
    assert torch.allclose(h.abs(), torch.full_like(h, 1 / math.sqrt(n)), rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", [64, 384, 12, 32])
def test_hadamard_seeds(n):
    assert torch.equal(hadamard_matrix(n), hadamard_matrix(n))
    assert torch.equal(hadamard_matrix(n, seed=1), hadamard_matrix(n, seed=1))
    assert not torch.equal(hadamard_matrix(n, seed=1), hadamard_matrix(n, seed=2))
    assert not torch.equal(hadamard_matrix(n, seed=1), hadamard_matrix(n))
    # a seeded Hadamard is the unseeded one with random row signs (QuaRot's random Hadamard), and the
    # signs are the ones OnlineHadamard replays
    signs = _random_signs(n, 1)
    assert torch.equal(hadamard_matrix(n, seed=1), signs[:, None] * hadamard_matrix(n))


def _quarot_hadamard_rows(x: torch.Tensor, had_k: torch.Tensor | None) -> torch.Tensor:
    """QuaRot's matmul_hadU (official hadamard_utils) written out for a float64 batch of rows: butterflies
    (a + b, a - b) over halves until K rows of n/K remain, then the K×K matrix from the left, then 1/√n."""
    b, n = x.shape
    k = 1 if had_k is None else had_k.shape[0]
    cur = x.clone().reshape(b, n, 1)
    while cur.shape[1] > k:
        half = cur.shape[1] // 2
        pairs = cur.reshape(b, half, 2, cur.shape[2])
        cur = torch.stack([pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]], dim=2)
        cur = cur.reshape(b, half, -1)
    if k > 1:
        cur = had_k @ cur
    return cur.reshape(b, n) / math.sqrt(n)


# QuaRot's K for each order, by hand from its get_hadK (first of 172, 156, 148, 140, 108, 60, 52, 36, 28, 40,
# 20, 12 dividing n): SmolLM2's intermediate 1536 and hidden 576, Gemma-3's hidden 640, MiniLM's 384
QUAROT_K = {1536: 12, 576: 36, 640: 40, 384: 12, 96: 12, 12: 12, 20: 20, 64: 1, 32: 1, 2048: 1}


@pytest.mark.parametrize("n", sorted(QUAROT_K))
def test_hadamard_is_quarots_matrix(n):
    from compressed_tensors.transform.utils.hadamard import _fetch_hadamard_divisor

    k = QUAROT_K[n]
    had_k = None if k == 1 else _fetch_hadamard_divisor(k, F64)     # Sloane's K matrix, as QuaRot's get_hadK
    assert had_k is None or had_k.shape == (k, k)
    eye = torch.eye(n, dtype=F64)
    assert torch.allclose(hadamard_matrix(n), _quarot_hadamard_rows(eye, had_k), rtol=0, atol=1e-14)
    # QuaRot's random_hadamard_matrix: matmul_hadU of diag(random signs)
    signs = _random_signs(n, 5)
    assert torch.allclose(hadamard_matrix(n, seed=5), _quarot_hadamard_rows(torch.diag(signs), had_k),
                          rtol=0, atol=1e-14)
    # the online transform applies the same matrix
    assert torch.allclose(OnlineHadamard(n).matrix(), hadamard_matrix(n), rtol=0, atol=1e-13)


def test_quarots_order12_matrix_is_the_stored_one():
    """QuaRot's get_had12 starts with these rows (Sloane's had.12); compressed-tensors stores the same."""
    from compressed_tensors.transform.utils.hadamard import _fetch_hadamard_divisor

    rows = [[1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1], [1, 1, -1, 1, -1, -1, -1, 1, 1, 1, -1, 1]]
    assert _fetch_hadamard_divisor(12, F64)[:2].tolist() == rows


def test_hadamard_power_of_two_is_sylvester():
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=F64)
    syl = h2
    for _ in range(5):
        syl = torch.kron(syl, h2)
    assert torch.allclose(hadamard_matrix(64) * 8, syl, rtol=0, atol=1e-14)


def test_hadamard_dtype_and_errors():
    assert hadamard_matrix(12, dtype=torch.float32).dtype == torch.float32
    for bad in (0, 3, 6, 50, 268):
        assert not has_hadamard(bad)
        with pytest.raises(ValueError, match="Hadamard"):
            hadamard_matrix(bad)
    assert all(has_hadamard(n) for n in (1, 2, 96, 768, 11008, 14336))


@pytest.mark.parametrize("n", [1, 7, 96])
def test_random_orthogonal(n):
    q = random_orthogonal(n, seed=0)
    assert q.dtype == F64
    assert_orthonormal(q)
    assert torch.equal(q, random_orthogonal(n, seed=0))
    if n > 1:
        assert not torch.equal(q, random_orthogonal(n, seed=1))
    # the sign fix makes R's diagonal positive, i.e. Q is the canonical (Haar) QR factor
    assert (torch.diagonal(q.T @ torch.randn(n, n, generator=torch.Generator().manual_seed(0),
                                             dtype=F64)) > 0).all()


def test_rotation_matrix_kinds_and_fallback(recwarn):
    assert torch.equal(rotation_matrix(64, "hadamard", seed=5), hadamard_matrix(64, seed=5))
    assert torch.equal(rotation_matrix(64, "orthogonal", seed=5), random_orthogonal(64, 5))
    assert not has_hadamard(268)                                             # 4·67: 67 > 64 is no known K
    fallback = rotation_matrix(268, "hadamard", seed=2)
    assert_orthonormal(fallback, 1e-9)
    assert torch.equal(fallback, random_orthogonal(268, 2))
    rotation_matrix(268, "hadamard", seed=2)
    assert sum("268" in str(w.message) for w in recwarn.list) == 1          # warned once
    with pytest.raises(ValueError, match="kind"):
        rotation_matrix(64, "givens")


# ---- tiny models -------------------------------------------------------------------------------------
def _randomize_norms(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and p.ndim == 1:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))


def tiny_model(family: str, hidden: int = 96, bias: bool = False):
    torch.manual_seed(0)
    common = dict(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=128, vocab_size=100, tie_word_embeddings=True, max_position_embeddings=64)
    if family == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, attention_bias=bias, mlp_bias=bias))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    model = model.float().eval()
    _randomize_norms(model, seed=1)
    return model


def tokens(n: int = 12, vocab: int = 100):
    return torch.randint(0, vocab, (2, n), generator=torch.Generator().manual_seed(7))


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def assert_same_logits(before, after, rel=1e-4):
    assert (after - before).abs().max().item() <= rel * before.abs().max().item()


@pytest.mark.parametrize("family,hidden,bias", [("llama", 96, False), ("llama", 64, True),
                                                ("qwen2", 96, False)])
@pytest.mark.parametrize("kind", ["hadamard", "orthogonal"])
def test_fuse_and_rotate_keep_logits(family, hidden, bias, kind):
    model = tiny_model(family, hidden, bias)
    arch = get_arch(model)
    ids = tokens()
    ref = logits(model, ids)

    fuse_norms(model, arch)
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert not model.config.tie_word_embeddings
    assert all(torch.all(model.get_submodule(n).weight == 1) for n in arch.norm_names(model))
    assert_same_logits(ref, logits(model, ids))

    embed_before = model.model.embed_tokens.weight.clone()
    rotate_model(model, arch, rotation_matrix(hidden, kind, seed=3))
    assert not torch.allclose(model.model.embed_tokens.weight, embed_before)     # it did rotate
    assert model.model.embed_tokens.weight.dtype == torch.float32
    assert_same_logits(ref, logits(model, ids))


def test_rotate_requires_fused_norms():
    model = tiny_model("llama", 64)
    with pytest.raises(ValueError, match="fuse_norms"):
        rotate_model(model, get_arch(model), hadamard_matrix(64))


def test_rotate_checks_shape():
    model = tiny_model("llama", 64)
    arch = get_arch(model)
    fuse_norms(model, arch)
    with pytest.raises(ValueError, match="hidden size"):
        rotate_model(model, arch, hadamard_matrix(32))


def test_fuse_norms_rejects_gemma3_and_opt():
    gemma = Gemma3ForCausalLM(Gemma3TextConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
        intermediate_size=64, vocab_size=50))
    with pytest.raises(NotImplementedError, match="sandwich"):
        fuse_norms(gemma, get_arch(gemma))
    opt = OPTForCausalLM(OPTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, ffn_dim=64, vocab_size=50,
        max_position_embeddings=64, word_embed_proj_dim=32))
    with pytest.raises(NotImplementedError, match="LayerNorm"):
        fuse_norms(opt, get_arch(opt))


# ---- online Hadamard --------------------------------------------------------------------------------
@pytest.mark.parametrize("dim,head_dim,seed", [(128, None, None), (128, None, 4), (96, None, 0),
                                               (640, None, 1), (96, 24, None), (128, 32, 2),
                                               (64, 32, None), (32, None, 5), (1536, None, 3),
                                               (576, 64, 1)])
def test_online_hadamard_matches_dense_and_is_invariant(dim, head_dim, seed):
    rot = OnlineHadamard(dim, head_dim=head_dim, seed=seed)
    h = hadamard_matrix(head_dim or dim, seed=seed)
    want = h if head_dim is None else torch.block_diag(*[h] * (dim // head_dim))
    torch.testing.assert_close(rot.matrix(), want, rtol=0, atol=1e-12)

    torch.manual_seed(0)
    linear = torch.nn.Linear(dim, 48).double()
    x = torch.randn(2, 5, dim, dtype=F64)
    ref = linear(x)
    fold_online_rotation(linear, rot)
    pair = QuantLinear(linear, linear.weight, input_transform=rot)
    torch.testing.assert_close(pair(x), ref, rtol=0, atol=1e-12)


def test_online_hadamard_float32_and_shape_errors():
    torch.manual_seed(0)
    linear = torch.nn.Linear(384, 16)
    x = torch.randn(3, 384)
    ref = linear(x)
    rot = OnlineHadamard(384, seed=0)
    fold_online_rotation(linear, rot)
    out = QuantLinear(linear, linear.weight, input_transform=rot)(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert rot(x.to(torch.bfloat16)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="last dim"):
        rot(torch.randn(2, 100))
    with pytest.raises(ValueError, match="multiple"):
        OnlineHadamard(100, head_dim=24)


def test_hadamard_ops_count_the_k_actually_used():
    """By hand: butterflies n·log2(n/K) adds, the dense K×K part n·(K-1) adds and n·K mults, + n mults."""
    from lpbench.rotation import hadamard_ops

    assert hadamard_ops(2048) == (2048 * 11, 2048)                              # Sylvester: no K
    assert hadamard_ops(1536) == (1536 * 7 + 1536 * 11, 1536 * 12 + 1536)       # 12 · 128
    assert hadamard_ops(576) == (576 * 4 + 576 * 35, 576 * 36 + 576)            # 36 · 16
    assert hadamard_ops(268) == (268 * 2 + 268 * 66, 268 * 67 + 268)            # unknown: odd part 67


# ---- QuaRot's deterministic online o_proj transform (H_heads across heads) ----------------------------------
def _official_across_heads(x: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """QuaRot's ActQuantWrapper.online_partial_had, written out in float64: the input as (tokens, heads,
    head_dim), ``had_K @ x / √heads`` with had_K = get_hadK(heads) (Sloane's had.12 for 12 heads), or the
    Walsh-Hadamard transform across the heads (Sylvester's matrix) when heads is a power of two."""
    from compressed_tensors.transform.utils.hadamard import _fetch_hadamard_divisor

    if heads & (heads - 1) == 0:
        had = torch.ones(1, 1, dtype=F64)
        while had.shape[0] < heads:
            had = torch.kron(torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=F64), had)
    else:
        had = _fetch_hadamard_divisor(heads, F64)
    y = had @ x.reshape(-1, heads, head_dim) / math.sqrt(heads)
    return y.reshape(x.shape)


@pytest.mark.parametrize("heads,head_dim", [(12, 4), (4, 16)])
def test_online_head_hadamard_is_quarots_and_deterministic(heads, head_dim):
    n = heads * head_dim
    rot = OnlineHadamard(n, head_dim=head_dim, across_heads=True)
    eye = torch.eye(n, dtype=F64)
    m = rot.matrix()
    assert torch.allclose(m, _official_across_heads(eye, heads, head_dim), rtol=0, atol=1e-14)
    assert torch.allclose(m, torch.kron(hadamard_matrix(heads), torch.eye(head_dim, dtype=F64)), rtol=0, atol=1e-14)
    assert torch.equal(m, OnlineHadamard(n, head_dim=head_dim, across_heads=True).matrix())   # no randomness
    assert rot.signs is None
    # with the per-head H_head_dim folded into v/o offline, o_proj's input sees H_heads ⊗ H_head_dim, which is
    # QuaRot's full Hadamard of order heads·head_dim (its offline o_proj fold, matmul_hadU): 12·4 = 48 has K = 12,
    # 4·16 = 64 is Sylvester's
    per_head = OnlineHadamard(n, head_dim=head_dim).matrix()
    seen = per_head @ m
    assert torch.allclose(seen, torch.kron(hadamard_matrix(heads), hadamard_matrix(head_dim)), rtol=0, atol=1e-14)
    from compressed_tensors.transform.utils.hadamard import _fetch_hadamard_divisor

    k = {48: 12, 64: 1}[n]
    had_k = None if k == 1 else _fetch_hadamard_divisor(k, F64)
    assert torch.allclose(seen, _quarot_hadamard_rows(eye, had_k), rtol=0, atol=1e-14)


def test_order_12_by_hand():
    """Sloane's had.12 first row is (1, -1, ..., -1): across 12 heads of size 1, the first output is
    (x_0 - x_1 - ... - x_11)/√12 — read off the transform of a unit vector per head."""
    rot = OnlineHadamard(12, head_dim=1, across_heads=True)
    y = rot(torch.eye(12, dtype=F64))                                   # row i: e_i·M
    assert torch.allclose(y[:, 0] * math.sqrt(12), torch.tensor([1.0] + [-1.0] * 11, dtype=F64), atol=1e-14)
    assert_orthonormal(y)


def test_online_head_hadamard_errors():
    with pytest.raises(ValueError, match="across_heads needs head_dim"):
        OnlineHadamard(64, across_heads=True)
    with pytest.raises(ValueError, match="Hadamard"):
        OnlineHadamard(9 * 64, head_dim=64, across_heads=True)         # no Hadamard of order 9


@pytest.mark.parametrize("gain_dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_fold_gain_in_float32_is_the_float64_fold_bit_for_bit(gain_dtype):
    """A float32 weight times a narrow gain is folded in float32 (lpbench.rotation._fold_gain): the same bits
    as the float64 product rounded to float32, over a wide range of magnitudes (subnormal products too)."""
    from lpbench.rotation import _fold_gain

    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 48, generator=g) * torch.logspace(-30, 30, 48)
    gamma = (torch.randn(48, generator=g) * torch.logspace(-12, 8, 48)).to(gain_dtype)
    norm, lin = torch.nn.Module(), torch.nn.Linear(48, 64, bias=False)
    norm.weight = torch.nn.Parameter(gamma.clone())
    lin.weight.data.copy_(w)
    _fold_gain(norm, [lin])
    want = (w.double() * gamma.double()).float()
    assert torch.equal(lin.weight.data, want) and (want.abs() < torch.finfo(torch.float32).tiny).any()
    assert torch.all(norm.weight == 1)
