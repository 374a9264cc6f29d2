"""Running the workflow from tests: one Snakemake invocation, and the local end-to-end run on
config/test.yaml shared by the tests that read its results (tests/test_pipeline.py, tests/cluster/)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def smk_env(extra: dict | None = None) -> dict:
    """The environment of a Snakemake run: this tree's src/ first on PYTHONPATH."""
    return {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            **(extra or {})}


def smk_cmd(workdir, *args, configfile=None, snakefile=None, worker=False) -> list[str]:
    """A Snakemake command line; ``worker``: through ``python -m lpbench.worker`` as ``make run`` runs it."""
    prefix = [sys.executable, "-m", "lpbench.worker", "--socket", str(Path(workdir) / ".snakemake" / "w.sock"),
              "--"] if worker else []
    return [*prefix, *SNAKEMAKE, "--snakefile", str(snakefile or ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(configfile or TEST_CONFIG), *args]


def smk(workdir, *args, configfile=None, worker=False):
    return subprocess.run(smk_cmd(workdir, *args, configfile=configfile, worker=worker), capture_output=True,
                          text=True, env=smk_env(), cwd=workdir)


def config_copy(tmp_path, mutate=None, text: str | None = None) -> Path:
    """A copy of config/test.yaml (absolute corpus path) changed by ``mutate``, or ``text`` as it is."""
    import yaml

    path = Path(tmp_path) / "cfg.yaml"
    if text is None:
        cfg = yaml.safe_load(TEST_CONFIG.read_text())
        cfg["corpora"]["tiny"]["path"] = str(ROOT / "tests" / "data" / "tiny_corpus.txt")
        if mutate:
            mutate(cfg)
        text = yaml.safe_dump(cfg, sort_keys=False)
    path.write_text(text)
    return path


def dry_run_fails(tmp_path, configfile, *args, env: dict | None = None) -> str:
    """A dry run that must fail before Snakemake plans anything (no job stats, nothing written); its output."""
    work = Path(tmp_path) / "work"
    work.mkdir(exist_ok=True)
    proc = subprocess.run(smk_cmd(work, "-n", *args, configfile=configfile), capture_output=True, text=True,
                          env=smk_env(env), cwd=work)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert not (work / "resources").exists() and not (work / "results").exists()
    assert "Job stats" not in out
    return out
