"""Issue 28 case 4: the wrapper ``python -m lpbench.worker -- snakemake ...`` (what ``make run`` runs, the pid a
user or a batch system signals) passes SIGINT and SIGTERM on to Snakemake as a ^C, stops its server and exits
only when no process it started is left; the rerun then gives the numbers of an uninterrupted run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from workflow_run import smk_cmd, smk_env

ROOT = Path(__file__).resolve().parents[1]
TARGETS = [f"results/evals/{m}/tiny/{meth}.json" for m in ("tiny-llama", "tiny-opt", "tiny-bert")
           for meth in ("fp32", "bf16", "rtn-w8a8", "rtn-w4a4")]


def processes(root: Path) -> dict[int, tuple[int, str]]:
    """Live processes (not zombies) of a run in ``root`` (working directory inside it, or naming it in their
    command line): ``{pid: (parent pid, command line)}``."""
    found = {}
    for d in Path("/proc").glob("[0-9]*"):
        if int(d.name) == os.getpid():
            continue
        try:
            state, ppid = (d / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            cwd = os.readlink(d / "cwd")
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if state != "Z" and (cwd == str(root) or cwd.startswith(f"{root}/") or str(root) in cmd):
            found[int(d.name)] = (int(ppid), cmd[:160])
    return found


def processes_of(root: Path) -> list[str]:
    return [f"{pid} {cmd}" for pid, (_, cmd) in sorted(processes(root).items())]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_until_gone(root: Path, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_wrapper_passes_signals_on_as_sigint_and_waits_for_the_group(tmp_path):
    """Without Snakemake: the command (and a child of its own) gets SIGINT for the wrapper's SIGTERM; the
    wrapper returns once the command, its child and the server are gone."""
    script = tmp_path / "cmd.py"
    script.write_text(textwrap.dedent(f"""\
        import signal, subprocess, sys, time
        from pathlib import Path
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path({str(tmp_path / 'child.pid')!r}).write_text(str(child.pid))
        try:
            time.sleep(300)
        except KeyboardInterrupt:
            Path({str(tmp_path / 'got')!r}).write_text("SIGINT")
            sys.exit(130)                            # leaves its child behind, as a careless job would
        """))
    env = {**smk_env(), "LPBENCH_TEST_ROOT": str(tmp_path)}
    wrapper = subprocess.Popen([sys.executable, "-m", "lpbench.worker", "--socket", str(tmp_path / "w.sock"), "--",
                                sys.executable, str(script)], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "child.pid").exists():
        assert time.monotonic() < deadline and wrapper.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)
    wrapper.send_signal(signal.SIGTERM)
    assert wrapper.wait(timeout=60) == 130
    assert (tmp_path / "got").read_text() == "SIGINT"
    assert not alive(int((tmp_path / "child.pid").read_text()))
    assert wait_until_gone(tmp_path, 5) == []
    assert not (tmp_path / "w.sock").exists()       # the server stopped and removed its socket


def test_server_stops_when_its_parent_dies(tmp_path):
    """A wrapper killed with SIGKILL cannot pass anything on; its server notices and stops."""
    sock = tmp_path / "s.sock"
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""\
        import subprocess, sys, time
        from pathlib import Path
        serve = "from lpbench.worker import serve; serve({str(sock)!r}, preload=())"
        s = subprocess.Popen([sys.executable, "-c", serve])
        Path({str(tmp_path / 'server.pid')!r}).write_text(str(s.pid))
        time.sleep(300)
        """)], env=smk_env(), cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server = int((tmp_path / "server.pid").read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(server):
        assert time.monotonic() < deadline, "the server outlived the process that started it"
        time.sleep(0.05)
    assert not sock.exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_wrapper_stops_everything_and_the_rerun_is_exact(sig, tmp_path, e2e_local_run):
    work = tmp_path / "work"
    work.mkdir()
    cmd = smk_cmd(work, "--cores", "2", *TARGETS, worker=True)
    wrapper = subprocess.Popen(cmd, env=smk_env(), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(wrapper.stdout), daemon=True)
    reader.start()
    # wait until a job runs in a worker child (a child of the server), so the signal lands mid-job
    deadline = time.monotonic() + 600
    while True:
        procs = processes(work)
        servers = [pid for pid, (_, cmd) in procs.items() if "lpbench.worker serve" in cmd]
        if any(ppid in servers for ppid, _ in procs.values()):
            break
        assert wrapper.poll() is None and time.monotonic() < deadline, "".join(lines)[-3000:]
        time.sleep(0.1)
    running = processes_of(work)
    wrapper.send_signal(sig)                        # the wrapper's pid alone, as `kill` or a batch system does
    code = wrapper.wait(timeout=180)
    reader.join(timeout=30)                         # EOF: nobody holds the output pipe any more
    assert not reader.is_alive(), "a process of the run still holds the wrapper's output"
    log = "".join(lines)
    assert code != 0, log[-3000:]
    assert "Terminating processes on user request" in log, log[-3000:]   # Snakemake stopped as on ^C
    assert not all((work / t).exists() for t in TARGETS), "the run ended before the signal: inconclusive"
    left = wait_until_gone(work, 10)
    assert left == [], f"still running after the wrapper exited:\n{left}\nbefore the signal:\n{running}"
    assert not (work / ".snakemake" / "w.sock").exists()
    # the rerun (interrupted jobs are incomplete: the profile's rerun-incomplete redoes them) is exact
    rerun = subprocess.run(cmd, env=smk_env(), cwd=work, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    for t in TARGETS:
        key = str(Path(t).relative_to("results/evals"))
        assert json.loads((work / t).read_text())["metrics"] == e2e_local_run.metrics[key], t
    assert wait_until_gone(work, 10) == []
