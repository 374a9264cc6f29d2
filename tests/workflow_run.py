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
