"""Fidelity to FP32: per-token KL / top-1 / Δp against independent references, and their intervals."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from helpers import tiny_model
from lpbench import fidelity
from lpbench.data import eval_windows
from lpbench.evaluate import encoder_error, evaluate_causal, load_reference, save_reference, tokens_sha256


def _windows(n=4, seqlen=24, seed=0):
    ids = torch.randint(0, 101, (2000,), generator=torch.Generator().manual_seed(seed)).int()
    return eval_windows(ids, seqlen, n)


def _perturbed(scale=0.02):
    model = tiny_model("llama")
    with torch.no_grad():
        w = model.model.layers[0].mlp.down_proj.weight
        w.add_(scale * torch.randn(w.shape, generator=torch.Generator().manual_seed(5)))
    return model


def brute_force(p_model, q_model, windows):
    """Independent reference: both models' full next-token distributions in float64, explicit loops."""
    kl, top1, dp = [], [], []
    with torch.no_grad():
        for w in windows:
            lp = torch.log_softmax(p_model(w[None]).logits[0].double(), -1)
            lq = torch.log_softmax(q_model(w[None]).logits[0].double(), -1)
            for t in range(len(w) - 1):
                kl.append(float((lp[t].exp() * (lp[t] - lq[t])).sum()))
                top1.append(int(lp[t].argmax() == lq[t].argmax()))
                dp.append(float(lq[t, w[t + 1]].exp() - lp[t, w[t + 1]].exp()))
    return np.array(kl), np.array(top1), np.array(dp)


def flat(lists):
    return np.concatenate([np.asarray(w, dtype=np.float64) for w in lists])


def test_kl_equals_full_vocabulary_brute_force_when_k_is_the_vocabulary_and_bounds_it_below_otherwise():
    windows = _windows()
    p_model, q_model = tiny_model("llama"), _perturbed()
    kl_ref, top1_ref, dp_ref = brute_force(p_model, q_model, windows)
    assert kl_ref.mean() > 1e-4                                  # a real difference, not the noise floor
    _, ref = evaluate_causal(p_model, windows, 2, False, top_k=101)
    assert ref["ids"].shape[-1] == 101 and torch.isneginf(ref["tail"]).all()    # K = V: empty tail
    got, _ = evaluate_causal(q_model, windows, 2, False, reference=ref)
    np.testing.assert_allclose(flat(got["kl"]), kl_ref, rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(flat(got["top1_agree"]), top1_ref)
    np.testing.assert_allclose(flat(got["dp"]), dp_ref, rtol=1e-4, atol=1e-7)
    assert math.isclose(got["mean_kl"], kl_ref.mean(), rel_tol=1e-4)
    for k in (1, 5, 40):
        _, ref_k = evaluate_causal(p_model, windows, 2, False, top_k=k)
        got_k, _ = evaluate_causal(q_model, windows, 1, False, reference=ref_k)
        lower = flat(got_k["kl"])
        assert (lower <= kl_ref + 1e-7).all() and lower.mean() < kl_ref.mean()
        np.testing.assert_array_equal(flat(got_k["top1_agree"]), top1_ref)     # K does not change these
        np.testing.assert_allclose(flat(got_k["dp"]), dp_ref, rtol=1e-4, atol=1e-7)


def test_model_against_itself_gives_zero_kl_full_agreement_zero_dp():
    windows = _windows()
    model = tiny_model("llama")
    own, ref = evaluate_causal(model, windows, 2, False, top_k=16)         # the FP32 job's self-comparison
    again, _ = evaluate_causal(model, windows, 1, False, reference=ref)     # a second job reading the file
    for got in (own, again):
        assert set(flat(got["kl"])) == {0.0} and set(flat(got["top1_agree"])) == {1.0}
        assert set(flat(got["dp"])) == {0.0}
        assert got["mean_kl"] == 0.0 and got["top1_agreement"] == 1.0
    assert again["token_nll"] == own["token_nll"]


class Fixed(nn.Module):
    """A 'model' whose next-token distribution at position t is probs[t] (vocabulary of 4 words)."""

    def __init__(self, probs):
        super().__init__()
        self.logp = torch.log(torch.tensor(probs, dtype=torch.float32))
        self.device = torch.device("cpu")

    def forward(self, batch, use_cache=False):
        logits = torch.zeros(batch.shape[0], batch.shape[1], self.logp.shape[-1])
        logits[:, : len(self.logp)] = self.logp
        return SimpleNamespace(logits=logits)


P = [[0.5, 0.25, 0.125, 0.125], [0.1, 0.2, 0.3, 0.4], [0.7, 0.15, 0.1, 0.05]]
Q = [[0.25, 0.375, 0.25, 0.125], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]


@pytest.mark.parametrize("k", [2, 4])
def test_hand_computed_three_tokens_four_words(k):
    window = torch.tensor([[0, 1, 3, 2]])             # targets: word 1, word 3, word 2
    _, ref = evaluate_causal(Fixed(P), window, 1, False, top_k=k)
    got, _ = evaluate_causal(Fixed(Q), window, 1, False, reference=ref)
    ln2 = math.log(2)
    # token 1, K = 2: P's top-2 {0: .5, 1: .25} + tail .25; Q there .25, .375, tail .375
    #   .5 ln(.5/.25) + .25 ln(.25/.375) + .25 ln(.25/.375) = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3)
    # token 1, K = 4 (exact): .5 ln 2 + .25 ln(2/3) + .125 ln(.5) + .125 ln 1 = .375 ln 2 + .25 ln(2/3)
    kl1 = 0.5 * math.log(4 / 3) if k == 2 else 0.375 * ln2 + 0.25 * math.log(2 / 3)
    # token 2: P = Q; token 3: every ratio but word 0's is 1/2, so coarsening loses nothing:
    #   .7 ln(.7/.4) + .3 ln(.5)
    kl3 = 0.7 * math.log(1.75) - 0.3 * ln2
    np.testing.assert_allclose(got["kl"][0], [kl1, 0.0, kl3], rtol=1e-5, atol=1e-7)
    assert got["top1_agree"][0] == [0, 1, 1]            # argmax: 0 vs 1, 3 vs 3, 0 vs 0
    np.testing.assert_allclose(got["dp"][0], [0.375 - 0.25, 0.0, 0.2 - 0.1], rtol=1e-5, atol=1e-7)
    assert math.isclose(got["top1_agreement"], 2 / 3)


def test_nan_logits_are_reported_not_averaged():
    windows = _windows()
    p_model = tiny_model("llama")
    _, ref = evaluate_causal(p_model, windows, 1, False, top_k=8)
    q_model, calls = _perturbed(), {"n": 0}

    def poison(_mod, _args, out):
        calls["n"] += 1
        if calls["n"] == 2:                       # window 1
            out.logits[0, 3, 5] = float("nan")
        return out

    q_model.register_forward_hook(poison)
    got, _ = evaluate_causal(q_model, windows, 1, False, reference=ref)
    assert got["perplexity"] is None and got["nonfinite_windows"] == [1]
    for key in ("kl", "top1_agree", "dp"):
        assert got[key][1] is None and all(w is not None for i, w in enumerate(got[key]) if i != 1)
    assert got["mean_kl"] is None and got["top1_agreement"] is None
    assert got["fidelity"]["windows_without"] == [1] and "non-finite" in got["fidelity"]["error"]
    # a non-finite window of the FP32 reference: no metrics for that window in any comparison
    bad_ref = {**ref, "finite": ref["finite"].clone()}
    bad_ref["finite"][2] = False
    got2, _ = evaluate_causal(_perturbed(), windows, 1, False, reference=bad_ref)
    assert got2["kl"][2] is None and got2["fidelity"]["windows_without"] == [2] and got2["mean_kl"] is None
    # the table keeps the row, with the error and no averaged value
    res = [_result("m", "fp32", {"kind": "perplexity", **_fid_metrics(ref_own := evaluate_causal(
        p_model, windows, 1, False, top_k=8)[0])}), _result("m", "q", {"kind": "perplexity", **got})]
    assert ref_own["mean_kl"] == 0.0
    row = fidelity.fidelity_table(res).set_index("method").loc["q"]
    assert pd_isna(row["mean_kl"]) and "NaN/inf" in row["error"]


def pd_isna(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def test_reference_file_round_trip_and_window_check(tmp_path):
    windows = _windows()
    _, ref = evaluate_causal(tiny_model("llama"), windows, 2, False, top_k=8)
    path = tmp_path / "fp32.topk.pt"
    save_reference(path, ref, {"tokens_sha256": tokens_sha256(windows), "top_k": 8})
    back = load_reference(path, windows)
    assert back["ids"].dtype == torch.int64 and torch.equal(back["ids"], ref["ids"])
    assert path.stat().st_size < 4 * 23 * 8 * 8 + 10_000          # 8 bytes per (token, k) + small
    with pytest.raises(ValueError, match="other evaluation windows"):
        load_reference(path, _windows(seed=1))


def test_encoder_cosine_and_sqnr_known_answers():
    r = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(0))
    same = encoder_error(r, r.clone())
    assert same["sqnr_db"] is None and same["mean_token_cosine"] == pytest.approx(1.0)
    noisy = encoder_error(r, 1.1 * r)             # noise = 0.1 x signal in every token: SQNR = 20 dB exactly
    assert noisy["sqnr_db"] == pytest.approx(20.0) and noisy["mean_token_cosine"] == pytest.approx(1.0)
    sig, noise = flat(noisy["token_signal_power"]), flat(noisy["token_noise_power"])
    ci = fidelity.sqnr_ci(sig, noise, block=4)
    assert ci["sqnr_db"] == pytest.approx(20.0) and ci["ci_low"] == pytest.approx(20.0)
    assert ci["ci_high"] == pytest.approx(20.0)
    bad = r.clone()
    bad[1, 2, 3] = float("inf")
    rep = encoder_error(r, bad)
    assert rep["nonfinite_windows"] == [1] and rep["token_cosine"][1] is None and rep["sqnr_db"] is None


# ---- intervals ----------------------------------------------------------------------------------------
def test_constant_series_give_exact_intervals():
    ci = fidelity.mean_ci(np.full(500, 0.03))
    assert ci["mean"] == pytest.approx(0.03) and ci["ci_low"] == pytest.approx(0.03)
    assert ci["ci_high"] == pytest.approx(0.03)
    a = np.random.default_rng(0).exponential(0.01, 700)
    r = fidelity.kl_ratio_ci(a, 2 * a)            # paired: every resample sees the same ratio 1/2
    assert r["ratio"] == pytest.approx(0.5) and r["ci_low"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="zero mean KL"):
        fidelity.kl_ratio_ci(a, np.zeros_like(a))


def test_block_bootstrap_interval_covers_the_true_mean():
    """Known answer: AR(1) KL-like series (autocorrelated, as per-token metrics of running text are) with
    true mean 0.05; the 95 % interval must contain it in about 95 % of independent replications."""
    hits, reps = 0, 200
    for s in range(reps):
        rng = np.random.default_rng(100 + s)
        e = rng.normal(size=1024)
        x = np.empty_like(e)
        x[0] = e[0]
        for t in range(1, len(e)):
            x[t] = 0.6 * x[t - 1] + e[t]
        ci = fidelity.mean_ci(0.05 + 0.01 * x, resamples=500)
        hits += ci["ci_low"] <= 0.05 <= ci["ci_high"]
    assert 0.88 <= hits / reps <= 0.99, hits


def test_ratio_to_best_rechooses_the_competitor():
    rng = np.random.default_rng(1)
    a = rng.exponential(0.02, 1000)
    b, c = 2 * a, 4 * a
    r = fidelity.kl_ratio_to_best_ci(a, [c, b])
    assert r["best"] == 1 and r["ratio"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5)


# ---- kl_check and the table --------------------------------------------------------------------------
def _result(model, method, metrics, corpus="c"):
    return {"model": {"id": model, "caveat": ""}, "corpus": {"id": corpus}, "method": {"name": method,
            "kind": method}, "metrics": metrics}


def _fid_metrics(m):
    return {k: m[k] for k in ("token_nll", "kl", "top1_agree", "dp", "fidelity", "perplexity", "error")
            if k in m}


def _series_result(model, method, kl, nll=None):
    kl = np.asarray(kl)
    n = len(kl)
    return _result(model, method, {"kind": "perplexity", "kl": [kl.tolist()], "top1_agree": [[1] * n],
                                   "dp": [[0.0] * n], "token_nll": [list(nll if nll is not None else np.ones(n))],
                                   "fidelity": {"reference": "fp32", "top_k": 4, "vocab": 10}})


def test_kl_check_per_model_ratio_verdicts_and_missing_runs():
    rng = np.random.default_rng(2)
    base = rng.exponential(0.05, 600)
    res = [_series_result("m1", "new", 0.5 * base), _series_result("m1", "old", base),
           _series_result("m1", "other", 3 * base),
           _series_result("m2", "new", 2 * base), _series_result("m2", "old", base)]
    out = fidelity.kl_check(res, "new", ["old", "other"], models=["m1", "m2", "m3"])
    c = {x["model"]: x for x in out["comparisons"]}
    assert c["m1"]["ratio"] == pytest.approx(0.5) and c["m1"]["best"] == "old" and c["m1"]["verdict"] == "reproduced"
    assert c["m2"]["verdict"] == "not run" and "no evaluation of other" in c["m2"]["reason"]
    assert c["m3"]["verdict"] == "not run" and out["verdict"] == "reproduced"
    assert out["text"].startswith("supporting") and "m1: 0.5 [0.5, 0.5] vs old" in out["text"]
    worse = fidelity.kl_check(res, "new", ["old"])
    assert worse["verdict"] == "not reproduced"                   # m2: twice the KL of old


def test_fidelity_table_rows_and_ppl_ratio():
    n = 300
    rng = np.random.default_rng(3)
    nll = rng.exponential(3.0, n)
    res = [_series_result("m", "fp32", np.zeros(n), nll), _series_result("m", "q", rng.exponential(0.1, n), nll + 0.01)]
    df = fidelity.fidelity_table(res).set_index("method")
    assert df.loc["fp32", "mean_kl"] == 0.0 and df.loc["fp32", "ppl_ratio"] == pytest.approx(1.0)
    assert df.loc["q", "ppl_ratio"] == pytest.approx(math.exp(0.01))
    assert df.loc["q", "kl_ci_low"] <= df.loc["q", "mean_kl"] <= df.loc["q", "kl_ci_high"]
    assert df.loc["q", "top1_agreement"] == 1.0 and df.loc["q", "dp_p50"] == 0.0
    md = fidelity.markdown(df.reset_index(), "t")
    assert "ppl ratio to FP32 [CI]" in md and "[" in md
