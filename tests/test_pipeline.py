"""Config validation before any job runs, and one end-to-end Snakemake run on config/test.yaml."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_run import ROOT, TEST_CONFIG, smk


def bad_config(tmp_path, mutate):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["evaluation"].update(seqlen="long"), "'long' is not of type 'integer'"),
    (lambda c: c["models"]["tiny-llama"].update(source="ftp"), "'ftp' is not one of"),
    (lambda c: c.update(evaluaton={}), "Additional properties are not allowed ('evaluaton'"),
    (lambda c: c["experiments"][0]["methods"].append("gptq"), "unknown method name(s) ['gptq']; known:"),
    (lambda c: c["experiments"][0]["models"].append("llama-9b"), "unknown model name(s) ['llama-9b']"),
    (lambda c: c["methods"].update(x={"method": "magic"}), "unknown kind 'magic'; known kinds"),
    (lambda c: c["methods"].update(x={"method": "rtn", "bits": 4}), "unknown parameter(s) ['bits']"),
])
def test_bad_config_is_rejected_before_any_job(tmp_path, mutate, message):
    proc = smk(tmp_path, "-n", configfile=bad_config(tmp_path, mutate))
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_end_to_end_on_the_test_config(e2e_local_run):
    tmp_path, proc = e2e_local_run.workdir, e2e_local_run.proc
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results"
    ppl = pd.read_csv(res / "tables" / "perplexity.csv")
    assert set(ppl["model"]) == {"tiny-llama", "tiny-opt"}
    assert set(ppl["method"]) == {"fp32", "bf16", "rtn-w8a8", "rtn-w4a4", "slanc-fp16", "tender-int8",
                                  "slanc-fp16+tender-int8"}
    assert ppl["perplexity"].notna().all()
    enc = pd.read_csv(res / "tables" / "encoder.csv")
    assert enc.loc[enc["method"] == "fp32", "relative_error"].item() == 0.0
    claims = pd.read_csv(res / "claims.csv")
    ledger = yaml.safe_load((ROOT / "config" / "claims.yaml").read_text())["claims"]
    assert len(claims) == len(ledger)        # one row per claim of the ledger
    assert set(claims["verdict"]) <= {"reproduced", "not reproduced", "not run", "inconclusive"}
    assert (res / "figures" / "perplexity.png").stat().st_size > 10_000
    # whole-model energy and the Pareto table: every causal (model, method), the stack included
    energy, pareto = pd.read_csv(res / "tables" / "energy.csv"), pd.read_csv(res / "tables" / "pareto.csv")
    assert ("tiny-llama", "slanc-fp16+tender-int8") in set(zip(energy["model"], energy["method"]))
    assert set(zip(pareto["model"], pareto["method"])) == set(zip(ppl["model"], ppl["method"]))
    assert pareto["on_front"].any() and (res / "figures" / "pareto" / "tiny-llama.png").stat().st_size > 10_000
    # the tiny Unified Normalization study: every (task, norm, seed) trained, folded, timed, in the ledger
    un = pd.read_csv(res / "tables" / "unified_norm.csv")
    # (vision: 4 norms, vision-outliers: 2, lm: 2) x 2 seeds
    assert len(un) == 16 and un["value"].notna().all()
    speed = pd.read_csv(res / "tables" / "unified_norm_speed.csv")
    assert (speed["fold_max_rel_err"] < 1e-5).all() and (speed["ln_ms"] > 0).all()
    assert (set(claims.loc[claims["id"].str.startswith("UN-"), "verdict"])
            <= {"reproduced", "not reproduced", "inconclusive"})
    run = json.loads((res / "unified_norm" / "runs" / "vision" / "un" / "seed1.json").read_text())
    assert run["provenance"]["config_hash"] and run["settings"]["norm_resolved"]["warmup_iters"] == 5
    assert (res / "figures" / "unified_norm_statistic.png").is_file()
    one = json.loads((res / "evals" / "tiny-llama" / "tiny" / "rtn-w4a4.json").read_text())
    assert one["provenance"]["config_hash"] and one["provenance"]["packages"]["torch"]
    # per-token NLL of every causal evaluation (one float per predicted token) -> CIs in the ledger
    nll = one["metrics"]["token_nll"]
    assert len(nll) == 4 and all(len(w) == 63 for w in nll)
    assert {"basis", "deviations", "ci_low", "ci_high"} <= set(claims.columns)
    assert claims["basis"].str.split(" (", regex=False).str[0].isin(["official code", "paper text",
                                                                    "our reconstruction"]).all()
    assert ppl[["ppl_ci_low", "ppl_ci_high"]].notna().all().all()
    assert (ppl["ppl_ci_low"] <= ppl["perplexity"]).all() and (ppl["perplexity"] <= ppl["ppl_ci_high"]).all()
    # fidelity to FP32 beside the NLLs (one value per predicted token, same layout), the FP32 reference once
    # per causal model, the fidelity tables and figure
    assert [len(w) for w in one["metrics"]["kl"]] == [len(w) for w in nll] == [len(w) for w in one["metrics"]["dp"]]
    assert set(np.concatenate(one["metrics"]["top1_agree"])) <= {0, 1} and one["metrics"]["mean_kl"] > 0
    assert one["provenance"]["inputs"]["reference_sha256"]
    assert sorted(p.parent.name for p in (tmp_path / "resources" / "reference").rglob("fp32.topk.pt")) == \
        ["tiny", "tiny"]
    fid = pd.read_csv(res / "tables" / "fidelity.csv")
    assert set(zip(fid["model"], fid["method"])) == set(zip(ppl["model"], ppl["method"]))
    assert (fid.loc[fid["method"] == "fp32", ["mean_kl", "dp_p1", "dp_p99"]] == 0).all().all()
    assert (fid.loc[fid["method"] == "fp32", "top1_agreement"] == 1).all()
    rest = fid[fid["method"] != "fp32"]
    assert (rest["mean_kl"] > 0).all() and (rest["kl_ci_low"] <= rest["mean_kl"]).all()
    assert (rest["mean_kl"] <= rest["kl_ci_high"]).all() and rest["ppl_ratio_ci_low"].notna().all()
    enc_fid = pd.read_csv(res / "tables" / "fidelity_encoder.csv")
    assert set(enc_fid["method"]) == set(enc["method"]) and enc_fid["mean_token_cosine"].notna().all()
    assert (res / "figures" / "fidelity.png").stat().st_size > 10_000 and (res / "figures" / "fidelity.pdf").is_file()
    init = pd.read_csv(res / "tables" / "iterl2norm_init.csv")
    assert set(init["init"]) == {"pow2", "centred", "magic"} and set(init["fmt"]) == {"fp32", "bf16", "fp16"}
    summary_header = r"\|\s*id\s*\|\s*verdict\s*\|\s*CI\s*\|\s*basis\s*\|\s*reason\s*\|"
    assert re.search(summary_header, (res / "claims.md").read_text())
    # nothing changed -> nothing to do
    dry = smk(tmp_path, "-n")
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    # an interrupted run resumes: as if stopped after the evaluations but one, before aggregation —
    # only the missing evaluation and what reads it are redone, bit-identically
    before = one["metrics"]
    (res / "evals" / "tiny-llama" / "tiny" / "rtn-w4a4.json").unlink()
    for table in ("perplexity.csv", "perplexity.md", "encoder.csv", "encoder.md"):
        (res / "tables" / table).unlink()
    again = smk(tmp_path, "--cores", "2")
    assert again.returncode == 0, again.stderr[-4000:]
    redone = json.loads((res / "evals" / "tiny-llama" / "tiny" / "rtn-w4a4.json").read_text())
    assert redone["metrics"] == before
    assert "rule evaluate" in again.stdout + again.stderr and "rule calibrate" not in again.stdout + again.stderr
    # adding one method to one model's experiment runs only that method's jobs (and the aggregates that
    # read every result): no download, tokenize, calibration, artifact, training or other evaluation
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["methods"]["rtn-w6a6"] = {"method": "rtn", "w_bits": 6, "a_bits": 6}
    cfg["experiments"].append({"models": ["tiny-llama"], "corpora": ["tiny"], "methods": ["rtn-w6a6"]})
    added = tmp_path / "added.yaml"
    added.write_text(yaml.safe_dump(cfg, sort_keys=False))  # same key order: params compare equal
    plan = smk(tmp_path, "-n", configfile=added)
    assert plan.returncode == 0, plan.stderr[-4000:]
    stats = _job_stats(plan.stdout + plan.stderr)
    assert stats.get("evaluate") == 1 and "wildcards: model=tiny-llama, corpus=tiny, method=rtn-w6a6" in plan.stdout
    heavy = {"download_model", "download_corpus", "tokenize", "calibrate", "method_artifact", "un_train",
             "un_images", "slanc_measure", "iterl2norm_record", "iterl2norm_precision", "evaluate_reference"}
    assert not heavy & set(stats), stats


def _job_stats(log: str) -> dict[str, int]:
    """{rule: job count} from the 'Job stats' table of a Snakemake (dry) run."""
    lines = log.split("Job stats:", 1)[1].splitlines()[3:]
    out = {}
    for line in lines:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        out[parts[0]] = int(parts[1])
    return out
