"""Unified Normalization: the norm against an independent float64 reference of the official UN1d
formulas (every branch: warm-up, smoothing, outlier filtration, ratio clamps, gradient compensation),
gradcheck where the compensation is the identity, folding exactness, the IDX reader, the study tables
and the claims rule kinds it added."""
import gzip
import math
import struct

import numpy as np
import pandas as pd
import pytest
import torch

from lpbench.claims import evaluate_claim
from lpbench.images import ImageSetError, materialize, read_idx, write_idx
from lpbench.studies.unified_norm import role, runs, settings
from lpbench.studies.unified_norm.fold import fold_norms
from lpbench.studies.unified_norm.models import ViT, CausalLM
from lpbench.studies.unified_norm.norm import UnifiedNorm, _UNFunction, scaled_un_spec
from lpbench.studies.unified_norm.tables import study_tables, welch_ci


# ------------------------------------------------------------------ float64 reference (numpy, per step)
class Reference:
    """Straight transcription of the official formulas in numpy float64, one step at a time."""

    def __init__(self, c, m=4, warmup=4000, filtration=False, eps=1e-5, mom=0.9, clamp=5.0, clamp_start=None):
        self.m, self.warmup, self.filt, self.eps, self.mom, self.clamp = m, warmup, filtration, eps, mom, clamp
        self.clamp_start = max(1000, warmup) if clamp_start is None else clamp_start
        self.rv = np.ones(c)
        self.ema = np.zeros(c)
        self.win = [np.zeros(c) for _ in range(m)]
        self.gwin = [np.zeros(c) for _ in range(m)]
        self.t = 0
        self.skips = 0

    def step(self, x, w, b, dy):
        self.t += 1
        t, m = self.t, self.m
        n = x.shape[0]
        x2 = np.sum(x ** 2, axis=0) / n
        allroots = np.concatenate([np.sqrt(v) for v in self.win])
        stat = np.sum((allroots - allroots.mean()) ** 2) / (allroots.size - 1)
        self.win[t % m] = x2.copy()
        skip = m == 1
        if self.filt and t >= self.warmup:
            arr = np.stack(self.win)
            am = arr.sum(0) / m
            gm = np.prod(arr, axis=0) ** (1.0 / m)
            if np.any(am - gm > m * stat):
                self.win[t % m] = self.rv.copy()
                skip = True
                self.skips += 1
        if t <= m or t < self.warmup or skip:
            var = x2
        else:
            var = np.prod(np.stack(self.win), axis=0) ** (1.0 / m)
        r = np.sqrt(var + self.eps) / np.sqrt(self.rv + self.eps)
        r = (np.ones_like(r) if (t <= self.clamp_start or skip)
             else np.minimum(np.maximum(r, 1 / self.clamp), self.clamp))
        z = x / np.sqrt(var + self.eps)
        y = w * z + b
        self.rv = self.mom * self.rv + (1 - self.mom) * var
        # backward
        g = dy * w * r
        gz = (g * z).sum(0) / n
        self.gwin[t % m] = self.ema.copy() if skip else gz
        psi_in = gz if (t <= m or t < self.warmup or skip) else np.stack(self.gwin).mean(0)
        self.ema = self.mom * self.ema + (1 - self.mom) * psi_in
        psi = psi_in if skip else self.ema
        dx = (g - psi * z) / np.sqrt(var + self.eps)
        return y, dx, (dy * r * z).sum(0), dy.sum(0), skip, r


def _run_both(steps, scales, **kw):
    torch.manual_seed(0)
    c, n = 6, 40
    mod = UnifiedNorm(c, window=kw.get("m", 4), warmup_iters=kw.get("warmup", 4000),
                      outlier_filtration=kw.get("filtration", False), clamp_start=kw.get("clamp_start")).double()
    with torch.no_grad():
        mod.weight.copy_(torch.rand(c, dtype=torch.float64) + 0.5)
        mod.bias.copy_(torch.randn(c, dtype=torch.float64))
    ref = Reference(c, **{k: v for k, v in kw.items()})
    w, b = mod.weight.detach().numpy().copy(), mod.bias.detach().numpy().copy()
    out = []
    for i in range(steps):
        x = (torch.randn(2, n // 2, c, dtype=torch.float64) * scales(i)).requires_grad_(True)
        dy = torch.randn(2, n // 2, c, dtype=torch.float64)
        mod.zero_grad()
        y = mod(x)
        (y * dy).sum().backward()
        ry, rdx, rdw, rdb, rskip, r = ref.step(x.detach().reshape(n, c).numpy(), w, b, dy.reshape(n, c).numpy())
        np.testing.assert_allclose(y.detach().reshape(n, c).numpy(), ry, rtol=1e-10, atol=1e-12,
                                   err_msg=f"y step {i + 1}")
        np.testing.assert_allclose(x.grad.reshape(n, c).numpy(), rdx, rtol=1e-9, atol=1e-12, err_msg=f"dx step {i + 1}")
        np.testing.assert_allclose(mod.weight.grad.numpy(), rdw, rtol=1e-9, atol=1e-12, err_msg=f"dw step {i + 1}")
        np.testing.assert_allclose(mod.bias.grad.numpy(), rdb, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(mod.running_var.numpy(), ref.rv, rtol=1e-12)
        np.testing.assert_allclose(mod.ema_gz.numpy(), ref.ema, rtol=1e-9, atol=1e-14)
        assert mod.last["skip"] == rskip
        out.append((rskip, r))
    assert int(mod.skip_counter) == ref.skips
    # inference: the fixed affine with the running variance
    mod.eval()
    x = torch.randn(3, c, dtype=torch.float64)
    expect = w * x.numpy() / np.sqrt(ref.rv + 1e-5) + b
    np.testing.assert_allclose(mod(x).detach().numpy(), expect, rtol=1e-12)
    return out


def test_matches_reference_before_and_after_warmup_with_smoothing():
    out = _run_both(14, lambda i: 1.0 + 0.3 * (i % 3), m=4, warmup=6, clamp_start=8)
    assert not any(s for s, _ in out)


def test_matches_reference_on_the_ratio_clamps():
    # a 1000x batch after the clamp start: the smoothed variance jumps ~100x -> r clamped to 5
    out = _run_both(14, lambda i: 1000.0 if i == 10 else 1.0, m=3, warmup=4, clamp_start=5)
    rs = np.concatenate([r for _, r in out[5:]])
    assert rs.max() == pytest.approx(5.0) and (rs < 1.0).any()
    assert all((r == 1.0).all() for _, r in out[:5])


def test_matches_reference_on_the_outlier_filtration_branch():
    out = _run_both(16, lambda i: 60.0 if i in (9, 13) else 1.0, m=4, warmup=5, filtration=True, clamp_start=6)
    assert any(s for s, _ in out), "the outlier batch must trigger a skip"


def test_official_defaults():
    mod = UnifiedNorm(8)
    assert (mod.window_fp, mod.window_bp, mod.warmup_iters, mod.outlier_filtration, mod.eps, mod.momentum,
            mod.ratio_clamp) == (4, 4, 4000, False, 1e-5, 0.9, 5.0)


def _gradcheck_fn(mod):
    def f(x, w, b):
        mod.iters += 1
        return _UNFunction.apply(x, w, b, mod)
    return f


@pytest.mark.parametrize("kw", [dict(window=1), dict(window=4, momentum=0.0, warmup_iters=10**6)])
def test_gradcheck_where_compensation_is_identity(kw):
    torch.manual_seed(1)
    mod = UnifiedNorm(5, **kw).double()
    x = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(5, dtype=torch.float64) + 0.5).requires_grad_(True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_gradcheck_fn(mod), (x, w, b), eps=1e-6, atol=1e-6)


def test_gradcheck_detects_the_compensated_gradient():
    """With the EMA (momentum 0.9) the backward is deliberately not the exact gradient."""
    torch.manual_seed(1)
    mod = UnifiedNorm(5, window=4, warmup_iters=10**6).double()
    x = torch.randn(12, 5, dtype=torch.float64, requires_grad=True)
    w = (torch.rand(5, dtype=torch.float64) + 0.5).requires_grad_(True)
    b = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(_gradcheck_fn(mod), (x, w, b), eps=1e-6, atol=1e-6, raise_exception=False)


def test_scaled_warmup():
    s = scaled_un_spec({"kind": "un", "warmup_frac": 0.04, "clamp_frac": 0.04}, 250)
    assert s["warmup_iters"] == 10 and s["clamp_start"] == 10
    assert scaled_un_spec({"kind": "un", "warmup_frac": 0.0}, 250)["warmup_iters"] == 5  # at least window + 1
    assert scaled_un_spec({"kind": "ln"}, 250) == {"kind": "ln"}


# ------------------------------------------------------------------------------------------- folding
def _randomize(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, UnifiedNorm):
                m.running_var.copy_(torch.rand(m.channels, generator=gen, dtype=m.running_var.dtype) * 3 + 0.1)
                m.weight.copy_(torch.randn(m.channels, generator=gen, dtype=m.weight.dtype))
                m.bias.copy_(torch.randn(m.channels, generator=gen, dtype=m.bias.dtype))
            if hasattr(m, "bn"):
                m.bn.running_mean.copy_(torch.randn(m.channels, generator=gen))
                m.bn.running_var.copy_(torch.rand(m.channels, generator=gen) + 0.2)
                m.bn.weight.copy_(torch.randn(m.channels, generator=gen))
                m.bn.bias.copy_(torch.randn(m.channels, generator=gen))


@pytest.mark.parametrize("kind", ["un", "bn"])
def test_folding_is_exact(kind):
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    vit = ViT({"kind": kind}, dim=32, depth=2, heads=4).eval()
    lm = CausalLM({"kind": kind}, vocab=50, seqlen=16, dim=32, depth=2, heads=4).eval()
    for model, x in ((vit, torch.randn(3, 1, 28, 28)), (lm, torch.randint(0, 50, (2, 16)))):
        _randomize(model, g)
        folded = fold_norms(model)
        assert not any(isinstance(m, UnifiedNorm) or hasattr(m, "bn") for m in folded.modules())
        with torch.inference_mode():
            a, b = model(x), folded(x)
        assert (a - b).abs().max().item() <= 2e-5 * a.abs().max().item()
        with torch.inference_mode():
            a64, b64 = model.double()(x.double() if x.is_floating_point() else x), fold_norms(model)(
                x.double() if x.is_floating_point() else x)
        assert (a64 - b64).abs().max().item() <= 1e-12 * a64.abs().max().item()


def test_layernorm_does_not_fold():
    with pytest.raises(TypeError, match="cannot fold"):
        fold_norms(ViT({"kind": "ln"}, dim=16, depth=1, heads=2))


# ----------------------------------------------------------------------------------------------- IDX
def _idx_bytes(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def test_idx_reader_on_hand_made_files(tmp_path):
    imgs = bytes(range(2 * 3 * 4))
    (tmp_path / "a").write_bytes(_idx_bytes(0x08, (2, 3, 4), imgs))
    a = read_idx(tmp_path / "a")
    assert a.shape == (2, 3, 4) and a.dtype == np.uint8 and a[1, 2, 3] == 23 and a[0, 1, 0] == 4
    (tmp_path / "b.gz").write_bytes(gzip.compress(_idx_bytes(0x08, (3,), bytes([7, 0, 9]))))
    assert read_idx(tmp_path / "b.gz").tolist() == [7, 0, 9]
    (tmp_path / "c").write_bytes(_idx_bytes(0x0C, (2,), struct.pack(">2i", -5, 70000)))
    assert read_idx(tmp_path / "c").tolist() == [-5, 70000]
    (tmp_path / "bad").write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ImageSetError, match="bad magic"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx_bytes(0x08, (5,), b"\x00\x01"))
    with pytest.raises(ImageSetError, match="need 5"):
        read_idx(tmp_path / "short")
    arr = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path / "rt.gz", arr)
    assert (read_idx(tmp_path / "rt.gz") == arr).all()


def test_local_image_set(tmp_path):
    d = tmp_path / "set"
    d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("t10k", 4)):
        write_idx(d / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        (d / f"{split}-labels-idx1-ubyte").write_bytes(_idx_bytes(0x08, (n,), bytes(range(n))))
    meta = materialize({"source": "local", "path": str(d)}, tmp_path / "out.pt", tmp_path / "work")
    blob = torch.load(tmp_path / "out.pt")
    assert meta["sizes"] == {"train": 6, "test": 4}
    assert blob["test"]["labels"].tolist() == [0, 1, 2, 3] and blob["train"]["images"].shape == (6, 28, 28)


# ------------------------------------------------------------------------------------- tables, claims
def test_welch_ci_by_hand():
    d, lo, hi = welch_ci(np.array([80.0, 82.0, 84.0]), np.array([79.0, 80.0, 81.0]))
    se = math.sqrt(4 / 3 + 1 / 3)
    df = (4 / 3 + 1 / 3) ** 2 / ((4 / 3) ** 2 / 2 + (1 / 3) ** 2 / 2)
    assert d == pytest.approx(2.0) and df == pytest.approx(2.9412, abs=1e-3)
    assert hi - d == pytest.approx(4.303 * se)  # t quantile table at df 2 (floor of 2.94)


def _runs_df():
    rows = []
    for norm, role_, vals, coll in (("ln", "ln", [80, 81, 82], [0, 0, 0]), ("bn", "bn", [70, 72, 74], [0, 0, 0]),
                                    ("un", "un", [79, 81, 80], [0, 0, 0]),
                                    ("un-nofilt", "ablation", [81, 10, 80], [0, 1, 0])):
        for s, (v, c) in enumerate(zip(vals, coll)):
            rows.append({"task": "vision", "norm": norm, "seed": s, "stress": 0, "role": role_, "metric": "top1",
                         "value": float(v), "collapsed": c, "collapse_reason": "", "final_train_loss": 0.5,
                         "steps_run": 10, "un_skipped_steps": 0, "train_seconds": 1.0})
    return pd.DataFrame(rows)


def test_study_tables_and_claim_rules():
    per_seed, summary, filt = study_tables(_runs_df())
    s = summary.set_index("norm")
    assert s.loc["un", "gap_to_ln"] == pytest.approx(1.0) and s.loc["bn", "gap_to_ln"] == pytest.approx(9.0)
    assert s.loc["un-nofilt", "collapsed_runs"] == 1
    assert s.loc["bn", "gap_worse"] == pytest.approx(9.0) and s.loc["bn", "gap_worse_ci_lo"] > 1.0
    assert s.loc["bn", "bn_worse"] == 1
    # a norm with a collapsed run (LN without one) is worse for certain; its gap_to_ln stays the plain one
    assert s.loc["un-nofilt", "gap_worse"] == math.inf and s.loc["un-nofilt", "gap_worse_ci_lo"] == math.inf
    assert filt.iloc[0]["prevents"] == 1 and filt.iloc[0]["harms"] == 0
    tables = {"unified_norm_summary": summary, "unified_norm_filtration": filt}
    claim = {"id": "X", "paper": "p", "statement": "s", "paper_value": "v", "rule": {"kind": "all", "checks": [
        {"table": "unified_norm_summary", "column": "gap_to_ln", "op": "<=", "value": 1.0, "where": {"role": "un"}},
        {"table": "unified_norm_summary", "column": "gap_worse", "op": ">", "value": 1.0,
         "ci": ["gap_worse_ci_lo", "gap_worse_ci_hi"], "where": {"role": "bn"}}]}}
    assert evaluate_claim(claim, tables)["verdict"] == "reproduced"
    claim["rule"]["checks"][0]["value"] = 0.5
    assert evaluate_claim(claim, tables)["verdict"] == "not reproduced"
    anyc = {**claim, "rule": {"kind": "table_check", "table": "unified_norm_summary", "column": "collapsed_runs",
                              "op": ">=", "value": 1, "quantifier": "any"}}
    assert evaluate_claim(anyc, tables)["verdict"] == "reproduced"
    anyc["rule"].pop("quantifier")
    assert evaluate_claim(anyc, tables)["verdict"] == "not reproduced"
    assert evaluate_claim(claim, {})["verdict"] == "not run"


def test_settings_and_grid():
    cfg = settings({"seeds": [0, 1], "images": {"f": {"source": "local", "path": "x"}},
                    "norms": {"ln": {"kind": "ln"}, "u": {"kind": "un"}, "v": {"kind": "un"}},
                    "tasks": {"t": {"kind": "vision", "data": "f", "un": "u", "norms": ["ln", "u", "v"], "arch": {}}}})
    assert len(runs(cfg)) == 6 and role(cfg, "t", "u") == "un" and role(cfg, "t", "v") == "ablation"
    with pytest.raises(ValueError, match="unknown norm"):
        settings({"norms": {}, "tasks": {"t": {"kind": "lm", "data": "c", "norms": ["zz"], "arch": {}}}})


def random_image_set(path) -> None:
    """A seeded 28×28 uint8 image set in the images rule's format (64 train, 20 test, labels 0–9)."""
    rng = np.random.default_rng(0)
    blob = {s: {"images": torch.from_numpy(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                "labels": torch.arange(n) % 10} for s, n in (("train", 64), ("test", 20))}
    torch.save(blob, path)


def test_training_is_deterministic_and_logs_statistics(tmp_path):
    from lpbench.studies.unified_norm.train import train_run

    random_image_set(tmp_path / "img.pt")
    task = {"kind": "vision", "arch": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 1.0},
            "train": {"steps": 12, "batch": 16}, "eval": {"batch": 10}}
    spec = {"kind": "un", "outlier_filtration": True, "warmup_frac": 0.25, "clamp_frac": 0.5}
    torch.set_num_threads(1)
    m1, log1, _ = train_run(task, spec, 3, {"images": tmp_path / "img.pt"})
    m2, log2, _ = train_run(task, spec, 3, {"images": tmp_path / "img.pt"})
    pd.testing.assert_frame_equal(log1, log2)
    assert m1["value"] == m2["value"] and len(log1) == 12
    assert {"stat_batch", "stat_used", "stat_running", "skip"} <= set(log1.columns)
    # during warm-up UN normalizes with the batch statistic itself
    assert np.allclose(log1["stat_used"][:3], log1["stat_batch"][:3])


def test_un1_bn_worse_is_decided_by_the_welch_interval():
    """BN's point gap above 1.0 with an interval that reaches below it is undecided (inconclusive), not
    'worse'; an interval wholly below 1.0 is not reproduced."""
    df = _runs_df()
    df.loc[df["norm"] == "bn", "value"] = [70.0, 80.0, 88.0]      # mean 79.33: gap 1.67, wide interval
    _, summary, _ = study_tables(df)
    bn = summary.set_index("norm").loc["bn"]
    assert bn["gap_worse"] > 1.0 and bn["gap_worse_ci_lo"] < 1.0 < bn["gap_worse_ci_hi"]
    rule = {"kind": "table_check", "table": "unified_norm_summary", "column": "gap_worse", "op": ">", "value": 1.0,
            "ci": ["gap_worse_ci_lo", "gap_worse_ci_hi"], "where": {"role": "bn"}, "label": ["task"]}
    claim = {"id": "X", "paper": "p", "statement": "s", "paper_value": "v", "rule": rule}
    row = evaluate_claim(claim, {"unified_norm_summary": summary})
    assert row["verdict"] == "inconclusive" and row["point_verdict"] == "reproduced"
    assert math.isnan(bn["bn_worse"])                              # the same decision as a column
    df.loc[df["norm"] == "bn", "value"] = [83.0, 83.5, 82.5]       # better than LN: whole interval below 1
    _, summary, _ = study_tables(df)
    assert evaluate_claim(claim, {"unified_norm_summary": summary})["verdict"] == "not reproduced"
    assert summary.set_index("norm").loc["bn", "bn_worse"] == 0


# ------------------------------------------------------------------------------------------------- UN-3
@pytest.mark.parametrize("without, with_, outcome, reason", [
    (0, 0, "inconclusive", "no collapse without filtration: premise not met"),
    (2, 0, "reproduced", "filtration prevented the collapse that occurred without it"),
    (1, 3, "not reproduced", "collapse with and without filtration"),
    (0, 1, "not reproduced", "collapse only with filtration")])
def test_un3_four_outcome_tables(without, with_, outcome, reason):
    """The four hand-built outcome tables, through the filtration table, the UN-3 table and the ledger's
    table_check on its overall row (reproduced == 1: 1 / 0 / NaN -> reproduced / not reproduced /
    inconclusive)."""
    from lpbench.studies.unified_norm.verdicts import un3_table

    df = _runs_df()
    df["task"], df["stress"] = "vision-outliers", 1
    for norm, n in (("un-nofilt", without), ("un", with_)):
        idx = df.index[df["norm"] == norm]
        df.loc[idx, "collapsed"] = [1 if i < n else 0 for i in range(len(idx))]
    _, _, filt = study_tables(df)
    un3 = un3_table(filt)
    setting, overall = un3.iloc[0], un3.iloc[-1]
    assert list(un3["scope"]) == ["setting", "overall"]
    assert (setting["outcome"], setting["reason"]) == (outcome, reason)
    assert overall["outcome"] == outcome
    claim = {"id": "UN-3", "paper": "p", "statement": "s", "paper_value": "v",
             "rule": {"kind": "table_check", "table": "unified_norm_un3", "column": "reproduced", "op": "==",
                      "value": 1, "where": {"scope": "overall"}, "label": ["outcome", "reason"]}}
    row = evaluate_claim(claim, {"unified_norm_un3": un3})
    assert row["verdict"] == outcome
    if outcome == "inconclusive":
        assert "premise not met" in row["ours"]


def test_un3_overall_over_settings():
    from lpbench.studies.unified_norm.verdicts import un3_table

    filt = pd.DataFrame([{"task": "vision", "stress": 0, "seeds": 3, "collapsed_with_filtration": 0,
                          "collapsed_without_filtration": 0},
                         {"task": "vision-outliers", "stress": 1, "seeds": 3, "collapsed_with_filtration": 0,
                          "collapsed_without_filtration": 2}])
    assert un3_table(filt).iloc[-1]["outcome"] == "reproduced"          # inconclusive + reproduced
    filt.loc[0, "collapsed_with_filtration"] = 1
    assert un3_table(filt).iloc[-1]["outcome"] == "not reproduced"      # any setting refuting decides
    assert un3_table(filt.iloc[:0]).empty


# ------------------------------------------------------------------------------- outliers, schedule
def test_outlier_schedule_is_deterministic_for_a_seed():
    from lpbench.studies.unified_norm.outliers import outlier_schedule

    cfg = {"step_prob": 0.1, "token_frac": 0.01, "scale": 100.0, "start_frac": 0.1, "stop_frac": 0.9}
    a, b = outlier_schedule(cfg, 250, 64, 16, 1), outlier_schedule(cfg, 250, 64, 16, 1)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    c = outlier_schedule(cfg, 250, 64, 16, 2)
    assert a.keys() != c.keys()
    assert all(26 <= k <= 225 for k in a) and 5 <= len(a) <= 45       # ~20 of the 200 eligible steps
    assert all(v.shape == (10, 2) and len({tuple(p) for p in v.tolist()}) == 10 for v in a.values())
    assert all((v[:, 0] < 64).all() and (v[:, 1] < 16).all() for v in a.values())
    with pytest.raises(ValueError, match="unknown key"):
        outlier_schedule({"prob": 0.1}, 10, 2, 2, 0)


def test_inject_patches_scales_exactly_the_chosen_patches():
    from lpbench.studies.unified_norm.outliers import inject_patches

    x = torch.randn(2, 1, 28, 28)
    y = inject_patches(x, np.array([[1, 5]]), 7, 100.0)   # sample 1, patch row 1 col 1
    assert torch.equal(y[1, :, 7:14, 7:14], x[1, :, 7:14, 7:14] * 100.0)
    y[1, :, 7:14, 7:14] = x[1, :, 7:14, 7:14]
    assert torch.equal(y, x)


def test_un_schedule_readings():
    steps = 250
    scaled = scaled_un_spec({"kind": "un", "schedule": "scaled"}, steps)
    assert (scaled["warmup_iters"], scaled["clamp_start"], scaled["schedule"]) == (10, 10, "scaled")
    off = scaled_un_spec({"kind": "un", "outlier_filtration": True, "schedule": "official"}, steps)
    assert (off["warmup_iters"], off["clamp_start"], off["schedule"]) == (4000, 4000, "official")
    assert scaled_un_spec({"kind": "un", "schedule": "official", "warmup_iters": 500}, steps)["clamp_start"] == 1000
    assert scaled_un_spec({"kind": "un", "warmup_frac": 0.04, "clamp_frac": 0.04}, steps)["schedule"] == "scaled"
    with pytest.raises(ValueError, match="absolute"):
        scaled_un_spec({"kind": "un", "schedule": "official", "warmup_frac": 0.04}, steps)
    from lpbench.studies.unified_norm.norm import make_norm
    m = make_norm(off, 8)
    assert m.warmup_iters == 4000 and m.clamp_start == 4000


def test_outlier_training_run_marks_its_steps(tmp_path):
    from lpbench.studies.unified_norm.train import train_run

    random_image_set(tmp_path / "img.pt")
    task = {"kind": "vision", "arch": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 1.0},
            "train": {"steps": 12, "batch": 16}, "eval": {"batch": 10},
            "outliers": {"step_prob": 0.5, "token_frac": 0.05, "scale": 100.0, "start_frac": 0.0, "stop_frac": 1.0}}
    spec = {"kind": "un", "outlier_filtration": True, "warmup_frac": 0.25, "clamp_frac": 0.5}
    torch.set_num_threads(1)
    m, log, _ = train_run(task, spec, 3, {"images": tmp_path / "img.pt"})
    assert m["outlier_steps"] == int(log["outlier"].sum()) > 0
    hit = log[log["outlier"] == 1]
    assert (hit["stat_batch"].to_numpy() > 10 * log.loc[log["outlier"] == 0, "stat_batch"].median()).all()
    clean = {k: v for k, v in task.items() if k != "outliers"}
    m2, log2, _ = train_run(clean, spec, 3, {"images": tmp_path / "img.pt"})
    assert m2["outlier_steps"] == 0 and log2["outlier"].sum() == 0
