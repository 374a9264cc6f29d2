"""The ledger's kl_check column (lpbench.claims.supporting) on hand-built evaluations."""
import numpy as np

from lpbench.claims.supporting import kl_checks


def _result(model, method, kl):
    kl = np.asarray(kl, dtype=float).reshape(2, -1)
    return {"model": {"id": model}, "corpus": {"id": "c"}, "method": {"name": method},
            "metrics": {"kl": kl.tolist(), "token_nll": np.ones_like(kl).tolist()}}


def test_lowest_on_kl_agrees_or_is_named_in_the_reason():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, 512)
    results = [_result("m", "a", 0.5 * base), _result("m", "b", base), _result("m", "fp32", 0 * base)]
    claim = {"id": "X-1", "rule": {"kind": "lowest", "best": "a", "among": ["b"]}}
    texts, notes = kl_checks([claim], ["reproduced"], results)
    assert texts[0].startswith("supporting") and "0.5 [0.5, 0.5]" in texts[0] and texts[0].endswith("reproduced")
    assert notes == [""]                                              # KL says the same: nothing added
    texts, notes = kl_checks([claim], ["not reproduced"], results)
    assert notes == ["the supporting KL comparison says reproduced (kl_check)"]


def test_within_rel_reports_the_mean_kl_and_non_comparative_claims_have_none():
    results = [_result("m", "q", [0.25] * 8)]
    claims = [{"id": "X-2", "rule": {"kind": "within_rel", "method": "q", "reference": "fp32"}},
              {"id": "X-3", "rule": {"kind": "table_check", "table": "t"}}]
    texts, notes = kl_checks(claims, ["reproduced", "reproduced"], results)
    assert texts[0] == "supporting, mean KL(fp32 ‖ q) nats/token: m: 0.25 [0.25, 0.25]"
    assert texts[1] == "" and notes == ["", ""]
