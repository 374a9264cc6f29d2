import pytest
import torch

from lpbench.archs import get_arch, get_submodule
from lpbench.methods import METHOD_KINDS, ModelDims, build_method, known_kinds
from lpbench.quant import QuantLinear, QuantSpec, fake_quant
from helpers import tiny_model


def test_baseline_kinds_are_registered():
    assert {"fp32", "fp16", "bf16", "rtn"} <= set(known_kinds())


def test_unknown_kind_and_parameter_are_clear_errors():
    with pytest.raises(ValueError, match="unknown kind 'nope'.*known kinds"):
        build_method("x", {"method": "nope"})
    with pytest.raises(ValueError, match="unknown parameter.*wbits.*accepted"):
        build_method("x", {"method": "rtn", "wbits": 4})


@pytest.mark.parametrize("family", ["llama", "opt"])
def test_rtn_replaces_every_block_linear_and_quantizes_as_specified(family):
    model = tiny_model(family)
    arch = get_arch(model)
    originals = {n: get_submodule(model, n).weight.detach().clone() for n in arch.linear_names(model)}
    method = build_method("w4a4", {"method": "rtn", "w_bits": 4, "a_bits": 4})
    method.apply(model, arch, {})
    for name, w in originals.items():
        q = get_submodule(model, name)
        assert isinstance(q, QuantLinear)
        # per output channel: at most 16 distinct levels per row, max |w| preserved
        assert max(len(torch.unique(row)) for row in q.weight) <= 16
        assert torch.allclose(q.weight.abs().amax(1), w.abs().amax(1))
    x = torch.randn(2, 5, q.in_features)
    expected = torch.nn.functional.linear(fake_quant(x, QuantSpec(4, "per_row")), q.weight, q.bias)
    assert torch.equal(q(x), expected)


def test_rtn_w8a8_stays_close_to_fp32():
    model = tiny_model("llama")
    ids = torch.randint(0, 101, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(ids).logits
        build_method("w8a8", {"method": "rtn"}).apply(model, get_arch(model), {})
        out = model(ids).logits
    assert (out - ref).abs().max() < 0.02 * ref.abs().max()


def test_half_precision_methods_cast_the_model():
    model = tiny_model("llama")
    m = build_method("bf16", {"method": "bf16"})
    m.apply(model, get_arch(model), {})
    assert next(model.parameters()).dtype == torch.bfloat16 and m.eval_dtype == torch.bfloat16


def test_gemm_macs_by_hand():
    d = ModelDims(hidden=8, intermediate=16, layers=2, heads=2, kv_heads=1, head_dim=4, vocab=10)
    # q: 8x8, k: 8x4, v: 8x4, o: 8x8, gate/up/down: 3 x 8x16  -> per layer 64+32+32+64+384 = 576
    assert d.gemm_macs == 2 * 576
    assert ModelDims(**{**d.__dict__, "mlp_matrices": 2}).gemm_macs == 2 * (192 + 256)


def test_every_registered_kind_reports_known_ops():
    from pathlib import Path

    from lpbench.hwcost import energy_pj, load_costs

    costs = load_costs(Path(__file__).parents[1] / "config" / "hw_costs.yaml")
    d = ModelDims(hidden=8, intermediate=16, layers=2, heads=2, kv_heads=1, head_dim=4, vocab=10)
    stack_of = [{"name": "a", "method": "rtn"}, {"name": "b", "method": "slanc"}]   # a stack needs methods
    for kind, cls in METHOD_KINDS.items():
        method = cls(name=kind, of=stack_of) if kind == "stack" else cls(name=kind)
        energy_pj(method.ops_per_token(d), costs)  # raises on an unknown op name
