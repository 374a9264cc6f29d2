"""Issue 28, cases 2, 5, 10 (and 11's nested override): each model's evaluation / calibration seqlen fits
its position table (Llama, OPT, BERT; with ``eval.seqlen`` overrides), in the dry run where the model's
config is known, else in the first job that loads it; ``device: cuda`` needs a torch with CUDA."""
from __future__ import annotations

import json
import subprocess

import pytest
import torch

from lpbench.config import ConfigError, load_yaml
from lpbench.limits import check_device, check_job_seqlen, check_positions
from workflow_run import TEST_CONFIG, config_copy, dry_run_fails, smk_cmd, smk_env


@pytest.mark.slow
def test_nested_config_override_reaches_the_checks(tmp_path):
    """The README's form works with our Snakemake: the override is typed (no schema error on '200') and
    merged (the other evaluation keys stay), and the position check sees it."""
    out = dry_run_fails(tmp_path, config_copy(tmp_path), "--config", "evaluation={seqlen: 200}")
    assert "evaluation.seqlen = 200 exceeds the 128 positions model 'tiny-llama'" in out
    assert "is not of type" not in out
    out = dry_run_fails(tmp_path, config_copy(tmp_path), "--config", "models={tiny-opt: {eval: {seqlen: 256}}}")
    assert "models.tiny-opt.eval.seqlen = 256 exceeds the 128 positions model 'tiny-opt'" in out


# ---- 5: device -------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_cuda_without_cuda_fails_the_dry_run(tmp_path):
    cfg = config_copy(tmp_path, lambda c: c.update(device="cuda"))
    out = dry_run_fails(tmp_path, cfg)
    assert "device: 'cuda' cannot run on this machine: this torch" in out and "LPBENCH_DEVICE_CHECK=0" in out
    work = tmp_path / "escape"
    work.mkdir()
    proc = subprocess.run(smk_cmd(work, "-n", configfile=cfg), capture_output=True, text=True,
                          env=smk_env({"LPBENCH_DEVICE_CHECK": "0"}), cwd=work)
    assert proc.returncode == 0, proc.stderr[-3000:]    # the escape for a CPU login node


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_device_check_skipped_for_remote_executors(monkeypatch):
    check_device({"device": "cpu"})
    with pytest.raises(ConfigError, match="device: 'cuda:1' cannot run"):
        check_device({"device": "cuda:1"})
    check_device({"device": "cuda"}, local_exec=False)  # --executor slurm: each job checks on its node
    monkeypatch.setenv("LPBENCH_DEVICE_CHECK", "0")
    check_device({"device": "cuda"})


# ---- 2, 10: seqlen within the position table -------------------------------------------------------------
@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["evaluation"].update(seqlen=256), ["evaluation.seqlen = 256 exceeds the 128 positions model "
                                                    f"'{m}'" for m in ("tiny-llama", "tiny-opt", "tiny-bert")]),
    (lambda c: c["models"]["tiny-opt"].update(eval={"seqlen": 129}),
     ["models.tiny-opt.eval.seqlen = 129 exceeds the 128 positions model 'tiny-opt'"]),
    (lambda c: c["calibration"].update(seqlen=200), ["calibration.seqlen = 200 exceeds the 128 positions"]),
])
def test_seqlen_beyond_positions_is_named(mutate, expected):
    cfg = load_yaml(TEST_CONFIG)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        check_positions(cfg)
    for e in expected:
        assert e in str(err.value)
    assert "max_position_embeddings = 128 in models." in str(err.value)


def test_seqlen_at_the_limit_passes_and_downloaded_configs_count(tmp_path):
    cfg = load_yaml(TEST_CONFIG)
    cfg["evaluation"]["seqlen"] = cfg["calibration"]["seqlen"] = 128
    check_positions(cfg)
    # a pypi / hf model: known once download_model wrote its config.json
    cfg["models"]["dl"] = {"source": "pypi", "packages": ["x"], "hf_dir": "m"}
    check_positions(cfg, tmp_path)                  # not downloaded yet: the job will check
    (tmp_path / "models" / "dl").mkdir(parents=True)
    (tmp_path / "models" / "dl" / "config.json").write_text(json.dumps({"max_position_embeddings": 64}))
    with pytest.raises(ConfigError, match=rf"evaluation.seqlen = 128 exceeds the 64 positions model 'dl' was built "
                                          rf"for \(max_position_embeddings = 64 in {tmp_path}/models/dl/config.json\)"):
        check_positions(cfg, tmp_path)


@pytest.mark.slow
def test_seqlen_beyond_positions_fails_the_dry_run(tmp_path):
    cfg = config_copy(tmp_path, lambda c: c["models"]["tiny-bert"].update(eval={"seqlen": 256}))
    out = dry_run_fails(tmp_path, cfg)
    assert "models.tiny-bert.eval.seqlen = 256 exceeds the 128 positions model 'tiny-bert'" in out



def test_job_checks_seqlen_against_the_downloaded_model(tiny_llama):
    check_job_seqlen(tiny_llama, 128)
    with pytest.raises(ConfigError, match=r"evaluation.seqlen \(or models.tiny-llama.eval.seqlen\) = 129 exceeds"):
        check_job_seqlen(tiny_llama, 129)
    with pytest.raises(ConfigError, match="calibration.seqlen = 300 exceeds"):
        check_job_seqlen(tiny_llama, 300, "calibration")
