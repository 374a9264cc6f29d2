import math

import pytest

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


# ---- confidence intervals, basis, scope, underdetermined -----------------------------------------------
import numpy as np  # noqa: E402

from lpbench.claims import BASES, COLUMNS, evaluate_ledger, load_nll, to_markdown  # noqa: E402


def _series(seed, n=2044, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(3.5, 1.2, n)) + shift


def test_within_rel_with_ci_reproduced_inconclusive_not_reproduced():
    base = _series(0)
    w = {"kind": "within_rel", "metric": "perplexity", "method": "x", "reference": "ref", "max_rel": 0.005}
    t = ppl([("m", "c", "ref", math.exp(base.mean())), ("m", "c", "x", math.exp(base.mean() + 1e-4))])
    row = evaluate_claim(claim(w), t, {("m", "ref"): base, ("m", "x"): base + 1e-4})
    assert row["verdict"] == "reproduced" and row["ci_low"] == row["ci_high"] == pytest.approx(math.exp(1e-4))
    noisy = base + np.random.default_rng(1).normal(0, 0.3, base.size)   # same expectation, wide CI
    t2 = ppl([("m", "c", "ref", math.exp(base.mean())), ("m", "c", "x", math.exp(noisy.mean()))])
    row = evaluate_claim(claim(w), t2, {("m", "ref"): base, ("m", "x"): noisy})
    assert row["verdict"] == "inconclusive" and (row["ci_low"] < 1 - 0.005 or row["ci_high"] > 1.005)
    t3 = ppl([("m", "c", "ref", math.exp(base.mean())), ("m", "c", "x", math.exp(base.mean() + 0.1))])
    row = evaluate_claim(claim(w), t3, {("m", "ref"): base, ("m", "x"): base + 0.1})
    assert row["verdict"] == "not reproduced" and row["point_verdict"] == "not reproduced"
    assert "95% CI" in row["reason"]


def test_lowest_with_ci_needs_the_whole_interval_below_one():
    a, c = _series(2), _series(4)
    noise = np.random.default_rng(5).normal(0.0, 0.3, a.size)
    close = a + noise - noise.mean() + 0.003     # b better than "close" by 0.3 % on average: within noise
    nll = {("m", "b"): a, ("m", "a"): close, ("m", "c"): c + 1.0}
    t = ppl([("m", "x", k[1], math.exp(v.mean())) for k, v in nll.items()])
    row = evaluate_claim(claim(RULE), t, nll)
    assert row["point_verdict"] == "reproduced" and row["verdict"] == "inconclusive"
    nll[("m", "a")] = a + 0.2
    t = ppl([("m", "x", k[1], math.exp(v.mean())) for k, v in nll.items()])
    assert evaluate_claim(claim(RULE), t, nll)["verdict"] == "reproduced"


def test_where_and_extension_rows():
    df = pd.DataFrame([("a", "in-scope", "default", "ref", 10.0), ("a", "in-scope", "default", "x", 10.0),
                       ("g", "extension", "default", "ref", 10.0), ("g", "extension", "default", "x", math.nan)],
                      columns=["model", "scope", "case", "method", "perplexity"])
    w = {"kind": "within_rel", "table": "t", "metric": "perplexity", "method": "x", "reference": "ref",
         "max_rel": 0.005, "where": {"scope": "in-scope", "case": "default"},
         "extension": {"scope": "extension", "case": "default"}}
    row = evaluate_claim(claim(w), {"t": df})
    assert row["verdict"] == "reproduced" and "Extension rows" in row["reason"] and "NaN" in row["reason"]
    chk = {"kind": "table_check", "table": "t", "column": "perplexity", "op": "<=", "value": 11,
           "where": {"scope": "in-scope"}, "extension": {"scope": "extension"}}
    row = evaluate_claim(claim(chk), {"t": df})
    assert row["verdict"] == "reproduced" and "extension" in row["reason"]


def test_underdetermined_is_inconclusive_with_its_reason():
    df = pd.DataFrame({"configured": [True, True, False], "role": ["anchor", "predicted", "predicted"],
                       "rel_error": [0.0, 0.04, 0.5]})
    r = {"kind": "underdetermined", "table": "lat", "column": "rel_error",
         "where": {"configured": True, "role": "predicted"}, "points_where": {"configured": True},
         "free_parameters": 2}
    row = evaluate_claim(claim(r, basis="our reconstruction"), {"lat": df})
    assert row["verdict"] == "inconclusive" and "2 known data points, 2 free parameters" in row["reason"]
    assert row["reason"].startswith("our reconstruction") and row["ours"] == "0.04"


def test_sensitivity_reports_other_choices_without_deciding():
    conv = pd.DataFrame({"algorithm": ["iterl2norm"] * 2, "it": [4, 6]})
    init = pd.DataFrame({"init": ["pow2", "pow2", "centred", "centred"], "it": [4, 6, 4, 5]})
    r = {"kind": "table_check", "table": "conv", "column": "it", "op": "<=", "value": 5,
         "where": {"algorithm": "iterl2norm"}, "context": "init pow2",
         "sensitivity": {"table": "init", "by": "init", "column": "it", "op": "<=", "value": 5}}
    row = evaluate_claim(claim(r), {"conv": conv, "init": init})
    assert row["verdict"] == "not reproduced"
    assert "init pow2:" in row["reason"] and "init=centred: holds" in row["reason"]
    assert "init=pow2: fails" in row["reason"]


def test_every_claim_has_a_basis_and_deviations_and_the_csv_columns():
    claims = load_ledger(Path(__file__).parents[1] / "config" / "claims.yaml")
    assert all(c.get("basis").split(" (")[0] in BASES and c.get("basis_pointer") and c.get("deviations")
               for c in claims)
    df = evaluate_ledger(claims, {})
    assert list(df.columns) == COLUMNS and len(df) == 18
    assert {"basis", "deviations", "ci_low", "ci_high"} <= set(df.columns)
    header = next(ln for ln in to_markdown(df).splitlines() if ln.startswith("| id"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["id", "verdict", "CI", "basis", "reason"]


def test_load_nll_reads_the_stored_windows():
    r = {"model": {"id": "m"}, "method": {"name": "x"},
         "metrics": {"kind": "perplexity", "token_nll": [[1.0, 2.0], [3.0, 4.0]]}}
    bad = {"model": {"id": "m"}, "method": {"name": "y"}, "metrics": {"kind": "perplexity", "token_nll": [None]}}
    got = load_nll([r, bad])
    assert list(got) == [("m", "x")] and got[("m", "x")].tolist() == [1.0, 2.0, 3.0, 4.0]


def test_table_check_ci_from_restated_comparisons():
    a = _series(7)
    nll = {("m", "t"): a, ("m", "b1"): a + 0.3, ("m", "b2"): a + 0.5}
    t = ppl([("m", "c", k[1], math.exp(v.mean())) for k, v in nll.items()])
    t["gran"] = pd.DataFrame({"model": ["m"], "coarse_over_tender": [math.exp(0.3)]})
    c = claim({"kind": "table_check", "table": "gran", "column": "coarse_over_tender", "op": ">=", "value": 1.0},
              ci_from=[{"kind": "lowest", "metric": "perplexity", "best": "t", "among": ["b1", "b2"]}])
    row = evaluate_claim(c, t, nll)
    assert row["verdict"] == "reproduced" and row["ci_high"] == pytest.approx(math.exp(-0.3))
    assert "decided by the 95% CIs" in row["reason"]


def test_table_check_with_interval_holds_fails_or_is_undecided():
    """``ci: [lo, hi]``: a row holds only if its whole interval is on the claimed side; one row surely on
    the other side fails the claim; an interval across the threshold leaves it inconclusive."""
    def claim(rows):
        return {"id": "X", "paper": "p", "statement": "s", "paper_value": "v",
                "rule": {"kind": "table_check", "table": "t", "column": "gap", "op": "<=", "value": 1.0,
                         "ci": ["lo", "hi"]}}, {"t": pd.DataFrame(rows, columns=["gap", "lo", "hi"])}
    sure = [(0.2, -0.5, 0.9), (0.8, 0.7, 0.95)]
    assert evaluate_claim(*claim(sure))["verdict"] == "reproduced"
    across = [(0.2, -0.5, 0.9), (1.2, -0.1, 2.5)]          # point says "fails", the interval cannot tell
    r = evaluate_claim(*claim(across))
    assert r["verdict"] == "inconclusive" and r["point_verdict"] == "not reproduced"
    beyond = [(0.2, -0.5, 0.9), (1.2, -0.1, 2.5), (3.0, 1.5, 4.0)]
    assert evaluate_claim(*claim(beyond))["verdict"] == "not reproduced"
    # a point inside the claim with an interval across it: inconclusive, not reproduced
    r = evaluate_claim(*claim([(0.9, 0.5, 1.3)]))
    assert r["verdict"] == "inconclusive" and r["point_verdict"] == "reproduced"


def test_all_parts_one_sure_failure_decides_over_an_undecided_part():
    tables = {"t": pd.DataFrame([(1.2, -0.1, 2.5, 0)], columns=["gap", "lo", "hi", "flag"])}
    claim = {"id": "X", "paper": "p", "statement": "s", "paper_value": "v",
             "rule": {"kind": "all", "checks": [
                 {"table": "t", "column": "gap", "op": "<=", "value": 1.0, "ci": ["lo", "hi"]},
                 {"table": "t", "column": "flag", "op": "==", "value": 1}]}}
    assert evaluate_claim(claim, tables)["verdict"] == "not reproduced"
    claim["rule"]["checks"][1]["value"] = 0
    assert evaluate_claim(claim, tables)["verdict"] == "inconclusive"


def test_a_claims_note_reaches_the_ledger():
    """``note`` (a caveat for the reader) is a column of claims.csv and is shown in claims.md."""
    from lpbench.claims import evaluate_ledger, to_markdown

    c = {"id": "X-1", "paper": "p", "statement": "s", "paper_value": "v", "note": "changed because of Y",
         "rule": {"kind": "not_run", "reason": "r"}}
    df = evaluate_ledger([c], {}, {})
    assert df.loc[0, "note"] == "changed because of Y"
    assert "changed because of Y" in to_markdown(df)


# ---- the rule-kind registry --------------------------------------------------------------------------------
from lpbench.claims import RULE_KINDS, register  # noqa: E402


def test_rule_kinds_are_registered_once_and_unknown_kinds_fail():
    assert set(RULE_KINDS) == {"lowest", "within_rel", "ordered", "table_check", "all", "underdetermined", "not_run"}
    with pytest.raises(TypeError, match="registered twice"):
        register("lowest")(lambda *a: None)
    with pytest.raises(ValueError, match="unknown rule kind 'nope'"):
        evaluate_claim(claim({"kind": "nope"}), {})


def test_a_new_rule_kind_is_one_registered_function():
    @register("always_inconclusive")
    def _kind(claim, rule, tables, nll, row):
        row.update(verdict="inconclusive", reason="by construction", summary="by construction")

    try:
        row = evaluate_claim(claim({"kind": "always_inconclusive"}), {})
        assert row["verdict"] == "inconclusive" and row["summary"] == "by construction"
    finally:
        del RULE_KINDS["always_inconclusive"]


# ---- the ledger's schema ----------------------------------
import subprocess  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402

from lpbench.claims import LedgerError, check_ledger  # noqa: E402

ROOT = Path(__file__).parents[1]
LEDGER = ROOT / "config" / "claims.yaml"


def _mistyped(tmp_path, old="extension: {scope: extension}", new="extention: {scope: extension}"):
    """The shipped ledger with one rule option of SLANC-1 misspelt."""
    text = LEDGER.read_text()
    assert text.count(old) == 1
    bad = tmp_path / "claims.yaml"
    bad.write_text(text.replace(old, new))
    return bad


def test_the_shipped_ledger_passes_its_schema():
    assert [c["id"] for c in check_ledger(LEDGER)["claims"]] == [c["id"] for c in load_ledger(LEDGER)]


def test_a_mistyped_rule_option_names_the_claim_and_the_key(tmp_path):
    with pytest.raises(LedgerError, match=r"claim SLANC-1: rule: unknown key 'extention' \(did you mean 'extension"):
        load_ledger(_mistyped(tmp_path))


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["rule"].update(max_rel=0.1), "claim RRS-1: rule: unknown key 'max_rel'"),  # a within_rel option
    (lambda c: c.pop("basis"), "claim RRS-1: 'basis' is a required property"),
    (lambda c: c.update(basis="hearsay"), "claim RRS-1: basis: 'hearsay' does not match"),
    (lambda c: c.update(basis="our reconstruction scaled"), "claim RRS-1: basis: 'our reconstruction scaled' does not"),
    (lambda c: c["rule"].update(kind="lowst"), "claim RRS-1: rule.kind: 'lowst' is not one of"),
    (lambda c: c["rule"].pop("among"), "claim RRS-1: rule: 'among' is a required property"),
    (lambda c: c.update(ci_from=[{"kind": "lowest", "best": "a", "among": ["b"]}]),
     "claim RRS-1: ci_from: key 'ci_from' is not allowed here"),
    (lambda c: c.update(deviation="x"), "claim RRS-1: unknown key 'deviation' (did you mean 'deviations'?)"),
])
def test_the_schema_rejects(tmp_path, edit, message):
    data = yaml.safe_load(LEDGER.read_text())
    edit(next(c for c in data["claims"] if c["id"] == "RRS-1"))
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(LedgerError) as err:
        check_ledger(path)
    assert message in str(err.value)


def test_a_mistyped_rule_option_fails_the_dry_run(tmp_path):
    """The Snakefile checks the ledger while it parses: the dry run stops before any job, naming both."""
    smk = Path(sys.executable).parent / "snakemake"
    proc = subprocess.run([str(smk), "-n", "--cores", "1", "--configfile", "config/test.yaml",
                           "--config", f"claims={_mistyped(tmp_path)}"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "claim SLANC-1: rule: unknown key 'extention'" in proc.stdout + proc.stderr


def test_every_rule_kind_of_the_schema_is_registered():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "claims.schema.yaml").read_text())
    assert set(schema["$defs"]["rule"]["properties"]["kind"]["enum"]) == set(RULE_KINDS)


def test_shared_deviations_are_one_plain_string():
    """A list of deviations (shared parts as YAML aliases) reaches claims.csv as one "; "-joined string."""
    claims = {c["id"]: c for c in load_ledger(LEDGER)}
    assert isinstance(claims["RRS-1"]["deviations"], list)
    row = evaluate_claim(claims["RRS-1"], {})
    assert row["deviations"].startswith("SmolLM2-135M and Gemma-3-270M (weights already 4-bit GGUF")
    assert "; Jane Austen's Persuasion instead of WikiText-2; 4 windows x 512 tokens" in row["deviations"]
    assert evaluate_claim(claims["RRS-4"], {})["deviations"] == claims["RRS-4"]["deviations"]


def test_ledger_lines_fit_and_carry_no_history():
    text = LEDGER.read_text()
    assert max(len(ln) for ln in text.splitlines()) <= 120
    notes = [c.get("note", "") for c in load_ledger(LEDGER)]
    assert not any(w in n for n in notes for w in ("now ", "unchanged", " was ", "(was "))


# ---- the one-screen claims.md -------------------------------------------------------------------------
def _summary_tables():
    """Results for every kind: comparisons with and without CIs, table checks, an interval, parts."""
    base = _series(11)
    nll = {("m", "b"): base, ("m", "a"): base + 0.05, ("m", "c"): base + 0.2}
    t = ppl([("m", "c", k[1], math.exp(v.mean())) for k, v in nll.items()])
    t["chk"] = pd.DataFrame({"x": [0.5, 0.7, 1.2], "lo": [0.1, 0.6, 0.9], "hi": [0.9, 0.8, 1.5], "task": list("uvw")})
    return t, nll


@pytest.mark.parametrize("rule", [
    RULE,
    {"kind": "within_rel", "method": "a", "reference": "b", "max_rel": 0.005},
    {"kind": "ordered", "methods": ["c", "a", "b"], "slack_rel": 0.0},
    {"kind": "table_check", "table": "chk", "column": "x", "op": "<=", "value": 1.0},
    {"kind": "table_check", "table": "chk", "column": "x", "op": "<=", "value": 1.0, "ci": ["lo", "hi"]},
    {"kind": "all", "checks": [{"table": "chk", "column": "x", "op": "<", "value": 2, "label": ["task"]},
                               {"table": "chk", "column": "lo", "op": ">=", "value": 0, "quantifier": "any"}]},
    {"kind": "underdetermined", "table": "chk", "column": "x", "points": 2, "free_parameters": 2},
    {"kind": "not_run", "reason": "needs a 70B model and a GPU; " + "the CPU default has neither " * 5},
    {"kind": "lowest", "best": "zz", "among": ["a"]},
])
def test_every_kind_gives_a_short_summary(rule):
    tables, nll = _summary_tables()
    row = evaluate_claim(claim(rule, not_run_reason="not configured here"), tables, nll)
    assert row["summary"] and len(row["summary"]) <= 100, row["summary"]
    assert row["summary"].count("(") == row["summary"].count(")")


def test_summary_of_a_comparison_names_the_binding_one():
    tables, nll = _summary_tables()
    row = evaluate_claim(claim({"kind": "ordered", "methods": ["c", "a", "b"], "slack_rel": 0.0}), tables, nll)
    # pairs a/c (ratio e^-0.15) and b/a (e^-0.05): b/a is nearer its threshold, so it binds
    assert row["verdict"] == "reproduced" and row["summary"].startswith("b ") and " vs a " in row["summary"]
    assert row["summary"].endswith(", m (worst of 2)")
    assert f"[{row['ci_low']:.3g}, {row['ci_high']:.3g}]" in row["summary"]


def test_claims_md_is_a_summary_table_then_one_section_per_claim():
    tables, nll = _summary_tables()
    claims = load_ledger(LEDGER)
    df = evaluate_ledger(claims, tables, nll)
    md = to_markdown(df)
    table = [ln for ln in md.split("\n\n")[2].splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + len(claims)
    cells = [c.strip() for ln in table for c in ln.strip("|").split("|")]
    assert max(map(len, cells)) <= 120
    for c in claims:
        assert f"## {c['id']} ({c['paper']}): " in md
    assert md.count("- **Deviations:** ") == len(claims) and "- **Note:** G = 8 and 14" in md


def test_lowest_with_seed_replicates_pools_seeds_and_reports_each():
    """``replicates``: the interval covers seeds and tokens (lpbench.bootstrap.seed_ratio_to_best_ci), the
    point is the pooled ratio, per_seed_verdicts gives each seed's own verdict; seeds pair across methods."""
    import numpy as np
    import pandas as pd

    from lpbench.claims import evaluate_claim
    from lpbench.claims.compare import NLL

    rng = np.random.default_rng(1)
    base = rng.normal(3.0, 1.0, 1024)
    nll = NLL()
    # a is better than b by 0.1 nats at seeds 0 and 1, worse by 0.1 at seed 2
    for s, shift in ((0, -0.1), (1, -0.1), (2, 0.1)):
        for name, extra in (("a", shift), ("b", 0.0)):
            key = ("m", name if s == 0 else f"{name}-s{s}")
            nll[key], nll.seeds[key] = base + extra + 0.01 * rng.normal(size=base.size), s
    table = pd.DataFrame({"model": "m", "method": ["a", "b"], "perplexity": [20.0, 21.0]})
    rule = {"kind": "lowest", "table": "t", "best": "a", "among": ["b"],
            "replicates": {"a": ["a", "a-s1", "a-s2"], "b": ["b", "b-s1", "b-s2"]}}
    claim = {"id": "X-1", "paper": "x", "statement": "", "paper_value": "", "rule": rule}
    row = evaluate_claim(claim, {"t": table}, nll)
    assert row["ci_low"] < row["ci_high"] and row["ci_detail"].count("pooled over seeds [0, 1, 2]") == 1
    assert np.isclose(float(row["ci_detail"].split("=")[1].split()[0]), np.exp(-0.1 / 3), rtol=2e-3)
    seeds = row["per_seed_verdicts"]
    assert "s0:" in seeds and "s2:" in seeds and seeds.count("-> reproduced") == 2
    assert "s2: " in seeds and seeds.split("s2: ")[1].split("-> ")[1].startswith("not reproduced")
