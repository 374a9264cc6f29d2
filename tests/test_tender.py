"""Tender: integer-exactness of the shift accumulation (TENDER-2), grouping, chunking, model application."""

import pytest
import torch
import torch.nn.functional as F

from lpbench.archs import FAMILIES, get_arch
from lpbench.methods import ModelDims, build_method
from lpbench.accel.tender import (TenderOverflowError, chunk_rows, tender_decompose, tender_group_index,
                                  tender_int_linear, unchunk_rows)
from lpbench.methods.tender import Tender, resolve_groups
from lpbench.quant import QuantSpec, quantize_codes


def _acts(shape, outliers=(3, 17), scale=40.0, seed=0, heavy=False):
    g = torch.Generator().manual_seed(seed)
    if heavy:   # Student-t(2): heavy tails, as LLM activations
        z = torch.randn(shape, generator=g)
        chi = torch.randn((2, *shape), generator=g).pow(2).sum(0) / 2
        x = z / chi.sqrt()
    else:
        x = torch.randn(shape, generator=g)
    for c in outliers:
        c = c % shape[-1]
        x[..., c] = x[..., c] * scale + 2.0          # outlier channels with an offset (exercises the bias)
    return x


def _brute_force(parts, qw, bits, groups, unsigned):
    """Independent reference: per chunk, codes re-derived from the fake-quant float tensor, then
    Σ_g 2^(g - i_min) · (Q_g · W_qᵀ) with explicit Python loops over chunks and groups."""
    qmax = 2 ** bits - 1 if unsigned else 2 ** (bits - 1) - 1
    deq = parts.deq.reshape(-1, *parts.deq.shape[-2:])             # (chunks, chunk, K)
    gi = parts.group_index.expand(*parts.deq.shape[:-2], parts.deq.shape[-1]).reshape(-1, deq.shape[-1])
    tmax = parts.tmax.expand(parts.deq.shape[:-2]).reshape(-1)
    accs, units = [], []
    for c in range(deq.shape[0]):
        present = sorted(set(gi[c].tolist()))
        i_min = present[0]
        acc = torch.zeros(deq.shape[1], qw.shape[0], dtype=torch.int64)
        for g in present:
            s_g = (tmax[c] / 2 ** (groups - 1 - g) / qmax).clamp(min=1e-9)      # float32, as the hardware's scale
            cols = gi[c] == g
            codes = torch.round(deq[c][:, cols] / s_g)
            # the fake-quant float values are exactly the dequantized integer codes
            assert torch.equal(codes * s_g, deq[c][:, cols])
            acc += (2 ** (g - i_min)) * (codes.long() @ qw[:, cols].T)
        accs.append(acc)
        units.append((tmax[c] / 2 ** (groups - 1 - i_min) / qmax).clamp(min=1e-9))
    return (torch.stack(accs).reshape(*parts.deq.shape[:-1], qw.shape[0]),
            torch.stack(units).reshape(parts.deq.shape[:-2]))


CASES = [  # (batch, tokens, K, N, bits, groups, chunk, bias, unsigned)
    (1, 37, 16, 8, 4, 4, 16, None, False),
    (2, 50, 32, 24, 8, 4, 16, None, False),
    (1, 64, 48, 16, 4, 8, 32, False, False),
    (2, 33, 24, 12, 8, 6, 8, False, True),
    (1, 20, 40, 10, 4, 14, 256, None, False),
]


@pytest.mark.parametrize("B,T,K,N,bits,G,chunk,bias,unsigned", CASES)
def test_int_linear_is_bit_exact(B, T, K, N, bits, G, chunk, bias, unsigned):
    x = _acts((B, T, K), seed=K + T)
    if unsigned:
        x = x.relu()
    w = torch.randn(N, K, generator=torch.Generator().manual_seed(N)) * 0.05
    lb = torch.randn(N) * 0.1
    r = tender_int_linear(x, w, bits, G, chunk, bias=bias, unsigned=unsigned, layer_bias=lb)
    assert not r.overflow and r.exact
    parts = tender_decompose(x, bits, G, chunk, bias=bias, unsigned=unsigned, return_parts=True)
    # weights: codes and scales equal the suite's per-row RTN quantizer
    qw_ref, sw_ref, _ = quantize_codes(w, QuantSpec(bits=bits, granularity="per_row"))
    assert torch.equal(r.w_codes, qw_ref.long()) and torch.equal(r.w_scale, sw_ref.squeeze(-1))
    # integers: shift-accumulated A == brute-force Σ 2^(g-i_min) P_g built from the fake-quant floats
    acc_ref, unit_ref = _brute_force(parts, r.w_codes, bits, G, unsigned)
    assert torch.equal(r.acc, acc_ref)
    assert torch.equal(r.s_min, unit_ref)
    # same final float ops → identical output
    y = acc_ref.double() * (unit_ref.double()[..., None, None] * r.w_scale.double())
    if parts.bias is not None:
        y = y + parts.bias.double() @ w.double().T
    y = (unchunk_rows(y, T) + lb.double()).float()
    assert torch.equal(r.y, y)
    # and the float fake-quant GEMM (official form X̂'·Ŵᵀ + b·Wᵀ) agrees to float rounding
    w_hat = (qw_ref * sw_ref).float()
    yf = F.linear(parts.deq, w_hat)
    if parts.bias is not None:
        yf = yf + parts.bias @ w.T
    yf = unchunk_rows(yf, T) + lb
    assert torch.allclose(r.y, yf, rtol=1e-5, atol=1e-5 * yf.abs().max().item())


def test_int_linear_realistic_layer_heavy_tails():
    """A 'real-ish' layer: heavy-tailed activations with outlier channels, 300 tokens (2 chunks, one
    padded), K=512 → N=256, INT4 with G=14 and INT8 with G=8 (Llama-2-7B's values)."""
    x = _acts((1, 300, 512), outliers=(5, 100, 333, 480), scale=60.0, seed=7, heavy=True)
    w = torch.randn(256, 512, generator=torch.Generator().manual_seed(3)) * 0.02
    for bits, G in ((4, 14), (8, 8)):
        r = tender_int_linear(x, w, bits, G, 256)
        parts = tender_decompose(x, bits, G, 256, return_parts=True)
        acc_ref, _ = _brute_force(parts, r.w_codes, bits, G, False)
        assert not r.overflow and r.exact
        assert torch.equal(r.acc, acc_ref)
        assert r.nonempty.sum(-1).min() >= 2           # several non-empty groups per chunk


def test_empty_groups_shift_by_distance():
    """Groups 1 and 2 empty: the accumulator jumps by 2^3 from group 3 to group 0."""
    x = torch.tensor([[8.0, 1.0, -0.5, 7.0]])             # CMax 8,1,0.5,7 → groups 3,0,0,3 (G=4)
    w = torch.tensor([[1.0, 2.0, 3.0, -4.0]])
    r = tender_int_linear(x, w, 4, 4, chunk=4, bias=False)
    assert r.nonempty.tolist() == [[True, False, False, True]]
    parts = tender_decompose(x, 4, 4, 4, bias=False, return_parts=True)
    q = parts.codes.long()[0]                              # (chunk, K)
    qw = r.w_codes
    p3 = q[:, [0, 3]] @ qw[:, [0, 3]].T
    p0 = q[:, [1, 2]] @ qw[:, [1, 2]].T
    assert torch.equal(r.acc[0], 8 * p3 + p0)
    assert int(r.i_min) == 0


def test_overflow_is_detected_not_wrapped():
    K = 2048
    x = torch.ones(1, 4, K)
    x[..., 0] = 1e-3                                       # one tiny channel → group 0, the rest group 7
    w = torch.ones(3, K)
    with pytest.raises(TenderOverflowError, match="K=2048"):
        tender_int_linear(x, w, 8, 8, chunk=4, bias=False)
    r = tender_int_linear(x, w, 8, 8, chunk=4, bias=False, on_overflow="flag")
    assert r.overflow and r.max_abs >= 2 ** 31
    # true value, not wrapped: 2^7·P_7 + P_0 with P_7 = 2047·127·127 and the tiny channel's code
    # round(1e-3 / (2^-7 / 127)) = round(16.256) = 16 → P_0 = 16·127
    assert int(r.acc[0, 0, 0, 0]) == 2 ** 7 * (K - 1) * 127 * 127 + 16 * 127 > 2 ** 31
    assert not tender_int_linear(x, w, 8, 8, chunk=4, bias=False, acc_bits=64).overflow
    # the same layer with one group (plain per-tensor) fits: the shifts caused the overflow
    assert not tender_int_linear(x, w, 8, 1, chunk=4, bias=False, on_overflow="flag").overflow


def test_group_assignment_hand_computed():
    # CMax = [1, 2, 3, 8], G = 4 → TMax = 8, thresholds θ = 8/2^3, 8/2^2, 8/2, 8 = [1, 2, 4, 8]
    # round-up:  1 ≤ θ0 → 0;  θ0 < 2 ≤ θ1 → 1;  θ1 < 3 ≤ θ2 → 2;  θ2 < 8 ≤ θ3 → 3
    # round-down: one lower, group 0 stays: [0, 0, 1, 2]
    cmax, tmax = torch.tensor([1.0, 2.0, 3.0, 8.0]), torch.tensor(8.0)
    assert tender_group_index(cmax, tmax, 4, "round_up").tolist() == [0, 1, 2, 3]
    assert tender_group_index(cmax, tmax, 4, "round_down").tolist() == [0, 0, 1, 2]
    # through the decomposition (no bias; rows chosen so that CMax is as above)
    x = torch.tensor([[1.0, -2.0, 3.0, 8.0], [0.5, 1.0, -1.0, -4.0]])
    p = tender_decompose(x, 8, 4, chunk=2, bias=False, return_parts=True)
    assert p.group_index[0].tolist() == [0, 1, 2, 3]
    assert torch.equal(p.scale[0, 0], torch.tensor([1.0, 2.0, 4.0, 8.0]) / 127)
    # ch2 = 3 with s = 4/127: 3·127/4 = 95.25 → 95; ch1 = -2 with s = 2/127 → -127
    assert p.codes[0, 0].tolist() == [127.0, -127.0, 95.0, 127.0]
    # round-down clips the largest channel to half its range: 8 → code 127 at s = 4/127
    p = tender_decompose(x, 8, 4, chunk=2, bias=False, scheme="round_down", return_parts=True)
    assert p.group_index[0].tolist() == [0, 0, 1, 2]
    assert p.deq[0, 0, 3].item() == pytest.approx(4.0)


def test_runtime_bias_and_bias_added_back():
    x = torch.tensor([[10.0, -1.0], [14.0, 1.0], [12.0, 0.0]])    # ch0 centred at 12 → bias 12
    p = tender_decompose(x, 8, 2, chunk=3, return_parts=True)
    assert p.bias.flatten().tolist() == [12.0, 0.0]
    y = tender_decompose(x, 8, 2, chunk=3)
    assert torch.allclose(y, x, atol=0.02)


def test_chunking_equals_separate_chunks():
    x = _acts((2, 300, 32), seed=1)
    full = tender_decompose(x, 8, 6, chunk=128)
    parts = [tender_decompose(x[:, s:s + 128], 8, 6, chunk=128) for s in (0, 128, 256)]
    assert torch.equal(full, torch.cat(parts, dim=1))
    # calibrated per-position bias and static TMax: position i of the long input ↔ position 0 of chunk i
    bias = torch.randn(3, 32)
    tmax = torch.tensor([50.0, 60.0, 70.0])
    full = tender_decompose(x, 4, 6, chunk=128, bias=bias, tmax=tmax)
    parts = [tender_decompose(x[:, 128 * i:128 * (i + 1)], 4, 6, chunk=128, bias=bias[i:i + 1], tmax=tmax[i:i + 1])
             for i in range(3)]
    assert torch.equal(full, torch.cat(parts, dim=1))
    # fewer calibrated positions than chunks: the last one is repeated
    a = tender_decompose(x, 4, 6, chunk=128, bias=bias[:1], tmax=tmax[:1])
    b = tender_decompose(x, 4, 6, chunk=128, bias=bias[:1].repeat(3, 1), tmax=tmax[:1].repeat(3))
    assert torch.equal(a, b)
    xc, T = chunk_rows(x, 128)
    assert xc.shape == (2, 3, 128, 32) and torch.equal(unchunk_rows(xc, T), x)


# ---- models ---------------------------------------------------------------------------------------
def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def _tiny_opt():
    from transformers import OPTConfig, OPTForCausalLM
    cfg = OPTConfig(vocab_size=128, hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                    max_position_embeddings=128, word_embed_proj_dim=64)
    torch.manual_seed(0)
    return OPTForCausalLM(cfg).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(ids, use_cache=False).logits


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("make", [_tiny_llama, _tiny_opt])
@pytest.mark.parametrize("scope", ["linear", "all"])
def test_apply_keeps_logits_close_at_8_bits(make, scope):
    ev = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(1))
    calib = torch.randint(0, 128, (3, 40), generator=torch.Generator().manual_seed(2))
    model = make()
    ref = _logits(model, ev)
    arch = get_arch(model)
    m = build_method("t8", {"method": "tender", "bits": 8, "chunk": 16, "scope": scope, "static": False})
    art = m.calibrate(model, arch, {}, calib)
    assert torch.equal(_logits(model, ev), ref)                 # calibration restores the model
    m.apply(model, arch, art)
    out = _logits(model, ev)
    assert torch.isfinite(out).all()
    assert _rel(out, ref) < 0.03
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9


@pytest.mark.parametrize("make", [_tiny_llama, _tiny_opt])
def test_static_calibration_on_the_eval_window_equals_runtime(make):
    """Static TMax / groups / mean bias calibrated on the evaluated window itself reproduce the runtime
    decomposition exactly (round-up), for linears and attention: checks the calibration bookkeeping."""
    ev = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(1))
    outs = []
    for static in (True, False):
        model = make()
        arch = get_arch(model)
        m = build_method("t", {"method": "tender", "bits": 8, "chunk": 16, "scope": "all", "static": static,
                               "scheme": "round_up"})
        m.apply(model, arch, m.calibrate(model, arch, {}, ev))
        outs.append(_logits(model, ev))
    assert torch.equal(outs[0], outs[1])


def test_auto_scheme_selection_and_site_policy():
    model = _tiny_opt()
    arch = get_arch(model)
    calib = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(2))
    m = build_method("t4", {"method": "tender", "bits": 4, "chunk": 16})
    art = m.calibrate(model, arch, {}, calib)
    nll_up, nll_dn = float(art["meta/select_nll_round_up"]), float(art["meta/select_nll_round_down"])
    assert int(art["meta/scheme_round_down"]) == int(nll_dn <= nll_up)
    assert int(art["meta/groups"]) == 8                        # standard-MLP default at INT4
    assert art["site/model.decoder.layers.0:qkv/bias"].shape == (3, 64)      # 40 tokens → 3 chunks of 16
    assert art["site/model.decoder.layers.0:fc2/cmax"].shape == (3, 128)
    m.apply(model, arch, art)
    layer = model.model.decoder.layers[0]
    assert layer.fc2.act.unsigned and not layer.fc2.act.use_bias            # OPT fc2: post-ReLU
    assert layer.self_attn.out_proj.act.use_bias and layer.fc1.act.use_bias
    assert layer.self_attn.q_proj.act is layer.self_attn.v_proj.act          # one decomposition for q/k/v
    llama = _tiny_llama()
    la = get_arch(llama)
    build_method("t", {"method": "tender", "groups": 4}).apply(llama, la, {})
    blk = llama.model.layers[0]
    assert not blk.self_attn.o_proj.act.use_bias and not blk.mlp.down_proj.act.use_bias
    assert blk.mlp.gate_proj.act.use_bias and not blk.mlp.down_proj.act.unsigned


def test_groups_table_scope_errors_and_ops():
    assert resolve_groups(4, "llama", 4096, 32, 11008, 4096)[0] == 14
    assert resolve_groups(8, "llama", 4096, 32, 11008, 4096)[0] == 8
    assert resolve_groups(8, "llama", 4096, 32, 11008, 2048)[0] == 14       # LLaMA-1
    assert resolve_groups(4, "opt", 9216, 64, 36864)[0] == 10
    with pytest.raises(NotImplementedError, match="bert"):
        Tender(scope="all")._check_scope(FAMILIES["bert"])
    with pytest.raises(ValueError, match="unknown parameter"):
        Tender(bogus=1)
    dims = ModelDims(hidden=64, intermediate=128, layers=2, heads=4, kv_heads=2, head_dim=16, vocab=128)
    t = Tender(bits=4, groups=8)
    br = t.ops_breakdown(dims)
    n_out = 2 * ((4 + 2 * 2) * 16 + 64 + 2 * 128 + 64)
    assert br["shift"]["count"] == n_out * 7
    ops = t.ops_per_token(dims)
    assert set(ops) <= {"int8_mult", "int32_add", "fp32_add", "fp32_mult"}
    assert ops["int8_mult"] == dims.gemm_macs
    assert "group_compare" in Tender(bits=4, groups=8, static=False).ops_breakdown(dims)


# ---- batch handling, calibration windows, exactness on models, non-empty groups ---------------------
@pytest.mark.parametrize("make", [_tiny_llama, _tiny_opt])
def test_batch_of_two_equals_two_single_runs(make):
    """OPT flattens batch x tokens before fc1/fc2: the batch pre-hook restores (B, T, C), so a batch of
    two sequences is quantized exactly as the two sequences one at a time."""
    ev = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(5))
    calib = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(6))
    model = make()
    arch = get_arch(model)
    m = build_method("t4", {"method": "tender", "bits": 4, "groups": 4, "chunk": 16})
    m.apply(model, arch, m.calibrate(model, arch, {}, calib))
    both = _logits(model, ev)
    one = torch.cat([_logits(model, ev[i:i + 1]) for i in range(2)])
    assert torch.allclose(both, one, rtol=1e-4, atol=1e-4)


def test_calib_windows_limits_the_pass():
    model = _tiny_llama()
    arch = get_arch(model)
    calib = torch.randint(0, 128, (4, 40), generator=torch.Generator().manual_seed(2))
    a = build_method("t", {"method": "tender", "bits": 8, "chunk": 16, "calib_windows": 2}).calibrate(
        model, arch, {}, calib)
    b = build_method("t", {"method": "tender", "bits": 8, "chunk": 16}).calibrate(model, arch, {}, calib[:2])
    assert int(a["meta/calib_windows"]) == 2
    assert all(torch.equal(a[k], b[k]) for k in b if k != "meta/calib_windows")
    with pytest.raises(ValueError, match="calib_windows"):
        Tender(calib_windows=0)


@pytest.mark.parametrize("make", [_tiny_llama, _tiny_opt])
@pytest.mark.parametrize("scope", ["linear", "all"])
def test_one_shared_pass_gives_each_configurations_own_artifact(make, scope):
    """Configurations that differ in calibration windows, static/runtime mode and scheme share one pass
    (rule shared_pass): read after k windows, it finishes into the artifact a pass over the first k windows
    alone gives — every key, in order, bit for bit — and the model is restored after both."""
    model = make()
    arch = get_arch(model)
    calib = torch.randint(0, 128, (6, 40), generator=torch.Generator().manual_seed(3))
    ev = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(1))
    ref = _logits(model, ev)
    base = {"method": "tender", "bits": 4, "chunk": 16, "scope": scope}
    members = [build_method("c2", {**base, "calib_windows": 2}), build_method("c4", {**base, "calib_windows": 4}),
               build_method("dyn", {**base, "calib_windows": 4, "static": False}),
               build_method("all", {**base, "scheme": "round_up"})]
    assert len({m.pass_key() for m in members}) == 1
    assert build_method("x", {**base, "bits": 8}).pass_key() != members[0].pass_key()
    readings = members[0].collect_pass(model, arch, calib, [2, 4, 6])
    assert sorted(readings) == [2, 4, 6]
    for m in members:
        own = m.own_windows(calib)
        shared = m.calibrate_from_pass(model, arch, readings[len(own)], own)
        alone = m.calibrate(model, arch, {}, calib[: len(own)])
        assert list(shared) == list(alone), m.name
        assert all(torch.equal(shared[k], alone[k]) for k in alone), m.name
    assert torch.equal(_logits(model, ev), ref)
    with pytest.raises(ValueError, match="outside 1..6"):
        members[0].collect_pass(model, arch, calib, [7])


@pytest.mark.parametrize("make", [_tiny_llama, _tiny_opt])
def test_exactness_on_model_layers(make):
    """TENDER-2 on model layers with calibrated static scales (clipping, bias, unsigned fc2 included)."""
    model = make()
    arch = get_arch(model)
    calib = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(2))
    ev = torch.randint(0, 128, (1, 40), generator=torch.Generator().manual_seed(9))
    for bits in (8, 4):
        m = build_method("t", {"method": "tender", "bits": bits, "chunk": 16})
        rows = m.exactness_on_model(model, arch, m.calibrate(model, arch, {}, calib), ev)
        assert len(rows) == 2 * 4                                  # blocks 0 and 1 (n//2 == 1), 4 sites
        assert all(r["mismatches"] == 0 and r["code_mismatches"] == 0 for r in rows)
        assert all(r["static"] for r in rows)
        assert max(r["max_rel_diff_fp64_fakequant"] for r in rows) < 1e-5
    if arch.family == "opt":
        assert any(r["unsigned"] for r in rows if r["site"] == "fc2")


def test_exactness_check_counts_a_broken_accumulator(monkeypatch):
    """The check is not vacuous: corrupting the shift (k + 1) is caught as mismatches."""
    import lpbench.accel.tender as T
    x = _acts((1, 40, 32), seed=3)
    w = torch.randn(8, 32, generator=torch.Generator().manual_seed(4))
    assert T.exactness_check(x, w, 8, 4, 16)["mismatches"] == 0
    orig = torch.bitwise_left_shift
    monkeypatch.setattr(T.torch, "bitwise_left_shift",
                        lambda a, k: orig(a, k + 1) if isinstance(k, int) and k > 0 else orig(a, k))
    assert T.exactness_check(x, w, 8, 4, 16)["mismatches"] > 0


def test_artifact_nonempty_groups_hand_count():
    from lpbench.methods.tender import artifact_nonempty_groups
    art = {"meta/groups": torch.tensor(4), "meta/scheme_round_down": torch.tensor(0),
           # CMax per position vs TMax 8 (thresholds 1, 2, 4): groups [0, 1, 3] and [3, 3, 3]
           "site/a:qkv/tmax": torch.tensor([8.0, 8.0]),
           "site/a:qkv/cmax": torch.tensor([[0.5, 1.5, 8.0], [8.0, 7.0, 5.0]])}
    info = artifact_nonempty_groups(art)
    assert info == {"groups": 4, "mean": 2.0, "max": 3, "sites": 1}


def test_overflow_check_on_hand_built_layers():
    """TENDER-2's INT32 row: a layer whose shifted accumulator exceeds 2^31 - 1 fails, the same layer with one
    group (no shifts) passes; the row reports the largest value exactly and names the worst layer."""
    from lpbench.accel.tender import exactness_check, overflow_check
    K = 2048
    x = torch.ones(1, 4, K)
    x[..., 0] = 1e-3                                       # one tiny channel → group 0, the rest group 7
    w = torch.ones(3, K)
    over = {"block": 5, "site": "down", **exactness_check(x, w, 8, 8, chunk=4, bias=False)}
    fits = {"block": 0, "site": "qkv", **exactness_check(x, w, 8, 1, chunk=4, bias=False)}
    assert over["mismatches"] == 0 and fits["mismatches"] == 0           # exact in int64 either way
    row = overflow_check([fits, over])
    peak = 2 ** 7 * (K - 1) * 127 * 127 + 16 * 127
    assert row["acc_max_abs"] == peak > row["acc_limit"] == 2 ** 31 - 1
    assert (row["pass"], row["result"], row["overflow_layers"], row["layers"]) == (0, "fail", 1, 2)
    assert row["worst_layer"] == "block=5 site=down" and row["headroom_bits"] < 0
    ok = overflow_check([fits])
    # one group: scale 1/127, the tiny channel's code round(0.127) = 0 → (K - 1)·127·127
    assert ok["acc_max_abs"] == (K - 1) * 127 * 127 and (ok["pass"], ok["result"], ok["overflow"]) == (1, "pass", False)
    assert ok["acc_bits_needed"] == 26 and ok["headroom_bits"] == 6
    with pytest.raises(ValueError, match="INT\\[64\\]"):
        overflow_check([{**fits, "acc_bits": 64}])


def test_mse_clipped_weights_option(monkeypatch):
    """``w_clip: mse`` (equal-weights rows of TENDER-1): every block linear holds weight_quant(W, bits, "mse"),
    one clip search per weight within a job (calibration installs the model three times), the default is
    unchanged, and the integer emulation refuses it (its weight codes are absmax)."""
    import lpbench.methods.tender.method as MT
    model = _tiny_llama()
    arch = get_arch(model)
    calib = torch.randint(0, 128, (2, 40), generator=torch.Generator().manual_seed(2))
    calls = []
    real = MT.weight_quant
    monkeypatch.setattr(MT, "weight_quant", lambda w, b, c: calls.append(c) or real(w, b, c))
    m = build_method("t", {"method": "tender", "bits": 4, "chunk": 16, "w_clip": "mse"})
    art = m.calibrate(model, arch, {}, calib)
    n_lin = len(arch.linear_names(model))
    assert calls == ["mse"] * n_lin                               # cached across the three installs
    m.apply(model, arch, art)
    name = arch.linear_names(model)[0]
    lin = model.get_submodule(name)
    ref = real(lin.fp_weight if lin.fp_weight is not None else _tiny_llama().get_submodule(name).weight, 4, "mse")
    assert torch.equal(lin.weight, ref)
    plain = _tiny_llama()
    build_method("p", {"method": "tender", "bits": 4, "chunk": 16}).apply(plain, arch, {})
    assert not torch.equal(plain.get_submodule(name).weight, lin.weight)
    with pytest.raises(NotImplementedError, match="absmax"):
        m.exactness_on_model(_tiny_llama(), arch, art, calib[:1])


def test_shared_pass_rule_plans_one_pass_and_its_artifacts_equal_own_calibrations(tmp_path):
    """Through Snakemake: two Tender configurations that differ only in windows and mode get one shared_pass
    job (over the most windows) and their artifacts equal what their own calibrations give; a configuration
    alone in its pass keeps its own calibration."""
    import re

    from workflow_run import config_copy, smk

    from lpbench.integrity import load_checked
    from lpbench.sources import load_model

    def add(cfg):
        cfg["methods"].update({"tender-a": {"method": "tender", "bits": 8, "calib_windows": 1},
                               "tender-b": {"method": "tender", "bits": 8, "calib_windows": 2, "static": False},
                               "tender-c": {"method": "tender", "bits": 4, "calib_windows": 2}})
        cfg["experiments"] = [{"models": ["tiny-llama"], "corpora": ["tiny"],
                               "methods": ["tender-a", "tender-b", "tender-c"]}]

    path = config_copy(tmp_path, add)
    arts = [f"resources/artifacts/tiny-llama/tiny/{m}.pt" for m in ("tender-a", "tender-b", "tender-c")]
    plan = smk(tmp_path, "-n", "--cores", "1", *arts, configfile=path)
    assert plan.returncode == 0, plan.stderr[-3000:]
    stats = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout.split("Job stats:", 1)[1].split("total", 1)[0], re.M))
    assert stats["shared_pass"] == "1" and stats["method_artifact"] == "3"
    run = smk(tmp_path, "--cores", "1", *arts, configfile=path)
    assert run.returncode == 0, run.stderr[-3000:]
    model, _, _ = load_model(tmp_path / "resources" / "models" / "tiny-llama")
    windows = load_checked(tmp_path / "resources" / "calib" / "tiny-llama" / "tiny.windows.pt")
    for name, entry in (("tender-a", {"method": "tender", "bits": 8, "calib_windows": 1}),
                        ("tender-b", {"method": "tender", "bits": 8, "calib_windows": 2, "static": False}),
                        ("tender-c", {"method": "tender", "bits": 4, "calib_windows": 2})):
        got = load_checked(tmp_path / "resources" / "artifacts" / "tiny-llama" / "tiny" / f"{name}.pt")["artifact"]
        own = build_method(name, entry).calibrate(model, get_arch(model), {}, windows)
        assert list(got) == list(own) and all(torch.equal(got[k], own[k]) for k in own), name
    assert len(list((tmp_path / "resources" / "passes").rglob("*.pt"))) == 1
