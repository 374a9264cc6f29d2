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


@pytest.mark.parametrize("family", TINY)
def test_activations_pass_sees_the_activations_of_a_full_pass(family):
    """Every block linear's and norm's input is bit-identical to a full forward's; a causal LM's head runs on
    the last position only (its logits equal the full pass's up to the GEMM's summation order)."""
    import torch

    from lpbench.archs import activations_pass

    model = tiny_model(family).eval()
    arch = get_arch(model)
    ids = torch.randint(0, 101, (2, 12), generator=torch.Generator().manual_seed(0))

    def seen(run):
        got, hooks = {}, []
        for n in arch.linear_names(model) + arch.norm_names(model):
            hooks.append(get_submodule(model, n).register_forward_pre_hook(
                lambda _m, a, n=n: got.__setitem__(n, a[0].detach().clone())))
        with torch.no_grad():
            out = run()
        for h in hooks:
            h.remove()
        return got, out

    full, full_out = seen(lambda: model(ids, use_cache=False) if arch.causal else model(ids))
    part, part_out = seen(lambda: activations_pass(model, arch, ids))
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)
    if arch.causal:
        assert part_out.logits.shape[1] == 1 and torch.allclose(part_out.logits[:, 0], full_out.logits[:, -1],
                                                                    rtol=1e-5, atol=1e-6)
