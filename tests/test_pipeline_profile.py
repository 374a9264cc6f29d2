"""benchmarks/pipeline_profile.py on a hand-written run log, benchmark files and rule logs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def profile():
    spec = importlib.util.spec_from_file_location("pipeline_profile", ROOT / "benchmarks" / "pipeline_profile.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


RUN_LOG = """\
[Wed Dec  2 05:00:00 2026]
localrule make_a:
    output: a.txt
    log: logs/elsewhere/a.log
    jobid: 1
    benchmark: results/benchmarks/make_a/a.tsv
    reason: Missing output files: a.txt
[Wed Dec  2 05:00:10 2026]
Finished jobid: 1 (Rule: make_a)
[Wed Dec  2 05:00:10 2026]
localrule make_b:
    input: a.txt
    output: b.txt
    jobid: 2
    benchmark: results/benchmarks/make_b/b.tsv
[Wed Dec  2 05:00:40 2026]
Finished jobid: 2 (Rule: make_b)
[Wed Dec  2 05:00:10 2026]
localrule make_c:
    output: c.txt
    jobid: 3
[Wed Dec  2 05:00:15 2026]
Finished jobid: 3 (Rule: make_c)
"""


def _bench(path: Path, s: float, cpu: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"s\th:m:s\tcpu_time\n{s}\t0:00:{int(s):02d}\t{cpu}\n")


def test_rule_logs_are_found_through_the_run_log(profile, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.log").write_text(RUN_LOG)
    _bench(Path("results/benchmarks/make_a/a.tsv"), 10.0, 0.1)
    _bench(Path("results/benchmarks/make_b/b.tsv"), 30.0, 0.2)
    Path("logs/elsewhere").mkdir(parents=True)
    Path("logs/elsewhere/a.log").write_text("x compute_cpu_s=6.5\nx job_cpu_s=9.0\n")
    Path("logs/make_b").mkdir(parents=True)            # no log named in the run log: the mirrored path
    Path("logs/make_b/b.log").write_text("x compute_cpu_s=1.0\nx compute_cpu_s=2.0\nx job_cpu_s=20.0\n")

    jobs = profile.parse_log(Path("run.log"))
    assert sorted(jobs) == [1, 2, 3]
    assert jobs[1]["logs"] == ["logs/elsewhere/a.log"] and jobs[2]["inputs"] == ["a.txt"]
    log_of = {b: v["logs"] for v in jobs.values() for b in v["benchmarks"]}
    table = profile.benchmark_table(Path("results/benchmarks"), Path("logs"), log_of).set_index("rule")
    assert table.loc["make_a", "cpu_s"] == 9.0 and table.loc["make_a", "compute_s"] == 6.5
    assert table.loc["make_b", "cpu_s"] == 20.0 and table.loc["make_b", "compute_s"] == 3.0
    assert table["cpu_from_log"].all()
    # critical path: a (10 s) then b (30 s), which reads a's output; c runs beside them
    length, path = profile.critical_path(jobs)
    assert length == 40.0 and path == [1, 2]


def test_cpu_falls_back_to_the_benchmark_file_without_a_log(profile, tmp_path):
    _bench(tmp_path / "bench" / "r" / "x.tsv", 5.0, 4.5)
    table = profile.benchmark_table(tmp_path / "bench", tmp_path / "logs", {})
    assert table.loc[0, "cpu_s"] == 4.5 and not table.loc[0, "cpu_from_log"] and table.loc[0, "compute_s"] == 0
