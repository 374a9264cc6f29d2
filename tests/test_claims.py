import math

import pandas as pd

from lpbench.claims import evaluate_claim, load_ledger
from pathlib import Path


def ppl(rows):
    return {"perplexity": pd.DataFrame(rows, columns=["model", "corpus", "method", "perplexity"])}


def claim(rule, **kw):
    return {"id": "X-1", "paper": "x", "statement": "s", "paper_value": "p", "rule": rule, **kw}


RULE = {"kind": "lowest", "metric": "perplexity", "best": "b", "among": ["a", "c"]}


def test_lowest_reproduced_and_not():
    t = ppl([("m", "c", "a", 10.0), ("m", "c", "b", 9.0), ("m", "c", "c", 12.0)])
    assert evaluate_claim(claim(RULE), t)["verdict"] == "reproduced"
    t = ppl([("m", "c", "a", 8.0), ("m", "c", "b", 9.0), ("m", "c", "c", 12.0)])
    assert evaluate_claim(claim(RULE), t)["verdict"] == "not reproduced"


def test_missing_results_mean_not_run_with_reason():
    t = ppl([("m", "c", "a", 10.0)])
    row = evaluate_claim(claim(RULE, not_run_reason="method b not built"), t)
    assert row["verdict"] == "not run" and "method b not built" in row["reason"] and "'b'" in row["reason"]


def test_nan_is_inconclusive_not_averaged():
    t = ppl([("m", "c", "a", 10.0), ("m", "c", "b", math.nan), ("m", "c", "c", 12.0)])
    assert evaluate_claim(claim(RULE), t)["verdict"] == "inconclusive"


def test_within_rel_and_ordered():
    t = ppl([("m", "c", "ref", 10.0), ("m", "c", "x", 10.04), ("m", "c", "y", 10.2)])
    w = {"kind": "within_rel", "metric": "perplexity", "method": "x", "reference": "ref", "max_rel": 0.005}
    assert evaluate_claim(claim(w), t)["verdict"] == "reproduced"
    assert evaluate_claim(claim({**w, "method": "y"}), t)["verdict"] == "not reproduced"
    o = {"kind": "ordered", "metric": "perplexity", "methods": ["y", "x", "ref"], "slack_rel": 0.0}
    assert evaluate_claim(claim(o), t)["verdict"] == "reproduced"
    assert evaluate_claim(claim({**o, "methods": ["ref", "y"]}), t)["verdict"] == "not reproduced"


def test_ledger_holds_every_claim_id_of_the_papers():
    ids = {c["id"] for c in load_ledger(Path(__file__).parents[1] / "config" / "claims.yaml")}
    expected = {f"SLANC-{i}" for i in (1, 2, 3)} | {f"RRS-{i}" for i in range(1, 5)} | \
        {f"ITER-{i}" for i in range(1, 5)} | {f"UN-{i}" for i in (1, 2, 3)} | {f"TENDER-{i}" for i in range(1, 5)}
    assert ids == expected
