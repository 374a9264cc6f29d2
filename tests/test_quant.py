"""Check lpbench.quant against an independent brute-force reference.

The reference below walks every element in pure Python floats: it groups elements into the slices that
share a scale (by their index tuple), takes min/max with Python's ``max``/``min``, rounds with Python's
``round`` (round-half-to-even on floats) and clamps explicitly. It shares no code with ``quant.py``.
Inputs are float64 so that the reference and torch perform the same IEEE operations in the same order;
the comparison is therefore exact.
"""
from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
import torch

from lpbench.quant import QuantLinear, QuantSpec, fake_quant, quantize_codes

# (symmetric, signed, input kind) -> "unsigned" inputs are made non-negative
MODES = {
    "sym_signed": dict(symmetric=True, signed=True),
    "sym_unsigned": dict(symmetric=True, signed=False),
    "asym": dict(symmetric=False, signed=True),
}
GRANULARITIES = [("per_tensor", None), ("per_row", None), ("per_column", None),
                 ("per_group", 4), ("per_group", 8)]
SHAPES = [(5, 16), (2, 3, 16)]


# ---- the reference ----------------------------------------------------------------------------------
def _slice_key(idx: tuple[int, ...], granularity: str, group_size: int | None):
    """Which scale an element at index ``idx`` uses."""
    if granularity == "per_tensor":
        return ()
    if granularity == "per_row":
        return idx[:-1]
    if granularity == "per_column":
        return idx[-1]
    return idx[:-1] + (idx[-1] // group_size,)


def reference_quant(x: torch.Tensor, bits: int, granularity: str, symmetric: bool, signed: bool,
                    group_size: int | None, clip: float):
    """(dequantized values, integer codes), both shaped like ``x``, computed element by element."""
    shape = tuple(x.shape)
    values = x.flatten().tolist()
    if symmetric and signed:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        qmin, qmax = 0, 2 ** bits - 1

    members = defaultdict(list)                       # slice key -> flat positions
    for pos, idx in enumerate(itertools.product(*(range(s) for s in shape))):
        members[_slice_key(idx, granularity, group_size)].append(pos)

    codes = [0] * len(values)
    deq = [0.0] * len(values)
    for positions in members.values():
        vals = [values[p] for p in positions]
        zero = 0
        if symmetric:
            ref = max(abs(v) for v in vals) if signed else max(max(vals), 0.0)
            scale = ref * clip / qmax
        else:
            hi = max(max(vals), 0.0) * clip
            lo = min(min(vals), 0.0) * clip
            scale = (hi - lo) / qmax
        if not scale > 0:
            scale = 1.0
        if not symmetric:
            zero = round(-lo / scale)
        for p in positions:
            q = round(values[p] / scale) + zero
            q = min(max(q, qmin), qmax)
            codes[p] = q
            deq[p] = (q - zero) * scale
    return (torch.tensor(deq, dtype=torch.float64).reshape(shape),
            torch.tensor(codes, dtype=torch.float64).reshape(shape))


def codes_like_input(q: torch.Tensor, x: torch.Tensor, granularity: str) -> torch.Tensor:
    """Map the grouped-view codes of :func:`quantize_codes` back to ``x``'s layout."""
    if granularity == "per_column":
        return q.transpose(0, 1).reshape(x.shape)
    return q.reshape(x.shape)


def make_input(shape, mode: str, seed: int = 0) -> torch.Tensor:
    """Random float64 input with varied row magnitudes, an all-zero row, a zero column, and (for the
    asymmetric mode) an all-positive and an all-negative row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64)
    x = x * torch.logspace(-1, 1, shape[-2], dtype=torch.float64).unsqueeze(-1)   # rows of different size
    x[..., 0, 5] = 40.0                                                           # an outlier
    rows = x.view(-1, shape[-1])
    rows[1] = 0.0
    rows[2] = rows[2].abs() + 0.1
    rows[3] = -rows[3].abs() - 0.1
    x[..., 3] = 0.0
    if mode == "sym_unsigned":
        x = x.abs()
    return x


# ---- comparison with the reference -------------------------------------------------------------------
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("clip", [1.0, 0.9])
@pytest.mark.parametrize("granularity,group_size", GRANULARITIES,
                         ids=[g if s is None else f"{g}{s}" for g, s in GRANULARITIES])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_matches_reference(bits, mode, granularity, group_size, clip, shape):
    spec = QuantSpec(bits=bits, granularity=granularity, group_size=group_size, clip_ratio=clip,
                     **MODES[mode])
    x = make_input(shape, mode, seed=bits)
    want, want_codes = reference_quant(x, bits, granularity, group_size=group_size, clip=clip,
                                       **MODES[mode])

    got = fake_quant(x, spec)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got, want, rtol=0, atol=0)

    q, scale, zero = quantize_codes(x, spec)
    assert torch.equal(q, q.round()), "codes must be integral"
    assert q.min() >= spec.qmin and q.max() <= spec.qmax
    assert (scale > 0).all() and torch.isfinite(scale).all()
    assert (zero is None) == spec.symmetric
    torch.testing.assert_close(codes_like_input(q, x, granularity), want_codes, rtol=0, atol=0)


@pytest.mark.parametrize("granularity,group_size", GRANULARITIES)
@pytest.mark.parametrize("mode", list(MODES))
def test_all_zero_slices_give_zeros(mode, granularity, group_size):
    x = make_input((4, 16), mode)
    x[1] = 0.0
    spec = QuantSpec(bits=4, granularity=granularity, group_size=group_size, **MODES[mode])
    out = fake_quant(x, spec)
    assert not torch.isnan(out).any()
    assert (out[1] == 0).all()
    assert (fake_quant(torch.zeros(3, 8, dtype=torch.float64), spec) == 0).all()


# ---- round-half-to-even on exact ties (expected values written out by hand) ------------------------
@pytest.mark.parametrize("unit", [1.0, 0.25, 8.0])          # powers of two keep the ties exact
def test_ties_symmetric_signed(unit):
    # 4 bits: qmax = 7, max|x| = 7·unit -> scale = unit, so x/scale is exactly k + 0.5
    x = torch.tensor([7.0, 0.5, 1.5, 2.5, 3.5, 6.5, -0.5, -1.5, -2.5, -3.5], dtype=torch.float64) * unit
    codes = torch.tensor([7, 0, 2, 2, 4, 6, 0, -2, -2, -4], dtype=torch.float64)
    spec = QuantSpec(bits=4, granularity="per_tensor")
    q, scale, _ = quantize_codes(x, spec)
    assert scale.item() == unit
    assert torch.equal(q.reshape(-1), codes)
    assert torch.equal(fake_quant(x, spec), codes * unit)


def test_ties_symmetric_unsigned():
    # 2 bits unsigned: qmax = 3, max = 3 -> scale 1
    x = torch.tensor([[3.0, 0.5, 1.5, 2.5]], dtype=torch.float64)
    spec = QuantSpec(bits=2, granularity="per_row", signed=False)
    assert torch.equal(fake_quant(x, spec), torch.tensor([[3.0, 0.0, 2.0, 2.0]], dtype=torch.float64))


def test_ties_asymmetric_including_zero_point():
    # 3 bits: qmax = 7, range [-2.5, 4.5] -> scale 1, zero point round(2.5) = 2 (half to even)
    x = torch.tensor([[-2.5, 4.5, 0.5, 1.5, -1.5, 2.5]], dtype=torch.float64)
    spec = QuantSpec(bits=3, granularity="per_row", symmetric=False)
    q, scale, zero = quantize_codes(x, spec)
    assert scale.item() == 1.0 and zero.item() == 2.0
    # round(x) + 2 = [-2, 4, 0, 2, -2, 2] + 2
    assert torch.equal(q, torch.tensor([[0.0, 6.0, 2.0, 4.0, 0.0, 4.0]], dtype=torch.float64))
    assert torch.equal(fake_quant(x, spec), torch.tensor([[-2.0, 4.0, 0.0, 2.0, -2.0, 2.0]],
                                                         dtype=torch.float64))


def test_python_round_is_half_even():
    """The reference relies on it."""
    assert [round(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5)] == [0, 2, 2, 0, -2]


# ---- spec properties, dtypes, validation ----------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_code_ranges(bits):
    def qrange(spec):
        return spec.qmin, spec.qmax
    assert qrange(QuantSpec(bits)) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    assert qrange(QuantSpec(bits, signed=False)) == (0, 2 ** bits - 1)
    assert qrange(QuantSpec(bits, symmetric=False)) == (0, 2 ** bits - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dtype_and_shape_preserved(dtype):
    x = torch.randn(2, 3, 16, generator=torch.Generator().manual_seed(0)).to(dtype)
    for granularity, gs in GRANULARITIES:
        out = QuantSpec(4, granularity=granularity, group_size=gs)(x)
        assert out.dtype == dtype and out.shape == x.shape and torch.isfinite(out).all()
        # one scale step bounds the error of an unclipped symmetric quantizer
        step = x.abs().float().max() / 7
        assert (out.float() - x.float()).abs().max() <= step * (0.5 + 0.05)


def test_invalid_specs():
    with pytest.raises(ValueError, match="granularity"):
        QuantSpec(4, granularity="per_channel")
    with pytest.raises(ValueError, match="group_size"):
        QuantSpec(4, granularity="per_group")
    with pytest.raises(ValueError, match="clip_ratio"):
        QuantSpec(4, clip_ratio=0.0)
    with pytest.raises(ValueError, match="bits >= 2"):
        QuantSpec(1)                                  # would give NaN: qmax = 0
    with pytest.raises(ValueError, match="multiple of group_size"):
        fake_quant(torch.zeros(2, 10), QuantSpec(4, granularity="per_group", group_size=4))


def test_one_bit_unsigned_and_asymmetric_are_finite():
    x = torch.randn(4, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for spec in (QuantSpec(1, signed=False), QuantSpec(1, symmetric=False)):
        assert torch.isfinite(fake_quant(x, spec)).all()
        want, _ = reference_quant(x, 1, "per_row", spec.symmetric, spec.signed, None, 1.0)
        torch.testing.assert_close(fake_quant(x, spec), want, rtol=0, atol=0)


def test_quant_linear_applies_transform_then_quantizer():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4)
    x = torch.randn(3, 8)
    spec = QuantSpec(8, granularity="per_row")
    ql = QuantLinear(lin, lin.weight, act_quant=spec, input_transform=lambda t: 2 * t)
    want = torch.nn.functional.linear(fake_quant(2 * x, spec), lin.weight, lin.bias)
    torch.testing.assert_close(ql(x), want)
