"""Config validation before any job runs, and one end-to-end Snakemake run on config/test.yaml."""
import json
import re
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def smk(workdir, *args, configfile=None):
    cmd = [*SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile or ROOT / "config" / "test.yaml"), *args]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


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
def test_end_to_end_on_the_test_config(tmp_path):
    proc = smk(tmp_path, "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-4000:]
    res = tmp_path / "results"
    ppl = pd.read_csv(res / "tables" / "perplexity.csv")
    assert set(ppl["model"]) == {"tiny-llama", "tiny-opt"}
    assert set(ppl["method"]) == {"fp32", "bf16", "rtn-w8a8", "rtn-w4a4"}
    assert ppl["perplexity"].notna().all()
    enc = pd.read_csv(res / "tables" / "encoder.csv")
    assert enc.loc[enc["method"] == "fp32", "relative_error"].item() == 0.0
    claims = pd.read_csv(res / "claims.csv")
    assert len(claims) == 18 and set(claims["verdict"]) <= {"reproduced", "not reproduced", "not run", "inconclusive"}
    assert (res / "figures" / "perplexity.png").stat().st_size > 10_000
    one = json.loads((res / "evals" / "tiny-llama" / "tiny" / "rtn-w4a4.json").read_text())
    assert one["provenance"]["config_hash"] and one["provenance"]["packages"]["torch"]
    # per-token NLL of every causal evaluation (one float per predicted token) -> CIs in the ledger
    nll = one["metrics"]["token_nll"]
    assert len(nll) == 4 and all(len(w) == 63 for w in nll)
    assert {"basis", "deviations", "ci_low", "ci_high"} <= set(claims.columns)
    assert claims["basis"].isin(["official code", "paper text", "our reconstruction"]).all()
    assert ppl[["ppl_ci_low", "ppl_ci_high"]].notna().all().all()
    assert (ppl["ppl_ci_low"] <= ppl["perplexity"]).all() and (ppl["perplexity"] <= ppl["ppl_ci_high"]).all()
    init = pd.read_csv(res / "tables" / "iterl2norm_init.csv")
    assert set(init["init"]) == {"pow2", "centred", "magic"} and set(init["fmt"]) == {"fp32", "bf16", "fp16"}
    assert re.search(r"\|\s*CI\s*\|\s*basis\s*\|\s*deviations\s*\|", (res / "claims.md").read_text())
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
