"""Target selection of each paper (lpbench.studies.<paper>.targets): what the rule files read, from plain
config dicts, without importing torch when the Snakefile is parsed."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lpbench.config import experiment_triples, load_yaml
from lpbench.studies import iterl2norm, rrs, slanc, tender
from lpbench.studies import unified_norm as un

ROOT = Path(__file__).resolve().parents[1]


def _cfg(name="config.yaml"):
    cfg = load_yaml(ROOT / "config" / name)
    return cfg, experiment_triples(cfg)


def test_selection_imports_no_torch():
    probe = ("import json, sys\n"
             "from lpbench.config import experiment_triples, load_yaml\n"
             "from lpbench.studies import iterl2norm, rrs, slanc, tender, unified_norm\n"
             f"for name in ('config.yaml', 'test.yaml'):\n"
             f"    cfg = load_yaml({str(ROOT / 'config')!r} + '/' + name)\n"
             "    t = experiment_triples(cfg)\n"
             "    for study in (iterl2norm, rrs, slanc, tender):\n"
             "        study.targets(cfg, t)\n"
             "    unified_norm.runs(unified_norm.settings(cfg.get('unified_norm')))\n"
             "print(json.dumps(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'transformers', 'numpy')\n"
             "                        if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_default_config_targets():
    cfg, triples = _cfg()
    r = rrs.targets(cfg, triples)
    assert r.models == ["gemma3-270m", "smollm2-135m"]
    assert (r.outlier_model, r.outlier_corpus) == ("smollm2-135m", "austen")
    assert r.triples[:2] == [("smollm2-135m", "austen", "fp32"), ("gemma3-270m", "austen", "fp32")]
    assert "minilm-l6" not in r.models                                      # an encoder has no perplexity
    assert r.families == {"gemma3-270m": "gemma3", "smollm2-135m": ""}
    t = tender.targets(cfg, triples)
    assert t.exact == [(m, "austen", meth) for m in ("smollm2-135m", "gemma3-270m")
                       for meth in ("tender-int8", "tender-int4")]
    assert t.cost_artifacts == t.exact and t.roles == tender.DEFAULTS["roles"] and t.cost["seqlen"] == 2048
    assert ("smollm2-135m", "austen", "percol-w8a8") in t.triples and all(m in t.models for m, _, _ in t.triples)
    s = slanc.targets(cfg, triples)
    assert s.methods == {"none": "fp16norm-none", "slanc": "slanc-fp16", "dynamic": "fp16norm-dynamic"}
    assert s.measured and len(s.pairs) == 3 and s.measure == {"n_windows": 4, "stress_k": 16}
    i = iterl2norm.targets(cfg, triples)
    assert i.methods == ["iterl2norm-1", "iterl2norm-2", "iterl2norm-3", "iterl2norm-5"]
    assert i.record_models == ["gemma3-270m", "minilm-l6", "smollm2-135m"] and i.record_corpus == "austen"
    assert ("minilm-l6", "austen", "fp32") in i.triples


def test_test_config_adds_no_paper_evaluations():
    cfg, triples = _cfg("test.yaml")
    assert rrs.targets(cfg, triples).outlier_model is None and not rrs.targets(cfg, triples).triples
    # the test config's SLaNC and Tender rows (a stack's components) are read by their papers' tables and
    # SLaNC's measurement runs on tiny-llama; no evaluation is added to the configured ones
    t = tender.targets(cfg, triples)
    assert set(t.triples) <= set(triples) and t.cost["bits"] == [4, 8]
    s = slanc.targets(cfg, triples)
    assert s.pairs == [("tiny-llama", "tiny")]
    assert {tuple(e.split("/")[2:4]) for e in s.evals} == {("tiny-llama", "tiny")}
    assert iterl2norm.targets(cfg, triples).record_models == []


def test_sections_override_the_defaults():
    cfg, triples = _cfg()
    cfg["rrs"] = {"outlier_model": "gemma3-270m"}
    assert rrs.targets(cfg, triples).outlier_model == "gemma3-270m"
    cfg["rrs"] = {"outlier_model": "minilm-l6"}                             # no RRS evaluation: the first model
    assert rrs.targets(cfg, triples).outlier_model == "gemma3-270m"
    cfg["tender"] = {"roles": {"per_column": {8: "percol-w8a8"}}, "exactness_methods": ["tender-int8"],
                     "cost": {"seqlen": 1024}}
    t = tender.targets(cfg, triples)
    assert t.roles["per_column"] == {8: "percol-w8a8"} and t.roles["tender"] == tender.DEFAULTS["roles"]["tender"]
    assert ("smollm2-135m", "austen", "percol-w4a4") not in t.triples
    assert [meth for _, _, meth in t.exact] == ["tender-int8", "tender-int8"]
    assert t.cost == {**tender.DEFAULTS["cost"], "seqlen": 1024}
    assert tender.DEFAULTS["cost"]["seqlen"] == 2048                        # the defaults stay untouched
    cfg["slanc"] = {"methods": {"slanc": "slanc-fp16"}, "measure": {"n_windows": 2}}
    s = slanc.targets(cfg, triples)
    assert s.methods == {"slanc": "slanc-fp16"} and s.measure == {"n_windows": 2, "stress_k": 16}


@pytest.mark.parametrize("section, value, message", [
    ("tender", {"roles": {"per_row": {8: "rtn-w9a9"}}}, "unknown method name(s) ['rtn-w9a9']"),
    ("tender", {"exactness_method": []}, "tender: unknown key 'exactness_method'"),
    ("rrs", {"outliers": "x"}, "rrs: unknown key 'outliers'"),
    ("slanc", {"methods": {"slanc": "fp32"}}, "'fp32' is not a configured method of kind slanc"),
    ("slanc", {"methods": {"stat": "slanc-fp16"}}, "unknown variant 'stat'"),
])
def test_bad_sections_are_errors(section, value, message):
    cfg, triples = _cfg()
    cfg[section] = value
    study = {"tender": tender, "rrs": rrs, "slanc": slanc}[section]
    with pytest.raises(ValueError, match=re.escape(message)):
        study.targets(cfg, triples)


def test_unified_norm_run_files():
    cfg = un.settings(load_yaml(ROOT / "config" / "test.yaml")["unified_norm"])
    runs = un.runs(cfg)
    assert un.run_files("json", runs[:1]) == ["results/unified_norm/runs/vision/ln/seed0.json"]
    assert un.speed_runs(cfg) == [("vision", "ln", 0), ("vision", "un", 0), ("lm", "ln", 0), ("lm", "un-nofilt", 0)]
    assert un.task_inputs(cfg, "lm") == {"calibration": "resources/corpora/tiny/calibration.txt",
                                         "evaluation": "resources/corpora/tiny/evaluation.txt"}
    assert un.task_inputs(cfg, "vision") == {"images": "resources/unified_norm/images/tiny-images.pt"}
