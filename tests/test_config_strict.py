"""Issue 28, cases 1, 6, 11, 12: every YAML the suite reads is strict (a key given twice names file, line
and key, before Snakemake plans anything), a nested value can be overridden with --config, unknown names in
``experiments`` offer the nearest known one, and an ``hf`` repo_id must have the hub's form."""
from __future__ import annotations

import pytest

from lpbench.config import ConfigError, check_references, config_overrides, load_yaml, repo_id_ok
from workflow_run import ROOT, TEST_CONFIG, config_copy, dry_run_fails


# ---- 1: duplicate keys -----------------------------------------------------------------------------------
DUP_METHODS = TEST_CONFIG.read_text().replace(
    "  rtn-w4a4: {method: rtn, w_bits: 4, a_bits: 4}\n",
    "  rtn-w4a4: {method: rtn, w_bits: 4, a_bits: 4}\n  rtn-w4a4: {method: rtn, w_bits: 8, a_bits: 8}\n")


def test_duplicate_keys_name_file_line_and_key(tmp_path):
    path = config_copy(tmp_path, text=DUP_METHODS)
    first = DUP_METHODS.splitlines().index("  rtn-w4a4: {method: rtn, w_bits: 4, a_bits: 4}") + 1
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert f"{path}:{first + 1}:3: duplicate key 'rtn-w4a4' (first given on line {first})" in str(err.value)
    (tmp_path / "c.json").write_text('{"seed": 0,\n\t"seed": 1}')
    # (libyaml reads this JSON as YAML and names line and column; the pure-Python parser refuses the tab and
    # the JSON reader names the key)
    with pytest.raises(ConfigError, match=r"c.json(:2:2)?: duplicate key 'seed'"):
        load_yaml(tmp_path / "c.json")
    merged = tmp_path / "merge.yaml"                # a key overriding one brought in by a merge is not a duplicate
    merged.write_text("base: &b {w_bits: 4, a_bits: 4}\nm: {<<: *b, w_bits: 8}\n")
    assert load_yaml(merged)["m"] == {"w_bits": 8, "a_bits": 4}


@pytest.mark.slow
def test_duplicate_keys_fail_the_dry_run_in_configfile_and_ledger(tmp_path):
    out = dry_run_fails(tmp_path, config_copy(tmp_path, text=DUP_METHODS))
    assert "cfg.yaml:" in out and "duplicate key 'rtn-w4a4'" in out
    ledger = tmp_path / "claims.yaml"               # the claims ledger a config names is read strictly too
    ledger.write_text((ROOT / "config" / "claims.yaml").read_text() + "claims: []\n")
    out = dry_run_fails(tmp_path, config_copy(tmp_path, lambda c: c.update(claims=str(ledger))))
    assert f"{ledger}:" in out and "duplicate key 'claims'" in out


def test_every_shipped_yaml_is_strict():
    for pattern in ("config/*.yaml", "profiles/*/config.yaml", "workflow/schemas/*.yaml"):
        for path in ROOT.glob(pattern):
            load_yaml(path)


# ---- 11: nested --config override ------------------------------------------------------------------------
def test_nested_config_override_is_typed_and_merged():
    assert config_overrides(["evaluation={seqlen: 32}", "device=cpu", "seed=3"]) == \
        {"evaluation": {"seqlen": 32}, "device": "cpu", "seed": 3}
    with pytest.raises(ConfigError, match="duplicate key 'seqlen'"):
        config_overrides(["evaluation={seqlen: 32, seqlen: 64}"])


# ---- 12: did you mean ------------------------------------------------------------------------------------
def test_unknown_experiment_names_suggest_the_nearest():
    cfg = load_yaml(TEST_CONFIG)
    cfg["experiments"][0]["models"].append("tiny-lama")
    cfg["experiments"][0]["corpora"].append("tiny2")
    cfg["experiments"][0]["methods"].append("rtn-w4a44")
    with pytest.raises(ConfigError) as err:
        check_references(cfg, build_methods=False)
    msg = str(err.value)
    assert "unknown model name(s) ['tiny-lama'] (did you mean 'tiny-llama'?)" in msg
    assert "unknown corpus name(s) ['tiny2'] (did you mean 'tiny'?)" in msg
    assert "unknown method name(s) ['rtn-w4a44'] (did you mean 'rtn-w4a4'?)" in msg


# ---- 6: repo_id ------------------------------------------------------------------------------------------
def test_repo_id_form():
    for ok in ("facebook/opt-125m", "meta-llama/Llama-2-7b-hf", "Qwen/Qwen2.5-0.5B", "Salesforce/wikitext"):
        assert repo_id_ok(ok), ok
    for bad in ("not a repo id!!", "gpt2", "a/b/c", "-a/b", "a/b.", "a--b/c", "a/b..c", "o/" + "n" * 95):
        assert not repo_id_ok(bad), bad


@pytest.mark.slow
def test_malformed_repo_id_fails_the_dry_run(tmp_path):
    def hf(c):
        c["models"]["tiny-hf"] = {"source": "hf", "repo_id": "not a repo id!!", "revision": "main"}
        c["experiments"][0]["models"].append("tiny-hf")
    out = dry_run_fails(tmp_path, config_copy(tmp_path, hf))
    assert "models.tiny-hf.repo_id: 'not a repo id!!' is not a Hugging Face repo id: 'owner/name'" in out
