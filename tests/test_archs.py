import pytest
import torch.nn as nn

from lpbench.archs import FAMILIES, get_arch, get_submodule, spec_for_model_type
from helpers import TINY, tiny_model


@pytest.mark.parametrize("family", sorted(TINY))
def test_registry_finds_every_module(family):
    model = tiny_model(family)
    spec = get_arch(model)
    assert spec.family == family
    names = spec.linear_names(model)
    assert len(names) == 2 * (4 + len(spec.mlp))
    assert all(isinstance(get_submodule(model, n), nn.Linear) for n in names)
    # every linear of the blocks is listed, nothing else
    block_linears = {n for n, m in model.named_modules() if isinstance(m, nn.Linear) and spec.layers in n}
    assert block_linears == set(names)
    norms = spec.norm_names(model)
    assert len(set(norms)) == len(norms)
    for n in norms:
        assert "norm" in type(get_submodule(model, n)).__name__.lower()


def test_unknown_family_names_the_known_ones():
    with pytest.raises(ValueError) as e:
        spec_for_model_type("mamba")
    msg = str(e.value)
    assert "mamba" in msg and all(f in msg for f in FAMILIES)


def test_missing_module_is_named():
    model = tiny_model("llama")
    del model.model.layers[0].mlp.gate_proj
    with pytest.raises(ValueError, match="gate_proj"):
        get_arch(model)
