"""The ``stack`` method kind: list-order composition, sites, the dry-run check, shared vs recalibrated artifacts."""
import copy

import pytest
import torch
import yaml

from lpbench.archs import get_arch, get_submodule
from lpbench.config import ConfigError, check_references, expand_stacks
from lpbench.methods import ModelDims, build_method
from lpbench.methods.iterl2norm import IterNorm
from lpbench.methods.quarot import PostNormRotation
from lpbench.methods.slanc import LowPrecNorm
from lpbench.methods.stack import SlancIterNorm, unwrapped_norms
from helpers import tiny_model
from workflow_run import ROOT, smk

ENTRIES = {
    "rrs": {"method": "rrs", "group_size": 16},
    "quarot": {"method": "quarot", "seed": 3},
    "slanc": {"method": "slanc", "variant": "static", "fmt": "fp16", "apply_as": "fold"},
    "iter": {"method": "iterl2norm", "iters": 3},
    "tender": {"method": "tender", "bits": 8, "groups": 4, "chunk": 8, "calib_windows": 2},
    "rtn8": {"method": "rtn", "w_bits": 8, "a_bits": 8},
    "rtn4": {"method": "rtn", "w_bits": 4, "a_bits": 4},
    "dyn": {"method": "slanc", "variant": "dynamic", "fmt": "fp16"},
    "sq": {"method": "smoothquant", "w_bits": 4, "a_bits": 4},
}


def stack(*names, name="s"):
    methods, errors = expand_stacks({**ENTRIES, name: {"method": "stack", "of": list(names)}})
    assert not errors
    return build_method(name, methods[name])


def ids(n=2, t=24, seed=1):
    return torch.randint(0, 101, (n, t), generator=torch.Generator().manual_seed(seed))


def logits(model, x):
    with torch.no_grad():
        return model(x, use_cache=False).logits


def by_hand(model, arch, order, artifacts):
    """Each component's own apply, in order (Gemma 3: with the rotation's wrappers lifted)."""
    for name in order:
        with unwrapped_norms(model, arch):
            build_method(name, ENTRIES[name]).apply(model, arch, artifacts.get(name, {}))
    return model


@pytest.mark.parametrize("family, order", [("llama", ("rrs", "slanc")), ("llama", ("quarot", "iter")),
                                           ("gemma3", ("rrs", "slanc")), ("gemma3", ("quarot", "iter"))])
def test_stack_equals_its_methods_applied_by_hand_in_order(family, order):
    base = tiny_model(family)
    arch = get_arch(base)
    torch.manual_seed(0)
    s = stack(*order)
    art = s.calibrate(copy.deepcopy(base), arch, {}, ids(2, 16, seed=5))
    x = ids()
    got = logits(s.apply(copy.deepcopy(base), arch, art), x)
    want = logits(by_hand(copy.deepcopy(base), arch, order, art["components"]), x)
    assert torch.equal(got, want)
    assert not torch.equal(got, logits(base, x))


def test_tender_after_slanc_is_recalibrated_on_the_slanc_model_and_equals_by_hand():
    base = tiny_model("llama")
    arch = get_arch(base)
    windows = ids(2, 16, seed=5)
    s = stack("slanc", "tender")
    assert s.facts()["recalibrate"] == ["tender"]
    art = s.calibrate(copy.deepcopy(base), arch, {}, windows)
    # by hand: SLaNC's artifact from the FP model, Tender's from the model with SLaNC applied
    slanc, tender = build_method("slanc", ENTRIES["slanc"]), build_method("tender", ENTRIES["tender"])
    a_slanc = slanc.calibrate(copy.deepcopy(base), arch, {}, windows)
    with_slanc = slanc.apply(copy.deepcopy(base), arch, a_slanc)
    a_tender = tender.calibrate(with_slanc, arch, {}, windows)
    for k, v in a_tender.items():
        assert torch.equal(art["components"]["tender"][k], v), k
    x = ids()
    want = logits(tender.apply(slanc.apply(copy.deepcopy(base), arch, a_slanc), arch, a_tender), x)
    assert torch.equal(logits(s.apply(copy.deepcopy(base), arch, art), x), want)
    # the stand-alone Tender artifact (FP model) differs: sharing it would not be the same stack
    alone = tender.calibrate(copy.deepcopy(base), arch, {}, windows)
    assert any(not torch.equal(alone[k], v) for k, v in a_tender.items() if k.endswith("/tmax"))


def test_shared_artifacts_are_taken_as_given():
    base = tiny_model("llama")
    arch = get_arch(base)
    s = stack("rrs", "slanc")
    given = {"rrs": {"any": 7}, "slanc": {"scales": {"x": 1}}}
    assert s.calibrate(base, arch, {}, ids(), shared=given)["components"] == given


def test_composed_norm_is_iterl2norm_in_slancs_format_on_slancs_scaled_input():
    norm = tiny_model("llama").model.layers[0].input_layernorm
    x = torch.randn(3, 5, norm.weight.numel()) * 40
    plain = LowPrecNorm.from_module(norm, fmt="fp16", variant="none")
    ref = IterNorm.from_module(norm, iters=4, fmt="fp16")
    assert torch.equal(SlancIterNorm(plain, iters=4)(x / 20), ref(x / 20))
    assert not torch.isfinite(ref(x)).all()              # Σx² overflows fp16 unscaled ...
    # a power-of-two static scale is exact: the same as feeding x / s to the unscaled norm (eps / s^2)
    scaled = LowPrecNorm.from_module(norm, fmt="fp16", variant="static", scale=8.0)
    eps_s = LowPrecNorm.from_module(norm, fmt="fp16", variant="none")
    eps_s.eps = norm.variance_epsilon / 64
    out = SlancIterNorm(scaled, iters=4)(x)              # ... and not with SLaNC's scale
    assert torch.isfinite(out).all() and torch.equal(out, SlancIterNorm(eps_s, iters=4)(x / 8))
    with pytest.raises(ValueError, match="dynamic"):
        SlancIterNorm(LowPrecNorm.from_module(norm, fmt="fp16", variant="dynamic"), iters=4)


def test_slanc_then_iterl2norm_stack_stays_close_to_slanc_alone():
    base = tiny_model("llama")
    arch = get_arch(base)
    s = stack("slanc", "iter")
    art = s.calibrate(base, arch, {}, ids())
    x = ids()
    got = logits(s.apply(copy.deepcopy(base), arch, art), x)
    slanc = build_method("slanc", ENTRIES["slanc"])
    alone = logits(slanc.apply(copy.deepcopy(base), arch, art["components"]["slanc"]), x)
    assert (got - alone).abs().max() < 0.05 * alone.abs().max()
    assert all(isinstance(get_submodule(s.apply(copy.deepcopy(base), arch, art), n), SlancIterNorm)
               for n in arch.norm_names(base))


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_rotation_keeps_every_norm_inputs_norm(family):
    """Why SLaNC's artifact is shared after QuaRot / RRS: every norm's input has the same L2 norm."""
    def norm_inputs(model):
        seen = {}
        mods = {n: get_submodule(model, n) for n in arch.norm_names(model)}
        hooks = [(m.norm if isinstance(m, PostNormRotation) else m).register_forward_pre_hook(
            lambda _, a, n=n: seen.__setitem__(n, a[0].detach().double().norm(dim=-1)))
            for n, m in mods.items()]
        logits(model, ids())
        for h in hooks:
            h.remove()
        return seen

    model = tiny_model(family)
    arch = get_arch(model)
    before = norm_inputs(model)
    rotation = build_method("rot", {"method": "quarot", "w_bits": 16, "a_bits": 16, "seed": 0})  # rotation only
    after = norm_inputs(rotation.apply(model, arch, {}))
    assert before.keys() == after.keys()
    for n in before:
        assert torch.allclose(after[n], before[n], rtol=1e-5, atol=1e-6), n


def test_stack_ops_are_its_methods_ops():
    d = ModelDims(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=16, vocab=101)
    rrs, it, q = (build_method(n, ENTRIES[n]) for n in ("rrs", "iter", "quarot"))
    assert stack("rrs", "slanc").ops_per_token(d) == pytest.approx(rrs.ops_per_token(d))
    fp32_gemm = {"fp32_mult": d.gemm_macs, "fp32_add": d.gemm_macs}
    want = dict(q.ops_per_token(d))
    for k, v in it.ops_per_token(d).items():
        want[k] = want.get(k, 0.0) + v - fp32_gemm.get(k, 0.0)
    assert stack("quarot", "iter").ops_per_token(d) == pytest.approx({k: v for k, v in want.items() if v})


@pytest.mark.parametrize("order, message", [
    (("rtn8", "rtn4"), "methods 'rtn8' (kind rtn) and 'rtn4' (kind rtn) both change linear_weights"),
    (("rtn8", "quarot"), "methods 'rtn8' (kind rtn) and 'quarot' (kind quarot) both change linear_weights"),
    (("dyn", "iter"), "methods 'dyn' (kind slanc) and 'iter' (kind iterl2norm) both change norm_format"),
    (("iter", "rrs"), "method 'rrs' (kind rrs) must come before 'iter' (kind iterl2norm)"),
    (("tender", "slanc"), "method 'slanc' (kind slanc) must come before 'tender' (kind tender)"),
    (("slanc", "sq"), "method 'sq' (kind smoothquant) reads calibration statistics"),
    (("rrs",), "a stack needs at least two methods"),
])
def test_conflicting_stacks_fail_naming_both(order, message):
    with pytest.raises(ValueError) as err:
        stack(*order)
    assert message in str(err.value)


def test_config_check_resolves_stacks_and_names_unknown_methods():
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["methods"]["st"] = {"method": "stack", "of": ["rtn-w8a8", "rtn-w4a44"]}
    with pytest.raises(ConfigError, match="unknown method 'rtn-w4a44' \\(did you mean 'rtn-w4a4'"):
        check_references(cfg)
    cfg["methods"]["st"]["of"] = ["rtn-w8a8", "bf16"]
    with pytest.raises(ConfigError, match="'rtn-w8a8' \\(kind rtn\\) and 'bf16' \\(kind bf16\\) both change"):
        check_references(cfg)
    cfg["methods"]["st"]["of"] = ["rtn-w8a8", "fp32"]
    built = check_references(cfg)
    assert [m.name for m in built["st"].components] == ["rtn-w8a8", "fp32"]


def test_dry_run_rejects_two_methods_on_one_site_naming_both(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["methods"]["w8-then-w4"] = {"method": "stack", "of": ["rtn-w8a8", "rtn-w4a4"]}
    cfg["experiments"][0]["methods"].append("w8-then-w4")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, "-n", configfile=path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "methods 'rtn-w8a8' (kind rtn) and 'rtn-w4a4' (kind rtn) both change linear_weights" in out
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()
