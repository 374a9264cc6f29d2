"""Tests of the low-precision emulation (lpbench.lowprec) against independent references:
numpy float16 (direct float64 → float16 conversion and float16 arithmetic), numpy float32, a bit-level
bf16 round-to-nearest-even written here on float32 bits, and torch's float64 norms."""
import numpy as np
import pytest
import torch

from lpbench.lowprec import FORMATS, Arith, _round_generic, accumulate_sum, emulated_norm, round_to

F64 = torch.float64


def _values(n, lo_exp, hi_exp, seed):
    """Log-uniform magnitudes 2^lo … 2^hi with random signs, float64."""
    rng = np.random.default_rng(seed)
    mag = 2.0 ** rng.uniform(lo_exp, hi_exp, n)
    return mag * rng.choice([-1.0, 1.0], n)


def _fp16_ties():
    """Exact midpoints between consecutive fp16 values (normal and subnormal) and the overflow edge."""
    h = np.arange(1, 0x7BFF, 97, dtype=np.uint16).view(np.float16).astype(np.float64)
    nxt = (np.arange(1, 0x7BFF, 97, dtype=np.uint16) + 1).view(np.float16).astype(np.float64)
    return np.concatenate([(h + nxt) / 2, [65504.0, 65519.99, 65520.0, 70000.0, 2.0 ** -25,
                                           3 * 2.0 ** -25, 2.0 ** -25 + 2.0 ** -60]])


def _bf16_rne_from_f32_bits(x32: np.ndarray) -> np.ndarray:
    """Reference bf16 RNE: add 0x7FFF + lsb to the float32 bits, clear the low 16 bits."""
    b = x32.astype(np.float32).view(np.uint32).astype(np.uint64)
    lsb = (b >> 16) & 1
    r = ((b + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    return r.view(np.float32).astype(np.float64)


# ---- round_to -----------------------------------------------------------------------------------------
def test_round_fp16_matches_numpy_including_subnormals_overflow_ties():
    x = np.concatenate([_values(20000, -30, 17, 0), _fp16_ties(), -_fp16_ties(),
                        [0.0, -0.0, np.inf, -np.inf, 1 + 2.0 ** -11 + 2.0 ** -40]])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16).astype(np.float64)
    got = round_to(torch.from_numpy(x), "fp16").numpy()
    np.testing.assert_array_equal(got, ref)
    assert np.signbit(got[np.isin(x, [-0.0]) & np.signbit(x)]).all()
    # the case torch's float64 -> float16 cast gets wrong (it rounds through float32): we do not
    assert round_to(torch.tensor([1 + 2.0 ** -11 + 2.0 ** -40], dtype=F64), "fp16").item() == 1 + 2.0 ** -10


def test_round_fp16_matches_torch_cast_from_float32():
    x32 = torch.from_numpy(_values(20000, -30, 17, 1)).float()
    np.testing.assert_array_equal(round_to(x32.double(), "fp16").numpy(),
                                  x32.to(torch.float16).double().numpy())


def test_round_bf16_matches_bit_level_rne_and_torch():
    fin = np.finfo(np.float32)
    ties = (np.arange(0x00010000, 0x7F7F0000, 0x00350000, dtype=np.uint32) | 0x8000).view(np.float32)
    x32 = np.concatenate([_values(20000, -140, 127.9, 2).astype(np.float32), ties, -ties,
                          np.array([fin.max, -fin.max, 3.3e38, fin.tiny, fin.tiny / 3, 1e-45, 0.0],
                                   dtype=np.float32)])
    ref = _bf16_rne_from_f32_bits(x32)
    got = round_to(torch.from_numpy(x32.astype(np.float64)), "bf16").numpy()
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, torch.from_numpy(x32).to(torch.bfloat16).double().numpy())
    # a float64 input just above a bf16 tie must round up (single rounding)
    assert round_to(torch.tensor([1 + 2.0 ** -8 + 2.0 ** -40], dtype=F64), "bf16").item() == 1 + 2.0 ** -7


def test_round_fp32_matches_numpy_and_generic_path():
    x = np.concatenate([_values(20000, -155, 128.5, 3), [3.5e38, -3.5e38, 1e-46, 2.0 ** -150]])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float32).astype(np.float64)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(round_to(t, "fp32").numpy(), ref)
    np.testing.assert_array_equal(_round_generic(t, FORMATS["fp32"]).numpy(), ref)


def test_arith_single_ops_match_numpy_fp16_and_torch_bf16():
    rng = np.random.default_rng(4)
    a = round_to(torch.from_numpy(_values(5000, -20, 14, 5)), "fp16")
    b = round_to(torch.from_numpy(_values(5000, -20, 14, 6)), "fp16")
    a16, b16 = a.numpy().astype(np.float16), b.numpy().astype(np.float16)
    A = Arith("fp16")
    with np.errstate(over="ignore", under="ignore"):
        for op, ref in ((A.add, a16 + b16), (A.sub, a16 - b16), (A.mul, a16 * b16), (A.div, a16 / b16)):
            np.testing.assert_array_equal(op(a, b).numpy(), ref.astype(np.float64))
    B = Arith("bf16")
    ab, bb = round_to(a * rng.uniform(1, 1e5), "bf16"), round_to(b, "bf16")
    for op, ref in ((B.add, torch.add), (B.mul, torch.mul), (B.div, torch.div)):
        np.testing.assert_array_equal(op(ab, bb).numpy(),
                                      ref(ab.to(torch.bfloat16), bb.to(torch.bfloat16)).double().numpy())


# ---- accumulate_sum -----------------------------------------------------------------------------------
def _np_tree(v):
    """Recursive fp16 adder tree, split at the largest power of two below the length."""
    if len(v) == 1:
        return v[0]
    m = 1 << (len(v) - 1).bit_length() - 1
    return np.float16(_np_tree(v[:m]) + _np_tree(v[m:]))


def _rows(seed):
    rng = np.random.default_rng(seed)
    rows = [rng.standard_normal(d) * s for d, s in ((100, 1), (257, 30), (300, 0.01), (513, 15), (64, 4))]
    return [r.astype(np.float16) for r in rows]


def test_sequential_sum_fp16_bit_identical_to_numpy_loop():
    for row in _rows(7):
        acc = row[0]
        with np.errstate(over="ignore"):
            for v in row[1:]:
                acc = np.float16(acc + v)
        got = accumulate_sum(torch.from_numpy(row.astype(np.float64)), "fp16", "sequential")
        assert got.item() == float(acc) or (np.isnan(acc) and got.isnan())
    # vectorized over leading dims: a batch gives the same as row by row
    batch = np.stack([r[:64] for r in _rows(8)]).astype(np.float64)
    t = torch.from_numpy(batch).reshape(5, 1, 64)
    per_row = torch.stack([accumulate_sum(torch.from_numpy(r), "fp16") for r in batch])
    assert torch.equal(accumulate_sum(t, "fp16").reshape(-1), per_row)


def test_pairwise_and_blocked_sum_fp16_bit_identical_to_numpy_trees():
    for row in _rows(9):
        t = torch.from_numpy(row.astype(np.float64))
        with np.errstate(over="ignore"):
            assert accumulate_sum(t, "fp16", "pairwise").item() == float(_np_tree(row))
            block = 16
            partial = []
            for s in range(0, len(row), block):
                acc = row[s]
                for v in row[s + 1:s + block]:
                    acc = np.float16(acc + v)
                partial.append(acc)
            assert accumulate_sum(t, "fp16", "blocked", block=block).item() == float(_np_tree(partial))


def test_orders_differ_in_fp16_but_agree_in_fp64():
    x = torch.from_numpy(np.random.default_rng(10).standard_normal((4, 1000)) * 3)
    s = {o: accumulate_sum(x, "fp16", o) for o in ("sequential", "pairwise", "blocked")}
    assert not torch.equal(s["sequential"], s["pairwise"])
    exact = {o: accumulate_sum(x, "fp64", o) for o in s}
    torch.testing.assert_close(exact["sequential"], exact["pairwise"], rtol=1e-13, atol=1e-12)


# ---- emulated_norm ------------------------------------------------------------------------------------
def test_fp16_sumsq_overflow_detected_and_removed_by_scale():
    x = torch.randn(6, 768, dtype=F64, generator=torch.Generator().manual_seed(0)) * 10   # Σx² ≈ 76800
    assert (x.pow(2).sum(-1) > 65504).all()
    for kind in ("rmsnorm", "layernorm"):
        _, st = emulated_norm(x, kind, "fp16", "sequential", eps=1e-5)
        assert st["overflow"].all() and torch.isinf(st["sumsq"]).all()
        out, st = emulated_norm(x, kind, "fp16", "sequential", eps=1e-5, scale=4.0)
        assert not st["overflow"].any()
        ref = torch.nn.functional.layer_norm(x, (768,), eps=1e-5) if kind == "layernorm" else \
            torch.nn.functional.rms_norm(x, (768,), eps=1e-5)
        assert ((out - ref).norm(dim=-1) / ref.norm(dim=-1)).max() < 30 * FORMATS["fp16"].u


def test_fp16_underflow_counted():
    x = torch.randn(3, 256, dtype=F64, generator=torch.Generator().manual_seed(1)) * 1e-3   # x² ≈ 1e-6
    _, st = emulated_norm(x, "rmsnorm", "fp16", eps=1e-5)
    sq = round_to(round_to(x, "fp16") ** 2, "fp16")
    expected = ((round_to(x, "fp16") != 0) & (sq.abs() < 2.0 ** -14)).sum(-1)
    assert torch.equal(st["underflow"], expected) and (expected > 200).all()
    _, st = emulated_norm(x, "rmsnorm", "fp16", eps=1e-5, scale=2.0 ** -8)
    assert (st["underflow"] < 0.05 * 256).all()     # only the Gaussian's few near-zero entries remain


@pytest.mark.parametrize("order", ["sequential", "pairwise", "blocked"])
def test_emulated_norm_fp64_equals_torch(order):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 7, 96, dtype=F64, generator=g) * 4 + 1
    w, b = torch.randn(96, dtype=F64, generator=g), torch.randn(96, dtype=F64, generator=g)
    out, _ = emulated_norm(x, "layernorm", "fp64", order, eps=1e-5, weight=w, bias=b)
    torch.testing.assert_close(out, torch.nn.functional.layer_norm(x, (96,), w, b, 1e-5), rtol=0, atol=1e-12)
    out, _ = emulated_norm(x, "rmsnorm", "fp64", order, eps=1e-6, weight=w)
    torch.testing.assert_close(out, torch.nn.functional.rms_norm(x, (96,), w, 1e-6), rtol=0, atol=1e-12)


def test_scale_invariance_with_eps_handled():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 128, dtype=F64, generator=g) * 0.01      # small: eps matters
    for kind in ("layernorm", "rmsnorm"):
        ref, _ = emulated_norm(x, kind, "fp64", eps=1e-3)
        for s in (37.5, 2.0 ** 10, 1e-3):
            out, _ = emulated_norm(x, kind, "fp64", eps=1e-3, scale=s)
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
        # a power-of-two scale is exact in fp16 (no under/overflow here): bit-identical output
        x16 = round_to(x * 100, "fp16")
        a, _ = emulated_norm(x16, kind, "fp16", "pairwise", eps=2.0 ** -6)
        b, _ = emulated_norm(x16, kind, "fp16", "pairwise", eps=2.0 ** -6, scale=4.0)
        assert torch.equal(a, b)
