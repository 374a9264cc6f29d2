"""Shared pytest fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub_standin import HubStandin
from lpbench.config import load_yaml
from lpbench.sources import materialize
from workflow_run import TEST_CONFIG


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """The test config's tiny random Llama, materialized as ``download_model`` would (once per module)."""
    cfg = load_yaml(TEST_CONFIG)
    d = tmp_path_factory.mktemp("llama")
    return materialize("tiny-llama", cfg["models"]["tiny-llama"], d / "tiny-llama", d / "w")


@pytest.fixture
def hf_hub(tmp_path_factory, monkeypatch):
    """A running local stand-in of the Hugging Face hub (see ``tests/hub_standin.py``).

    ``huggingface_hub`` is pointed at a fresh HF_HOME so no cache, token or setting leaks in or out;
    telemetry, xet and progress bars are off and offline mode is forced off. ``huggingface_hub`` reads
    these variables once at import, so its ``constants`` are patched as well as the environment.
    """
    home = tmp_path_factory.mktemp("hf_home")
    env = {
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
        "HF_HUB_OFFLINE": "0",
        "TRANSFORMERS_OFFLINE": "0",
        "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_TOKEN", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(key, raising=False)

    from huggingface_hub import constants
    from huggingface_hub.utils import tqdm as hf_tqdm

    for name, value in {
        "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"), "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"), "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_TELEMETRY": True, "HF_HUB_DISABLE_XET": True, "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": True,
    }.items():
        monkeypatch.setattr(constants, name, value, raising=False)
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", True, raising=False)

    with HubStandin(tmp_path_factory.mktemp("hub_root")) as hub:
        yield hub


@pytest.fixture(scope="session")
def e2e_local_run(tmp_path_factory):
    """The local end-to-end run on config/test.yaml (2 cores, through the pre-loaded worker), once per session.

    Shared by the end-to-end test (which then also resumes it) and the SLURM test (which compares its
    own results with these). ``metrics`` maps each evaluation JSON (path under results/evals) to its
    metrics, read right after the run, before any test changes the directory."""
    import json
    from types import SimpleNamespace

    from workflow_run import smk

    workdir = tmp_path_factory.mktemp("e2e_local")
    proc = smk(workdir, "--cores", "2", worker=True)      # as `make run` does (the SLURM test runs in-process)
    evals = workdir / "results" / "evals"
    metrics = {str(p.relative_to(evals)): json.loads(p.read_text())["metrics"] for p in sorted(evals.rglob("*.json"))}
    return SimpleNamespace(workdir=workdir, proc=proc, metrics=metrics)
