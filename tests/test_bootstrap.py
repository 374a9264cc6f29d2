"""Known-answer tests of the paired block bootstrap (lpbench.bootstrap)."""
import math
import time

import numpy as np
import pytest

from lpbench import bootstrap

from lpbench.bootstrap import (BLOCK, as_series, circular_block_sums, combine, decide, perplexity_ci,
                               ratio_ci, ratio_to_best_ci, resampled_means)


def _nll(n=2044, seed=1):
    rng = np.random.default_rng(seed)
    # autocorrelated, positive, text-like NLLs: an AR(1) difficulty plus noise
    z = np.zeros(n)
    for i in range(1, n):
        z[i] = 0.9 * z[i - 1] + rng.normal(0, 0.3)
    return np.abs(3.0 + z + rng.normal(0, 1.0, n)).astype(np.float32).astype(np.float64)


def test_identical_methods_give_one_and_a_tight_interval():
    x = _nll()
    r = ratio_ci(x, x.copy())
    assert r["ratio"] == 1.0 and r["ci_low"] == 1.0 and r["ci_high"] == 1.0


@pytest.mark.parametrize("shift", [0.25, -0.1, 1e-3, 2.0])
def test_constant_shift_gives_exp_shift_exactly(shift):
    x = _nll()
    r = ratio_ci(x + shift, x)
    want = math.exp(shift)
    for k in ("ratio", "ci_low", "ci_high"):
        assert r[k] == pytest.approx(want, rel=1e-12, abs=0)


def test_noise_gives_an_interval_around_the_point_that_covers_the_truth():
    x = _nll(seed=2)
    rng = np.random.default_rng(3)
    y = x + rng.normal(0, 0.5, x.size)          # same expected NLL: true ratio 1
    r = ratio_ci(y, x)
    assert r["ci_low"] < r["ratio"] < r["ci_high"]
    assert r["ci_low"] < 1.0 < r["ci_high"]
    assert r["ci_high"] - r["ci_low"] < 0.1


def test_blocks_widen_the_interval_for_autocorrelated_differences():
    rng = np.random.default_rng(4)
    n = 2048
    slow = np.repeat(rng.normal(0, 0.4, n // 64), 64)     # differences correlated over 64 tokens
    x = _nll(n)
    wide = ratio_ci(x + slow, x, block=64)
    narrow = ratio_ci(x + slow, x, block=1)
    assert (wide["ci_high"] - wide["ci_low"]) > 2 * (narrow["ci_high"] - narrow["ci_low"])


def test_circular_block_sums_against_a_loop():
    x = np.arange(10, dtype=float) ** 2
    got = circular_block_sums(x, 4)
    want = [sum(x[(s + j) % 10] for j in range(4)) for s in range(10)]
    np.testing.assert_allclose(got, want)
    got = circular_block_sums(x, 13)       # a block longer than the series wraps more than once
    want = [sum(x[(s + j) % 10] for j in range(13)) for s in range(10)]
    np.testing.assert_allclose(got, want)


def test_pairing_uses_the_same_positions_for_every_method():
    x = _nll()
    m = resampled_means(np.stack([x, x + 1.0]))
    np.testing.assert_allclose(m[1] - m[0], 1.0, rtol=0, atol=1e-12)


def test_ratio_to_best_equals_plain_ratio_with_one_competitor_and_rechooses_best():
    x, y = _nll(seed=5), _nll(seed=6)
    assert ratio_to_best_ci(x, [y]) == pytest.approx(ratio_ci(x, y))
    r = ratio_to_best_ci(x, [y + 5.0, y])       # the best competitor is y
    assert r["ratio"] == pytest.approx(ratio_ci(x, y)["ratio"])


def test_perplexity_ci_and_seed_fixed():
    x = _nll()
    a, b = perplexity_ci(x), perplexity_ci(x)
    assert a == b
    assert a["perplexity"] == pytest.approx(math.exp(x.mean()))
    assert a["ci_low"] < a["perplexity"] < a["ci_high"]


def test_decide_and_combine():
    assert decide(0.9, 0.99, "<=", 1.0) == "reproduced"
    assert decide(1.01, 1.2, "<=", 1.0) == "not reproduced"
    assert decide(0.9, 1.1, "<=", 1.0) == "inconclusive"
    assert decide(1.01, 1.2, ">=", 1.0) == "reproduced"
    assert decide(0.999, 1.001, "within", 0.995, 1.005) == "reproduced"
    assert decide(1.01, 1.02, "within", 0.995, 1.005) == "not reproduced"
    assert decide(1.0, 1.01, "within", 0.995, 1.005) == "inconclusive"
    assert combine(["reproduced", "reproduced"]) == "reproduced"
    assert combine(["reproduced", "inconclusive"]) == "inconclusive"
    assert combine(["inconclusive", "not reproduced"]) == "not reproduced"


def test_series_from_stored_windows():
    assert as_series([[1.0, 2.0], None]) is None
    assert as_series([]) is None
    np.testing.assert_array_equal(as_series([[1.0, 2.0], [3.0]]), [1.0, 2.0, 3.0])


def test_vectorized_and_fast():
    x = _nll(20_000)
    t = time.perf_counter()
    for _ in range(10):
        ratio_ci(x + 0.01, x)
    assert (time.perf_counter() - t) / 10 < 0.5
    assert BLOCK == 32


def test_paired_ratio_ci_known_answers():
    from lpbench.bootstrap import paired_ratio_ci

    b = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    r = paired_ratio_ci(1.25 * b, b)                       # a constant ratio: point and both ends exact
    assert (r["ratio"] == pytest.approx(1.25) and r["ci_low"] == pytest.approx(1.25)
            and r["ci_high"] == pytest.approx(1.25))
    a = np.array([1.1, 0.9, 1.05, 0.95, 1.0])            # noise around 1: the interval straddles 1
    r = paired_ratio_ci(a, np.ones(5))
    assert r["ci_low"] < 1.0 < r["ci_high"]
    assert r["ratio"] == pytest.approx(float(np.exp(np.log(a).mean())))
    inv = paired_ratio_ci(np.ones(5), a)                  # swapping the pair inverts point and interval
    assert inv["ratio"] == pytest.approx(1 / r["ratio"])
    assert inv["ci_low"] == pytest.approx(1 / r["ci_high"]) and inv["ci_high"] == pytest.approx(1 / r["ci_low"])
    with pytest.raises(ValueError):
        paired_ratio_ci(np.ones(3), np.ones(4))


# ---- two levels: seeds, then token blocks -------------------------------------------------------------------
def _seed_nll(seed, n=2044):
    g = np.random.default_rng(seed)
    return g.gamma(2.0, 1.5, n) + np.repeat(g.normal(0, 0.5, n // 4 + 1), 4)[:n]   # autocorrelated, positive


def test_seed_ci_identical_methods_give_exactly_one():
    a = {s: _seed_nll(s) for s in (0, 1, 2)}
    for ci in (bootstrap.seed_ratio_ci(a, dict(a)), bootstrap.seed_ratio_to_best_ci(a, [dict(a), dict(a)])):
        assert ci["ratio"] == 1.0 and ci["ci_low"] == 1.0 and ci["ci_high"] == 1.0
        assert ci["seeds"] == [0, 1, 2] and all(v["ratio"] == 1.0 for v in ci["per_seed"].values())


def test_seed_ci_covers_known_seed_shifts():
    """Seed s of A is B's NLL plus a constant c_s: every per-seed ratio is exactly exp(c_s), the pooled
    point is exp(mean c), and the interval — which now varies with the seed draw — contains it and stays
    within [exp(min c), exp(max c)] (a token-only interval at any one seed would be a single point)."""
    shifts = {0: 0.0, 1: 0.1, 2: 0.2}
    b = {s: _seed_nll(10 + s) for s in shifts}
    a = {s: b[s] + c for s, c in shifts.items()}
    ci = bootstrap.seed_ratio_ci(a, b)
    assert ci["ratio"] == pytest.approx(math.exp(0.1), rel=1e-12)
    assert ci["ci_low"] <= math.exp(0.1) <= ci["ci_high"]
    assert math.exp(0.0) - 1e-12 <= ci["ci_low"] < ci["ci_high"] <= math.exp(0.2) + 1e-12
    for s, c in shifts.items():
        assert ci["per_seed"][s]["ratio"] == pytest.approx(math.exp(c), rel=1e-12)
    # a competitor that was not replicated (one series) is read at every seed
    one = bootstrap.seed_ratio_ci({s: x + 0.05 for s, x in zip(shifts, [_seed_nll(7)] * 3)}, {None: _seed_nll(7)})
    assert one["ratio"] == pytest.approx(math.exp(0.05)) and one["ci_low"] == pytest.approx(math.exp(0.05))


def test_seed_ci_with_one_seed_is_the_token_only_ci():
    a, b, c = _seed_nll(1), _seed_nll(2), _seed_nll(3)
    assert {k: v for k, v in bootstrap.seed_ratio_ci({0: a}, {0: b}).items()
            if k in ("ratio", "ci_low", "ci_high", "tokens")} == bootstrap.ratio_ci(a, b)
    two = bootstrap.seed_ratio_to_best_ci({5: a}, [{None: b}, {5: c}])
    assert {k: two[k] for k in ("ratio", "ci_low", "ci_high", "tokens")} == bootstrap.ratio_to_best_ci(a, [b, c])


def test_seed_ci_pairs_by_seed_and_checks_seed_sets():
    """Pairing: A and B share a large per-seed offset (the same rotation draw moves both); the interval of the
    ratio does not see it. Unpaired seed sets are an error."""
    base = {s: _seed_nll(20 + s) + 3 * s for s in (0, 1, 2)}
    a = {s: x * 1.0 + 0.01 for s, x in base.items()}
    ci = bootstrap.seed_ratio_ci(a, base)
    assert ci["ci_low"] == pytest.approx(math.exp(0.01)) and ci["ci_high"] == pytest.approx(math.exp(0.01))
    with pytest.raises(ValueError, match="different seeds"):
        bootstrap.seed_ratio_ci({0: _seed_nll(0), 1: _seed_nll(1)}, {0: _seed_nll(0), 2: _seed_nll(2)})
    with pytest.raises(ValueError, match="unpaired"):
        bootstrap.seed_ratio_ci({0: _seed_nll(0)}, {0: _seed_nll(0)[:-1]})


def test_seed_perplexity_ci_one_seed_is_perplexity_ci_and_spread_widens():
    x = _seed_nll(4)
    one, ref = bootstrap.seed_perplexity_ci({0: x}), perplexity_ci(x)
    assert one["perplexity"] == ref["perplexity"]
    assert one["ci_low"] == pytest.approx(ref["ci_low"], rel=1e-12)
    assert one["ci_high"] == pytest.approx(ref["ci_high"], rel=1e-12)
    three = bootstrap.seed_perplexity_ci({0: x, 1: x + 0.2, 2: x + 0.4})
    assert three["perplexity"] == pytest.approx(ref["perplexity"] * math.exp(0.2), rel=1e-12)
    assert three["ci_high"] / three["ci_low"] > ref["ci_high"] / ref["ci_low"]
