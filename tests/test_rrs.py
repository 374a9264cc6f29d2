"""Tests of the RRS reproduction: quarot invariance, runtime smoothing, KV4 quantizer, SmoothQuant, costs."""
from __future__ import annotations

import copy

import pytest
import torch

from helpers import tiny_model
from lpbench.archs import get_arch, get_submodule
from lpbench.methods import ModelDims, build_method
from lpbench.methods.runtime_smooth import runtime_smooth_quant, runtime_smooth_scales
from lpbench.studies.rrs.analysis import Rotations, capture_inputs, outlier_stats
from lpbench.quant import QuantLinear, QuantSpec, fake_quant
from lpbench.kvcache import KVQuant
from lpbench.quant import mse_clip_scale

INT4 = QuantSpec(bits=4, granularity="per_row")


def _fake_stats(model):
    g = torch.Generator().manual_seed(0)
    return {"linear": {n: {"absmax": torch.rand(m.in_features, generator=g, dtype=torch.float64) + 0.1}
                       for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}}


def _apply(model, entry):
    arch = get_arch(model)
    meth = build_method("x", entry)
    art = meth.calibrate(model, arch, _fake_stats(model), None)
    return meth.apply(model, arch, art)


# ---- rotation invariance (full precision) ---------------------------------------------------------------
@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("kind", ["quarot", "rrs"])
def test_rotation_is_invariant_in_full_precision(family, kind):
    model = tiny_model(family)
    ids = torch.randint(0, 101, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(ids).logits
        rot = _apply(copy.deepcopy(model), {"method": kind, "w_bits": 16, "a_bits": 16, "seed": 5})
        out = rot(ids).logits
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4
    # and the rotation really happened: o/down carry online Hadamards, weights changed
    arch = get_arch(rot)
    o = get_submodule(rot, f"{arch.layers}.0.{arch.attn['o']}")
    assert isinstance(o, QuantLinear) and o.input_transform is not None
    assert not torch.allclose(o.weight, get_submodule(model, f"{arch.layers}.0.{arch.attn['o']}").weight)


def test_rotation_with_kv_hadamard_is_invariant():
    """The K Hadamard of the KV4 path alone (16-bit codes) leaves q·k unchanged."""
    model = tiny_model("llama")
    ids = torch.randint(0, 101, (1, 20))
    with torch.no_grad():
        ref = model(ids).logits
        out = _apply(copy.deepcopy(model), {"method": "quarot", "w_bits": 16, "a_bits": 16, "kv_bits": 16,
                                            "seed": 1})(ids).logits
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_smoothquant_is_invariant_in_full_precision_and_moves_scales():
    for family in ("llama", "gemma3"):
        model = tiny_model(family)
        ids = torch.randint(0, 101, (2, 16))
        with torch.no_grad():
            ref = model(ids).logits
            sq = _apply(copy.deepcopy(model), {"method": "smoothquant", "w_bits": 16, "a_bits": 16, "alpha": 0.5})
            out = sq(ids).logits
        assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4


def test_smoothing_scales_formula():
    from lpbench.methods.smoothquant import smoothing_scales
    a = torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)
    w1 = torch.tensor([[1.0, -2.0, 0.5], [0.25, 1.0, -1.0]])
    w2 = torch.tensor([[4.0, 0.5, 0.1]])
    s = smoothing_scales(a, [w1, w2], alpha=0.5)
    wmax = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    assert torch.allclose(s, a.sqrt() / wmax.sqrt())


# ---- runtime smoothing ------------------------------------------------------------------------------------
def test_rs_group_one_is_per_channel_smoothing_by_hand():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 10, 12, generator=g) * torch.linspace(0.1, 30, 12)
    y = runtime_smooth_quant(x, INT4, group_size=1)
    for b in range(2):
        s = x[b].abs().max(0).values.clamp_min(1e-5)          # per sequence and channel
        xs = x[b] / s
        for t in range(10):
            scale = xs[t].abs().max() / 7
            q = torch.clamp(torch.round(xs[t] / scale), -8, 7)
            assert torch.allclose(y[b, t], q * scale * s, rtol=1e-6, atol=1e-7)


def test_rs_group_equal_to_channels_is_one_scale_per_sequence():
    """group_size = C: every channel gets the sequence's global max, so smoothing is a scalar and RS
    reduces to plain per-token quantization (computed by hand)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, 16, generator=g) * torch.linspace(0.5, 20, 16)
    s = runtime_smooth_scales(x, group_size=16)
    for b in range(3):
        assert torch.all(s[b] == x[b].abs().max())
    assert torch.allclose(runtime_smooth_quant(x, INT4, 16), fake_quant(x, INT4), rtol=1e-5, atol=1e-6)


def test_rs_grouping_by_hand_with_partial_last_group():
    x = torch.zeros(1, 2, 6)
    x[0, 0] = torch.tensor([1.0, 6.0, 3.0, 5.0, 2.0, 4.0])
    s = runtime_smooth_scales(x, group_size=4)
    # sorted maxima 6 5 4 3 | 2 1 -> groups {6,5,4,3} -> 6, {2,1} -> 2
    assert s[0, 0].tolist() == [2.0, 6.0, 6.0, 6.0, 2.0, 6.0]


@pytest.mark.parametrize("group", [1, 4, 128])
def test_runtime_smoothing_is_invariant_to_channel_order(group):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 32, 200, generator=g) * (torch.rand(200, generator=g) * 10 + 0.1)
    x[0, 5, 17] = 300.0                                       # a spike
    perm = torch.randperm(200, generator=g)
    y = runtime_smooth_quant(x, INT4, group)
    yp = runtime_smooth_quant(x[..., perm], INT4, group)
    assert torch.allclose(yp, y[..., perm], rtol=0, atol=0)


def test_rs_applies_to_o_gate_up_down_only():
    model = _apply(tiny_model("llama"), {"method": "rs", "w_bits": 4, "a_bits": 4, "group_size": 16})
    arch = get_arch(model)
    for role, rel in arch.block_linears().items():
        lin = get_submodule(model, f"{arch.layers}.0.{rel}")
        assert (type(lin.act_quant).__name__ == "RuntimeSmoothQuant") == (role in ("o", "gate", "up", "down"))
        assert lin.input_transform is None


# ---- KV4 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("asym", [False, True])
def test_kv4_quantizer_vs_brute_force(asym):
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 4, 7, 16, generator=g)
    k = torch.randn(2, 2, 7, 16, generator=g) * 3
    v = torch.randn(2, 2, 7, 16, generator=g)
    kvq = KVQuant(4, 16, asym=asym, k_hadamard=False)
    _, kq, vq = kvq(q, k, v)

    def brute(vec):
        if not asym:
            scale = vec.abs().max() / 7
            return torch.clamp(torch.round(vec / scale), -8, 7) * scale
        hi, lo = max(vec.max(), 0.0), min(vec.min(), 0.0)
        scale = (hi - lo) / 15
        zero = torch.round(-lo / scale)
        return (torch.clamp(torch.round(vec / scale) + zero, 0, 15) - zero) * scale

    for b in range(2):
        for t in range(7):
            for h in range(2):                                     # K: one scale per (token, head)
                assert torch.allclose(kq[b, h, t], brute(k[b, h, t]), atol=1e-6)
            vv = brute(torch.cat([v[b, h, t] for h in range(2)]))   # V: one scale per token, all heads
            assert torch.allclose(torch.cat([vq[b, h, t] for h in range(2)]), vv, atol=1e-6)


def test_kv4_hadamard_preserves_scores_and_attention_runs():
    q, k = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    kvq = KVQuant(16 - 1, 8)  # 15 bits: nearly lossless
    q2, k2, _ = kvq(q, k, torch.randn(1, 2, 5, 8))
    assert torch.allclose(q2 @ k2.transpose(-1, -2), q @ k.transpose(-1, -2), atol=1e-2)
    model = _apply(tiny_model("llama"), {"method": "quarot", "kv_bits": 4, "seed": 0})
    ids = torch.randint(0, 101, (1, 12))
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()
    assert model.config._attn_implementation.startswith("lpbench_kvq+")


def test_kv4_changes_only_the_wrapped_model():
    a, b = tiny_model("llama"), tiny_model("llama")
    ids = torch.randint(0, 101, (1, 12))
    with torch.no_grad():
        ref = b(ids).logits
        _apply(a, {"method": "rs", "w_bits": 16, "a_bits": 16, "kv_bits": 4})
        assert not torch.allclose(a(ids).logits, ref)
        assert torch.equal(b(ids).logits, ref)


# ---- weights, outliers, costs -----------------------------------------------------------------------------------
def test_mse_clip_never_worse_than_absmax():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(4))
    w[0, 0] = 12.0
    s = mse_clip_scale(w, 4)
    absmax = w.abs().amax(1, keepdim=True) / 7

    def err(sc):
        return (torch.clamp(torch.round(w / sc), -8, 7) * sc - w).abs().pow(2.4).sum(1)
    assert torch.all(err(s) <= err(absmax) + 1e-6)


def test_outlier_views_match_the_rotated_model():
    """The 'rotated' view of a down_proj / gate input equals the input the rotated model's quantizer sees."""
    model = tiny_model("llama")
    arch = get_arch(model)
    ids = torch.randint(0, 101, (16,))
    orig = capture_inputs(model, arch, ids, roles=("gate", "down", "o"))
    rot = Rotations(model, arch, seed=7)
    rmodel = _apply(copy.deepcopy(model), {"method": "quarot", "w_bits": 16, "a_bits": 16, "seed": 7})
    seen = {}
    for role in ("gate", "down", "o"):
        lin = get_submodule(rmodel, f"{arch.layers}.1.{arch.block_linears()[role]}")
        lin.act_quant = (lambda r: (lambda x: seen.setdefault(r, x.reshape(-1, x.shape[-1]).clone())))(role)
    with torch.no_grad():
        rmodel(ids.reshape(1, -1))
    gamma = get_submodule(model, f"{arch.layers}.1.{arch.norms['mlp_in']}").weight.detach()
    for role in ("gate", "down", "o"):
        expect = rot.rotate(role, orig[(1, role)], gamma if role == "gate" else None)
        assert torch.allclose(seen[role], expect, atol=1e-4, rtol=1e-3), role


def test_o_proj_input_sees_h_heads_kron_h_head_dim_and_online_transforms_are_seed_free():
    """Tiny Llama (4 heads of 16): the input o_proj's quantizer sees in the rotated model is the original
    o_proj input times H_4 ⊗ H_16 (per-head fold into v/o + QuaRot's online H_heads), whatever the R1 seed;
    down_proj's is times the deterministic H_128. The online transforms are the same for every seed."""
    from lpbench.rotation import hadamard_matrix

    model = tiny_model("llama")
    arch = get_arch(model)
    ids = torch.randint(0, 101, (16,), generator=torch.Generator().manual_seed(3))
    orig = capture_inputs(model, arch, ids, roles=("o", "down"))
    mats = []
    for seed in (0, 1):
        rmodel = _apply(copy.deepcopy(model), {"method": "quarot", "w_bits": 16, "a_bits": 16, "seed": seed})
        seen = {}
        for role in ("o", "down"):
            lin = get_submodule(rmodel, f"{arch.layers}.1.{arch.block_linears()[role]}")
            lin.act_quant = (lambda r: (lambda x: seen.setdefault(r, x.reshape(-1, x.shape[-1]).clone())))(role)
            mats.append(lin.input_transform.matrix())
        with torch.no_grad():
            rmodel(ids.reshape(1, -1))
        h_o = torch.kron(hadamard_matrix(4), hadamard_matrix(16)).float()
        assert torch.allclose(seen["o"], orig[(1, "o")] @ h_o, atol=1e-4, rtol=1e-3)
        assert torch.allclose(seen["down"], orig[(1, "down")] @ hadamard_matrix(128).float(), atol=1e-4, rtol=1e-3)
    assert torch.equal(mats[0], mats[2]) and torch.equal(mats[1], mats[3])


def test_o_proj_fallback_without_a_hadamard_of_order_heads():
    """SmolLM2's 9 heads: no Hadamard of order 9 exists, the o_proj transform is the full-width one."""
    from lpbench.methods.quarot import o_proj_transform

    t = o_proj_transform(9, 64)
    assert not t.across_heads and t.head_dim is None and t.dim == 576 and t.signs is None
    t4 = o_proj_transform(4, 256)
    assert t4.across_heads and t4.head_dim == 256 and t4.dim == 1024


def test_outlier_stats_detect_a_spike():
    x = torch.randn(64, 32, generator=torch.Generator().manual_seed(5))
    base = outlier_stats(x)
    x[3, 4] = 100.0
    spiky = outlier_stats(x)
    assert spiky["token_ratio"] > 10 * base["token_ratio"] and spiky["kurtosis"] > base["kurtosis"]


def test_rrs_costs_more_than_rs_and_plain():
    dims = ModelDims(hidden=576, intermediate=1536, layers=30, heads=9, kv_heads=3, head_dim=64, vocab=49152)
    rs = build_method("rs", {"method": "rs"})
    rrs = build_method("rrs", {"method": "rrs"})
    plain = rs.plain_ops(dims)
    assert sum(rrs.extra_ops(dims).values()) > sum(rs.extra_ops(dims).values()) > 0
    assert sum(rrs.ops_per_token(dims).values()) > sum(plain.values())
    assert sum(build_method("q", {"method": "quarot"}).extra_ops(dims, sandwich=True).values()) > \
        sum(build_method("q", {"method": "quarot"}).extra_ops(dims).values())


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="weights must be"):
        build_method("x", {"method": "rs", "weights": "awq"})
    with pytest.raises(ValueError, match="unknown parameter"):
        build_method("x", {"method": "rrs", "group": 128})


def test_perplexity_figure_one_bar_per_configuration_with_its_interval():
    """The RRS figure draws exactly one bar per (row, configuration) at that row's perplexity, with an error bar
    spanning its CI, the same colour for a configuration in every panel; a duplicate pair is an error."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from lpbench.studies.rrs.analysis import CONFIG_PALETTE, perplexity_figure

    rows = []
    for model, scale in (("a", 1.0), ("b", 2.0)):
        rows.append(dict(model=model, kind="fp32", row="FP32", config="FP32", method="fp32", perplexity=10 * scale,
                         ppl_ci_low=9 * scale, ppl_ci_high=11 * scale))
        for i, (row, cfg) in enumerate([("RTN", "W4A4 KV16"), ("RTN", "W16A4 KV16"), ("QuaRot", "W4A4 KV16")]):
            ppl = (20 + 10 * i) * scale
            rows.append(dict(model=model, kind="x", row=row, config=cfg, method=f"m{i}", perplexity=ppl,
                             ppl_ci_low=ppl - 1, ppl_ci_high=ppl + 2))
    df = pd.DataFrame(rows)
    fig = perplexity_figure(df)
    for ax, scale in zip(fig.axes, (1.0, 2.0)):
        heights = sorted(p.get_height() for p in ax.patches if p.get_height() > 0)
        assert heights == [20 * scale, 30 * scale, 40 * scale]
        colours = {p.get_height(): p.get_facecolor()[:3] for p in ax.patches if p.get_height() > 0}
        import matplotlib.colors as mc
        assert colours[20 * scale] == pytest.approx(mc.to_rgb(CONFIG_PALETTE["W4A4 KV16"]))
        assert colours[30 * scale] == pytest.approx(mc.to_rgb(CONFIG_PALETTE["W16A4 KV16"]))
        segs = [s for c in ax.collections for s in c.get_segments()]
        spans = sorted((round(s[0][1], 6), round(s[1][1], 6)) for s in segs)
        assert spans == sorted((h - 1, h + 2) for h in (20 * scale, 30 * scale, 40 * scale))
    plt.close(fig)
    dup = pd.concat([df, df.iloc[[1]]])
    with pytest.raises(ValueError, match="share a"):
        perplexity_figure(dup)


def _result(method, kind, params, nll, model="m"):
    import math as _m

    flat = [x for w in nll for x in w]
    return {"model": {"id": model}, "corpus": {"id": "c"},
            "method": {"name": method, "kind": kind, "params": params},
            "metrics": {"kind": "perplexity", "perplexity": _m.exp(sum(flat) / len(flat)), "token_nll": nll,
                        "windows": len(nll), "seqlen": len(nll[0]) + 1}}


def test_seed_replicates_are_pooled_in_the_table_and_drawn_as_one_bar_with_a_marker_per_seed():
    import math as _m

    import matplotlib.pyplot as plt
    import pandas as pd

    from lpbench.studies.rrs.analysis import perplexity_figure, perplexity_rows

    g = torch.Generator().manual_seed(0)
    base = (torch.rand(2, 64, generator=g) * 2 + 1).double()
    rot = {"w_bits": 4, "a_bits": 4, "kv_bits": 16, "weights": "gptq", "w_clip": "mse", "rotation": "hadamard"}
    results = [_result("fp32", "fp32", {}, base.tolist()),
               _result("rtn", "w4a4", {"w_bits": 4, "a_bits": 4, "kv_bits": 16}, (base + 1).tolist())]
    for seed, shift in ((0, 0.3), (1, 0.4), (2, 0.5)):
        name = "quarot-w4a4" if seed == 0 else f"quarot-w4a4-s{seed}"
        results.append(_result(name, "quarot", {**rot, "seed": seed}, (base + shift).tolist()))
    df = pd.DataFrame(perplexity_rows(results, {}))
    q = df[df["kind"] == "quarot"].set_index("method")
    assert set(q["replicate_of"]) == {"quarot-w4a4"} and (q["seeds"] == 3).all()
    assert q.loc["quarot-w4a4-s2", "seed"] == 2
    want = _m.exp(float(base.mean()) + 0.4)
    assert q["pooled_perplexity"].iloc[0] == pytest.approx(want, rel=1e-9)
    assert q["pooled_ci_low"].iloc[0] < want < q["pooled_ci_high"].iloc[0]
    assert df[df["method"] == "rtn"]["seeds"].iloc[0] == 1
    fig = perplexity_figure(df)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted(round(x, 6) for x in (want, df[df["method"] == "rtn"]["perplexity"].iloc[0]))
    markers = [ln for ln in ax.lines if ln.get_marker() == "o"]
    assert sorted(round(ln.get_ydata()[0], 6) for ln in markers) == sorted(round(x, 6) for x in q["perplexity"])
    assert len({ln.get_xdata()[0] for ln in markers}) == 1                  # all over the one QuaRot bar
    plt.close(fig)


def test_adding_a_seed_plans_only_its_jobs(tmp_path):
    """A config with QuaRot at the config's seed and seed 1 on tiny-llama, every output present (empty files
    marked up to date): adding seed 2 plans that seed's GPTQ set and evaluation, and the aggregates that read
    every result — nothing of the other seeds, no download, tokenize, calibration or artifact job."""
    import re

    import yaml
    from workflow_run import TEST_CONFIG, smk

    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    entry = {"method": "quarot", "weights": "gptq", "w_clip": "mse"}
    cfg["methods"].update({"quarot-w4a4": entry, "quarot-w4a4-s1": {**entry, "seed": 1}})
    cfg["experiments"].append({"models": ["tiny-llama"], "corpora": ["tiny"],
                               "methods": ["quarot-w4a4", "quarot-w4a4-s1"]})
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cfg["methods"]["quarot-w4a4-s2"] = {**entry, "seed": 2}
    cfg["experiments"][-1]["methods"].append("quarot-w4a4-s2")
    after.write_text(yaml.safe_dump(cfg, sort_keys=False))
    summary = smk(tmp_path, "--summary", configfile=before)
    assert summary.returncode == 0, summary.stderr[-3000:]
    for line in summary.stdout.splitlines()[1:]:
        f = tmp_path / line.split("\t")[0]
        f.parent.mkdir(parents=True, exist_ok=True)
        f.touch()
    assert smk(tmp_path, "--touch", "--cores", "1", configfile=before).returncode == 0
    plan = smk(tmp_path, "-n", configfile=after)
    assert plan.returncode == 0, plan.stderr[-3000:]
    log = plan.stdout + plan.stderr
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", log.split("Job stats:", 1)[1].split("total", 1)[0], re.M))
    assert stats.pop("evaluate") == "1" and "method=quarot-w4a4-s2" in log
    assert stats.pop("gptq_weights") == "1" and "quarot-hadamard-s2-w4-mse.pt" in log
    assert set(stats) <= {"aggregate", "hwcost", "rrs_cost", "rrs_perplexity", "fidelity_tables", "claims", "figures",
                          "energy", "pareto", "pareto_figure", "all"}, stats
    assert "quarot-hadamard-s1" not in log and "quarot-hadamard-s0" not in log


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
@pytest.mark.parametrize("kind", ["quarot", "rrs"])
def test_gptq_rows_skip_rotating_replaced_weights_with_the_same_model(family, kind):
    """apply() with GPTQ weights leaves the weights it replaces unrotated (replaced_linears): the finished
    model — every tensor, biases included, and its logits — is bit-identical to rotating everything first."""
    model = tiny_model(family)
    arch = get_arch(model)
    g = torch.Generator().manual_seed(3)
    names = arch.linear_names(model)[1:]                 # one linear without a GPTQ weight: RTN of its rotation
    weights = {n: torch.randn(get_submodule(model, n).weight.shape, generator=g) for n in names}
    meth = build_method("x", {"method": kind, "weights": "gptq", "seed": 2})
    assert meth.replaced_linears(model, arch, {"gptq_weights": weights}) == frozenset(names)
    fast = meth.apply(copy.deepcopy(model), arch, {"gptq_weights": weights})
    ref = copy.deepcopy(model)
    aq, transforms = meth.transform(ref, arch, {})
    ref = meth.finish(ref, arch, {"gptq_weights": weights}, aq, transforms)
    a, b = fast.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.randint(0, 101, (1, 16), generator=g)
    with torch.no_grad():
        assert torch.equal(fast(ids).logits, ref(ids).logits)
