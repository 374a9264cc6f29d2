"""Where the pipeline's time goes: per-rule job count, CPU and wall totals, the critical path, and the
overhead ratio of the last Snakemake run.

    .venv/bin/python benchmarks/pipeline_profile.py [--log .snakemake/log/<run>.snakemake.log] [--cores 2]

Sources (all written by the run itself):
* Snakemake's benchmark files ``results/benchmarks/<rule>/...tsv`` (every rule has one): wall ``s`` of
  each job, and ``cpu_time`` of its process tree — used only for a job whose rule log has no ``job_cpu_s``
  line (written by :func:`lpbench.jobs.setup` at exit: the job's own CPU, also when it ran in the
  pre-loaded worker of :mod:`lpbench.worker`, whose forked process Snakemake's benchmark does not see);
* the run's log (the newest in ``.snakemake/log/`` by default): start and finish time of every job and
  its input and output files, from which the job DAG and its critical path (the longest chain of
  dependent jobs, weighted by their wall time) are rebuilt;
* ``compute_cpu_s`` lines in the rule logs under ``logs/`` (written by :func:`lpbench.jobs.compute`): the
  CPU seconds a job spent in model forward passes and training steps — the work the results need.

Overhead ratio = pipeline wall × cores / Σ compute CPU. 1.0 would mean both cores did nothing but
forward passes and training steps from start to end; everything above is process start-up (imports),
model loading, I/O, tables, figures and idle cores.
"""
from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_START = re.compile(r"^(?:local)?rule (\S+):$")
_FINISH = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)$")
_COMPUTE = re.compile(r"compute_cpu_s=([0-9.]+)")
_JOB_CPU = re.compile(r"job_cpu_s=([0-9.]+)")


def _time(s: str) -> datetime:
    return datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y")


def parse_log(path: Path) -> dict[int, dict]:
    """{jobid: {rule, start, end, inputs, outputs}} of every job the run finished."""
    jobs: dict[int, dict] = {}
    stamp = current = None
    for line in path.read_text().splitlines():
        m = _STAMP.match(line.strip())
        if m:
            stamp = _time(m.group(1))
            current = None
            continue
        m = _START.match(line.strip())
        if m:
            current = {"rule": m.group(1), "start": stamp, "inputs": [], "outputs": [], "logs": [], "benchmarks": []}
            continue
        s = line.strip()
        if current is not None and s.startswith(("input:", "output:", "log:", "benchmark:", "jobid:")):
            key, _, val = s.partition(":")
            if key == "jobid":
                jobs[int(val)] = current
            else:
                current[key + "s"] = [v.strip() for v in val.split(",") if v.strip()]
            continue
        m = _FINISH.match(s)
        if m and int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["end"] = stamp
    return {j: v for j, v in jobs.items() if v.get("end") and v.get("start")}


def critical_path(jobs: dict[int, dict]) -> tuple[float, list[int]]:
    """Longest chain of dependent jobs (edges: an output of one is an input of the other), weighted by
    each job's wall seconds."""
    producer = {out: j for j, v in jobs.items() for out in v["outputs"]}
    deps = {j: {producer[i] for i in v["inputs"] if i in producer and producer[i] != j} for j, v in jobs.items()}
    wall = {j: (v["end"] - v["start"]).total_seconds() for j, v in jobs.items()}
    best: dict[int, tuple[float, list[int]]] = {}

    def visit(j: int) -> tuple[float, list[int]]:
        if j not in best:
            prev = max((visit(d) for d in deps[j]), default=(0.0, []), key=lambda t: t[0])
            best[j] = (prev[0] + wall[j], prev[1] + [j])
        return best[j]

    return max((visit(j) for j in jobs), default=(0.0, []), key=lambda t: t[0])


def benchmark_table(root: Path, logs: Path, log_of: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """One row per job: rule, wall (benchmark file), CPU (``job_cpu_s`` of the job's rule log if it has
    one, else the benchmark's ``cpu_time``), where the CPU came from, and its compute CPU (``compute_cpu_s``).
    The rule log is the one the run log names for that benchmark file (``log_of``: benchmark path →
    log paths, from :func:`parse_log`), else ``logs/<the benchmark's path>.log``."""
    rows = []
    for f in sorted(root.glob("**/*.tsv")):
        df = pd.read_csv(f, sep="\t")
        if not len(df):
            continue
        named = [Path(p) for p in (log_of or {}).get(str(f), [])]
        texts = [p.read_text(errors="replace") for p in named or [logs / f.relative_to(root).with_suffix(".log")]
                 if p.exists()]
        found = [float(v) for t in texts for v in _JOB_CPU.findall(t)]
        rows.append({"rule": f.relative_to(root).parts[0], "wall_s": float(df["s"].iloc[-1]),
                     "cpu_s": found[-1] if found else float(df["cpu_time"].iloc[-1]),
                     "cpu_from_log": bool(found),
                     "compute_s": sum(float(v) for t in texts for v in _COMPUTE.findall(t))})
    return pd.DataFrame(rows, columns=["rule", "wall_s", "cpu_s", "cpu_from_log", "compute_s"])


def compute_seconds(logs: Path) -> float:
    total = 0.0
    for f in logs.glob("**/*.log"):
        for m in _COMPUTE.finditer(f.read_text(errors="replace")):
            total += float(m.group(1))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--log", type=Path, help="a .snakemake/log/*.snakemake.log (default: the newest)")
    ap.add_argument("--benchmarks", type=Path, default=Path("results/benchmarks"))
    ap.add_argument("--logs", type=Path, default=Path("logs"))
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args()
    log = args.log or max(Path(".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    jobs = parse_log(log)
    log_of = {b: v["logs"] for v in jobs.values() for b in v["benchmarks"]}
    bench = benchmark_table(args.benchmarks, args.logs, log_of)
    per_rule = bench.groupby("rule").agg(jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
                                         cpu_from_log=("cpu_from_log", "sum"), compute_s=("compute_s", "sum"))
    per_rule["other_cpu_s"] = (per_rule["cpu_s"] - per_rule["compute_s"]).where(per_rule["cpu_from_log"] > 0)
    per_rule = per_rule.sort_values("cpu_s", ascending=False)
    pd.set_option("display.width", 160)
    print(f"run log: {log}  ({len(jobs)} jobs finished)\n")
    print("per rule (wall: benchmark files; CPU: job_cpu_s of the rule logs for cpu_from_log jobs, else the "
          "benchmark files; compute: compute_cpu_s of the rule logs; other = CPU - compute):")
    print(per_rule.round(1).to_string())
    print(f"\ntotal: {int(per_rule['jobs'].sum())} jobs, wall {per_rule['wall_s'].sum():.0f} s, "
          f"CPU {per_rule['cpu_s'].sum():.0f} s")
    if not jobs:
        return
    start = min(v["start"] for v in jobs.values())
    end = max(v["end"] for v in jobs.values())
    span = (end - start).total_seconds()
    length, path = critical_path(jobs)
    print(f"\npipeline wall (first job start -> last job end): {span:.0f} s = {span / 60:.1f} min")
    print(f"critical path: {length:.0f} s over {len(path)} jobs")
    for j in path:
        v = jobs[j]
        print(f"  {(v['end'] - v['start']).total_seconds():6.0f} s  {v['rule']:24s} {', '.join(v['outputs'])[:90]}")
    compute = compute_seconds(args.logs)
    if compute > 0:
        print(f"\ncompute CPU (forward passes and training steps, from the rule logs): {compute:.0f} s")
        print(f"overhead ratio = wall x cores / compute CPU = {span:.0f} x {args.cores} / {compute:.0f} "
              f"= {span * args.cores / compute:.2f}")
        print(f"floor (compute CPU / cores) = {compute / args.cores / 60:.1f} min")
    else:
        print("\nno compute_cpu_s lines in the rule logs: overhead ratio not available")


if __name__ == "__main__":
    main()
