"""Granularity baselines of the Tender paper's Table 1 as `rtn` entries (a_granularity / w_granularity)."""
import pytest
import torch

from lpbench.archs import get_arch
from lpbench.methods import build_method
from lpbench.quant import QuantLinear

from helpers import tiny_model


def _scales_seen(model, arch, entry, x):
    """Apply the rtn entry and return the activation quantizer's output for input x."""
    m = build_method("b", entry)
    m.apply(model, arch, {})
    name = arch.linear_names(model)[0]
    lin = model.get_submodule(name)
    assert isinstance(lin, QuantLinear)
    return lin.act_quant(x), lin


@pytest.mark.parametrize("gran", ["per_tensor", "per_row", "per_column"])
def test_activation_granularity_hand_checked(gran):
    model = tiny_model("llama")
    arch = get_arch(model)
    x = torch.tensor([[[1.0, -2.0, 0.0, 4.0], [0.5, 0.0, 8.0, 1.0]]])            # (1, T=2, C=4)
    x = torch.nn.functional.pad(x, (0, 60))                                     # hidden 64
    y, _ = _scales_seen(model, arch, {"method": "rtn", "w_bits": 8, "a_bits": 4, "a_granularity": gran}, x)
    # INT4 symmetric: qmax 7
    if gran == "per_tensor":          # one scale 8/7 for everything
        s = torch.full_like(x, 8 / 7)
    elif gran == "per_row":           # per token: 4/7 and 8/7
        s = torch.tensor([4 / 7, 8 / 7]).view(1, 2, 1).expand_as(x)
    else:                             # per channel over tokens: max(|1|,|.5|)=1, 2, 8, 4; zero channels scale 1
        cm = x.abs().amax(1, keepdim=True)
        s = torch.where(cm > 0, cm / 7, torch.ones_like(cm)).expand_as(x)
    ref = torch.round(x / s).clamp(-8, 7) * s
    assert torch.allclose(y, ref)


def test_weight_granularity_and_errors():
    model = tiny_model("llama")
    arch = get_arch(model)
    w0 = model.get_submodule(arch.linear_names(model)[0]).weight.detach().clone()
    _, lin = _scales_seen(model, arch, {"method": "rtn", "w_bits": 4, "a_bits": 4, "w_granularity": "per_tensor"},
                          torch.zeros(1, 2, 64))
    s = w0.abs().max() / 7
    assert torch.allclose(lin.weight, torch.round(w0 / s).clamp(-8, 7) * s)
    with pytest.raises(ValueError, match="a_granularity"):
        build_method("b", {"method": "rtn", "a_granularity": "per_group"})
    with pytest.raises(ValueError, match="w_granularity"):
        build_method("b", {"method": "rtn", "w_granularity": "per_column"})
    # the default stays the per-token / per-output-channel RTN
    assert build_method("b", {"method": "rtn"}).act_spec().granularity == "per_row"


def test_granularity_order_on_outlier_channels():
    """With one outlier channel, per-column error < per-row error < per-tensor error (the premise of the
    Table 1 study)."""
    model = tiny_model("llama")
    arch = get_arch(model)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 64, generator=g)
    x[..., 3] *= 50
    x[:, 10] *= 4                                                           # a loud token
    errs = {}
    for gran in ("per_tensor", "per_row", "per_column"):
        y, _ = _scales_seen(tiny_model("llama"), arch, {"method": "rtn", "w_bits": 8, "a_bits": 4,
                                                        "a_granularity": gran}, x)
        errs[gran] = ((y - x).norm() / x.norm()).item()
    assert errs["per_column"] < errs["per_row"] < errs["per_tensor"]
