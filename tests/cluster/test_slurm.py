"""The pipeline through profiles/slurm on a real one-node SLURM cluster (tests/cluster/slurm.sh).

The cluster runs slurmctld + slurmd + slurmdbd (MariaDB) on this machine, as a real site does, so job
status is polled with sacct exactly as there. The test config runs through the project's SLURM profile,
with a test overlay for what this one node differs in (partition, memory, time, threads, no GPU); its
evaluation metrics must equal the local end-to-end run's, every job must have gone through SLURM (job
ids in the logs and in sacct), and a failing job must be reported as failed.

Skipped only where the cluster cannot be started (not root, no apt-get, no packages) or the executor
plugin is missing (`make slurm-deps`). Snakemake always runs under a hard timeout: when status polling
breaks, the plugin can wait forever and ignores SIGTERM.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import textwrap
import time
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from workflow_run import ROOT, smk_cmd, smk_env

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
CLUSTER = HERE / "slurm.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.yaml"
TIMEOUT_S = 1800  # the run takes minutes (more on a machine shared with other work); a hang is killed after this

# The test overlay: what differs between a real site and this one node (2 CPUs, no GPU).
PARTITION = "debug"      # the test cluster's only partition (slurm.sh)
MEM_CAP_MB = 2000        # every job's max_rss in the test run is ~0.5 GB (benchmark files)
RUNTIME_CAP_MIN = 10
THREADS = 1              # = config/test.yaml's threads: bit-identical with the local run
FAST_POLLING = {         # small jobs: check status soon and often instead of the profile's 20 s+
    "slurm-init-seconds-before-status-checks": 2,
    "seconds-between-status-checks": 2,
    "latency-wait": 5,
    "slurm-keep-successful-logs": True,
}


def overlay_profile(profile: dict) -> dict:
    """profiles/slurm/config.yaml with the test node's partition, caps on memory and time, the local
    run's threads and GPU requests removed; everything else (executor, per-rule structure) as is."""
    out = {**profile, **FAST_POLLING}

    def fit(res: dict) -> dict:
        res = {k: v for k, v in res.items() if k not in ("gpu", "gpu_model", "gres", "slurm_extra")}
        if "slurm_partition" in res:
            res["slurm_partition"] = PARTITION
        if "mem_mb" in res:
            res["mem_mb"] = min(int(res["mem_mb"]), MEM_CAP_MB)
        if "runtime" in res:
            res["runtime"] = min(int(res["runtime"]), RUNTIME_CAP_MIN)
        return res

    out["default-resources"] = fit(profile.get("default-resources") or {})
    out["set-resources"] = {rule: fit(res) for rule, res in (profile.get("set-resources") or {}).items()}
    out["set-threads"] = {rule: THREADS for rule in (profile.get("set-threads") or {})}
    return out


def run_timed(cmd, env, cwd, timeout=TIMEOUT_S):
    """Run cmd in its own process group; on timeout kill the whole group (SIGKILL: a Snakemake stuck in
    status polling does not stop on SIGTERM) and cancel its SLURM jobs, then fail."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        pytest.fail(f"snakemake did not finish within {timeout} s (killed):\n{out[-4000:]}")
    return proc.returncode, out, time.monotonic() - t0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (make slurm-deps)")
    up = subprocess.run(["bash", str(CLUSTER), "up"], capture_output=True, text=True, timeout=900)
    if up.returncode == 3:
        pytest.skip(up.stderr.strip().splitlines()[-1])
    assert up.returncode == 0, f"cluster bring-up failed:\n{up.stdout}\n{up.stderr}"
    conf = subprocess.run(["bash", str(CLUSTER), "env"], capture_output=True, text=True, check=True)
    slurm_conf = conf.stdout.strip().split("=", 1)[1]
    profile_dir = tmp_path_factory.mktemp("slurm_profile")
    overlay = overlay_profile(yaml.safe_load(PROFILE.read_text()))
    (profile_dir / "config.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    env = smk_env({"SLURM_CONF": slurm_conf})
    try:
        yield {"env": env, "profile": profile_dir}
    finally:
        subprocess.run(["bash", str(CLUSTER), "down"], capture_output=True, text=True, timeout=300)


def sacct(env, job_ids):
    out = subprocess.run(["sacct", "-X", "-n", "-P", "-j", ",".join(job_ids),
                          "-o", "JobID,JobName,State,ExitCode,Elapsed"],
                         capture_output=True, text=True, env=env, check=True).stdout
    return {row.split("|")[0]: row.split("|") for row in out.splitlines() if row}


def submitted_job_ids(log: str) -> list[str]:
    # the plugin logs "Job <n> has been submitted with SLURM jobid <id> (log: ...)."
    return re.findall(r"submitted with SLURM jobid (\d+)", log)


def test_pipeline_through_slurm_equals_local_run(cluster, e2e_local_run, tmp_path_factory):
    assert e2e_local_run.proc.returncode == 0, e2e_local_run.proc.stderr[-4000:]
    workdir = tmp_path_factory.mktemp("e2e_slurm")
    code, log, wall = run_timed(smk_cmd(workdir, "--profile", str(cluster["profile"])), cluster["env"], workdir)
    (workdir / "snakemake.out").write_text(log)
    assert code == 0, log[-6000:]
    print(f"SLURM run of config/test.yaml: {wall:.0f} s")

    # every evaluation's metrics equal the local run's, bit for bit
    evals = workdir / "results" / "evals"
    slurm_metrics = {str(p.relative_to(evals)): json.loads(p.read_text())["metrics"]
                     for p in sorted(evals.rglob("*.json"))}
    assert len(slurm_metrics) == 15 and slurm_metrics.keys() == e2e_local_run.metrics.keys()
    for name, metrics in slurm_metrics.items():
        assert metrics == e2e_local_run.metrics[name], name
        key = "perplexity" if "perplexity" in metrics else "relative_error"
        print(f"{name:32s} {key} local {e2e_local_run.metrics[name][key]!r} slurm {metrics[key]!r}")

    # every job but the light local rules (localrules: tables, figures, claims) was a SLURM job that
    # completed, and accounting (slurmdbd) knows it
    remote = re.findall(r"^rule (\w+):", log, re.M)
    local = set(re.findall(r"^localrule (\w+):", log, re.M))
    # 15 evaluations: the two causal fp32 ones are rule evaluate_reference (they also write the FP32 reference)
    assert remote.count("evaluate") == 13 and remote.count("evaluate_reference") == 2, log[-4000:]
    assert "download_model" in remote, log[-4000:]
    assert local <= {"all", "aggregate", "figures", "claims", "iterl2norm_latency", "iterl2norm_figures",
                     "iterl2norm_model_table", "fidelity_tables", "energy", "pareto", "pareto_figure"}, local
    job_ids = submitted_job_ids(log)
    assert len(job_ids) == len(remote), log[-4000:]
    rows = sacct(cluster["env"], job_ids)
    assert set(rows) == set(job_ids)
    assert {row[2] for row in rows.values()} == {"COMPLETED"}, rows
    # ... and each job's own output (Snakemake inside the job) is in its SLURM log, named by job id
    slurm_logs = {p.stem: p for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert set(slurm_logs) == set(job_ids)
    one = next(job_id for job_id, p in slurm_logs.items() if p.parent.name == "tiny-llama_tiny_rtn-w4a4")
    assert "rule evaluate:" in slurm_logs[one].read_text()
    print("sacct:", "|".join(rows[one]))


FAILING = textwrap.dedent("""\
    rule all:
        input: "ok.txt", "fails.txt"

    rule ok:
        output: "ok.txt"
        shell: "echo ok > {output}"

    rule fails:
        output: "fails.txt"
        shell: "echo 'this job fails on purpose' >&2; exit 3"
    """)


def test_failing_job_is_reported_as_failed(cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(FAILING)
    (tmp_path / "empty.yaml").write_text("{}\n")
    cmd = smk_cmd(tmp_path, "--profile", str(cluster["profile"]), configfile=tmp_path / "empty.yaml",
                  snakefile=tmp_path / "Snakefile")
    code, log, _ = run_timed(cmd, cluster["env"], tmp_path, timeout=300)
    assert code != 0, log[-4000:]
    assert (tmp_path / "ok.txt").exists() and not (tmp_path / "fails.txt").exists()
    failed = re.search(r"SLURM-job '(\d+)' failed, SLURM status is: 'FAILED'", log)
    assert failed, log[-4000:]
    assert "Error in rule fails" in log
    rows = sacct(cluster["env"], submitted_job_ids(log))
    # snakemake in the job exits 1
    assert rows[failed.group(1)][2] == "FAILED" and rows[failed.group(1)][3] != "0:0", rows
    slurm_log = next((tmp_path / ".snakemake" / "slurm_logs").rglob(f"{failed.group(1)}.log"))
    assert "this job fails on purpose" in slurm_log.read_text()
