import math

import torch

from lpbench.data import calibration_windows, eval_windows
from lpbench.evaluate import perplexity
from helpers import tiny_model


def hand_perplexity(model, windows):
    """Independent reference: an explicit loop over windows and positions in float64."""
    total, count = 0.0, 0
    with torch.no_grad():
        for w in windows:
            logits = model(w[None]).logits[0].double()
            for t in range(len(w) - 1):
                logp = logits[t] - torch.logsumexp(logits[t], 0)
                total -= logp[w[t + 1]].item()
                count += 1
    return math.exp(total / count)


def test_perplexity_equals_hand_written_nll_loop():
    model = tiny_model("llama")
    ids = torch.randint(0, 101, (1000,), generator=torch.Generator().manual_seed(0)).int()
    windows = eval_windows(ids, 32, 5)
    got = perplexity(model, windows, batch_size=2, progress=False)
    assert got["nonfinite_windows"] == []
    assert math.isclose(got["perplexity"], hand_perplexity(model, windows), rel_tol=1e-6)
    assert got["predicted_tokens"] == 5 * 31


def test_windows_are_non_overlapping_and_drop_the_tail():
    ids = torch.arange(100, dtype=torch.int32)
    w = eval_windows(ids, 30)
    assert w.shape == (3, 30) and w.flatten().tolist() == list(range(90))
    wb = eval_windows(ids, 30, bos_id=-1)
    assert (wb[:, 0] == -1).all() and wb[:, 1:].flatten().tolist() == list(range(87))
    assert eval_windows(ids, 30, n_windows=2).shape == (2, 30)


def test_calibration_windows_are_seeded():
    ids = torch.arange(1000, dtype=torch.int32)
    a, b = calibration_windows(ids, 16, 4, seed=0), calibration_windows(ids, 16, 4, seed=0)
    assert torch.equal(a, b)
    assert not torch.equal(a, calibration_windows(ids, 16, 4, seed=1))
    assert ((a[:, 1:] - a[:, :-1]) == 1).all()  # contiguous slices of the text


def test_nonfinite_logits_are_reported_not_averaged():
    model = tiny_model("llama")
    ids = torch.randint(0, 101, (200,), generator=torch.Generator().manual_seed(1)).int()
    windows = eval_windows(ids, 32, 4)
    calls = {"n": 0}

    def poison(_mod, _args, out):
        calls["n"] += 1
        if calls["n"] == 2:  # second batch (window index 1)
            out.logits[0, 3, 5] = float("nan")
        return out

    model.register_forward_hook(poison)
    got = perplexity(model, windows, batch_size=1, progress=False)
    assert got["perplexity"] is None and got["nonfinite_windows"] == [1]
    assert "NaN/inf" in got["error"]
