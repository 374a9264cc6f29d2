"""Issue 28, cases 8 and 9: calibration statistics and method artifacts carry a content hash (``<file>.sha256``)
verified by every reader; a truncated, changed or unreadable artifact names the file and the command that
rebuilds it. A local model directory with a truncated safetensors file or without tokenizer files is named
with the file and the fix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from lpbench import integrity
from lpbench.integrity import ArtifactError, ModelSourceError, load_checked, save_checked
from workflow_run import TEST_CONFIG, config_copy, smk

TINY_CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"



def test_artifact_round_trip_and_sha256sum_format(tmp_path):
    path = tmp_path / "a.pt"
    digest = save_checked({"x": torch.arange(10)}, path)
    assert (tmp_path / "a.pt.sha256").read_text() == f"{digest}  a.pt\n"
    obj, got = load_checked(path, with_hash=True)
    assert got == digest and torch.equal(obj["x"], torch.arange(10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "a.pt.sha256"]
    (tmp_path / "direct").mkdir()
    torch.save({"x": torch.arange(10)}, tmp_path / "direct" / "a.pt")
    assert integrity._sha256(tmp_path / "direct" / "a.pt") == digest   # the bytes of a direct torch.save


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "100 bytes with sha256"),
    (lambda p: p.write_bytes(p.read_bytes()[:-8] + b"\0" * 8), "truncated or changed after it was written"),
    (lambda p: integrity.sidecar(p).unlink(), "no recorded content hash"),
    (lambda p: (p.write_bytes(b"not a torch file"),           # a matching hash, but not what torch reads
                integrity.sidecar(p).write_text(f"{integrity._sha256(p)}  {p.name}\n")),
     "cannot be read by torch.load"),
])
def test_artifact_damage_names_the_file_and_the_rebuild(tmp_path, damage, message):
    path = tmp_path / "resources" / "calib" / "m" / "c.pt"
    path.parent.mkdir(parents=True)
    save_checked({"x": torch.randn(100)}, path)
    damage(path)
    with pytest.raises(ArtifactError) as err:
        load_checked(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert f"rebuild it: snakemake --forcerun {path}" in str(err.value)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory):
    """tiny-llama with an offline method (SmoothQuant: calibrate -> method_artifact -> evaluate)."""
    root = tmp_path_factory.mktemp("offline")
    cfg = yaml.safe_load(TEST_CONFIG.read_text())
    cfg["corpora"]["tiny"]["path"] = str(TINY_CORPUS)
    cfg["methods"]["sq-w8a8"] = {"method": "smoothquant", "w_bits": 8, "a_bits": 8, "alpha": 0.5}
    cfg["experiments"] = [{"models": ["tiny-llama"], "corpora": ["tiny"], "methods": ["sq-w8a8"]}]
    path = root / "offline.yaml"
    path.write_text(yaml.safe_dump(cfg))
    work = root / "work"
    work.mkdir()
    proc = smk(work, "--cores", "2", "results/evals/tiny-llama/tiny/sq-w8a8.json", configfile=path, worker=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, path


@pytest.mark.slow
def test_truncated_calibration_stats_name_the_file_and_the_rebuild(offline_run, tmp_path):
    base, cfg = offline_run
    work = tmp_path / "work"
    shutil.copytree(base, work, symlinks=True)
    result = work / "results/evals/tiny-llama/tiny/sq-w8a8.json"
    before = json.loads(result.read_text())
    stats = work / "resources/calib/tiny-llama/tiny.pt"
    stats.write_bytes(stats.read_bytes()[:1000])    # as in the issue: a truncated calibration file
    art = "resources/artifacts/tiny-llama/tiny/sq-w8a8.pt"
    proc = smk(work, "--cores", "1", art, "--forcerun", art, configfile=cfg)
    assert proc.returncode != 0
    log = (work / "logs/method_artifact/tiny-llama/tiny/sq-w8a8.log").read_text()
    assert "ArtifactError: resources/calib/tiny-llama/tiny.pt: 1000 bytes" in log
    assert "rebuild it: snakemake --forcerun resources/calib/tiny-llama/tiny.pt" in log
    # the stated command heals: the same artifact and the same numbers come back
    healed = smk(work, "--cores", "2", "results/evals/tiny-llama/tiny/sq-w8a8.json",
                 "--forcerun", "resources/calib/tiny-llama/tiny.pt", configfile=cfg, worker=True)
    assert healed.returncode == 0, healed.stderr[-3000:]
    after = json.loads(result.read_text())
    assert after["metrics"] == before["metrics"]
    assert after["provenance"]["inputs"]["artifact_sha256"] == before["provenance"]["inputs"]["artifact_sha256"]


# ---- 8: model source directories -------------------------------------------------------------------------
@pytest.fixture
def local_src(tiny_llama, tmp_path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    for p in tiny_llama.iterdir():
        if p.is_file() and not p.name.startswith((".", "lpbench")):
            shutil.copy(p, d / p.name)
    return d


def test_local_model_truncated_safetensors_is_named(local_src, tmp_path):
    w = local_src / "model.safetensors"
    integrity.explain_model_source("m", {"source": "local", "path": str(local_src)}, tmp_path / "w")  # intact
    for cut in (4, 100, w.stat().st_size - 10):
        data = w.read_bytes()
        w.write_bytes(data[:cut])
        with pytest.raises(ModelSourceError) as err:
            integrity.explain_model_source("m", {"source": "local", "path": str(local_src)}, tmp_path / "w")
        assert str(w) in str(err.value) and "models.m.path" in str(err.value)
        w.write_bytes(data)


def test_local_model_without_tokenizer_is_named(local_src, tmp_path):
    for name in integrity.TOKENIZER_VOCAB:
        (local_src / name).unlink(missing_ok=True)
    with pytest.raises(ModelSourceError, match=rf"{local_src} \(models.m.path = {local_src}\) has no tokenizer files"):
        integrity.explain_model_source("m", {"source": "local", "path": str(local_src)}, tmp_path / "w")


@pytest.mark.slow
def test_local_model_truncated_safetensors_fails_the_download_job(local_src, tmp_path):
    w = local_src / "model.safetensors"
    w.write_bytes(w.read_bytes()[:5000])
    cfg = config_copy(tmp_path, lambda c: (c["models"].update({"loc": {"source": "local", "path": str(local_src)}}),
                                       c["experiments"][0]["models"].append("loc")))
    work = tmp_path / "work"
    work.mkdir()
    proc = smk(work, "--cores", "1", "resources/models/loc/lpbench_model.json", configfile=cfg)
    assert proc.returncode != 0
    log = (work / "logs/download_model/loc.log").read_text()
    assert f"ModelSourceError: {w}: truncated" in log and f"models.loc.path = {local_src}" in log
