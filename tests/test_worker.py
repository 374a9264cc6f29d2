"""lpbench.worker: a rule script delegated to the pre-loaded worker behaves like one run in its own process
(same output bits, exit status, streams), and a job whose waiting process dies does not live on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

# What Snakemake's preamble defines (``__real_file__``: the generated script), then a rule script's first lines.
HEAD = textwrap.dedent("""\
    __real_file__ = __file__
    import os, sys
    from lpbench.worker import delegate
    delegate()
    """)

# A small real forward pass: a randomly initialised Llama block stack on 1 thread, printed as a hash of the
# logits' bytes (bit-identity, not closeness), with the job's pid and whether it ran in a worker child.
FORWARD = HEAD + textwrap.dedent("""\
    import hashlib
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from lpbench.jobs import mock_snakemake, setup
    setup(mock_snakemake({}, {}, params={"seed": 0}, threads=1))
    cfg = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)
    model = LlamaForCausalLM(cfg).eval()
    with torch.inference_mode():
        logits = model(torch.randint(0, 256, (2, 48))).logits
    print("HASH", hashlib.sha256(logits.numpy().tobytes()).hexdigest(), torch.get_num_threads())
    print("WHERE", os.getpid(), os.environ.get("LPBENCH_WORKER_CHILD"))
    """)


def _script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body)
    return p


def _run(script, *args, socket_path=None, **kw):
    env = dict(ENV)
    if socket_path is not None:
        env["LPBENCH_WORKER"] = str(socket_path)
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          cwd=script.parent, **kw)


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    path = tmp_path_factory.mktemp("worker") / "w.sock"
    r, w = os.pipe()
    server = subprocess.Popen([sys.executable, "-m", "lpbench.worker", "serve", str(path), "--ready-fd", str(w)],
                              pass_fds=(w,), env=ENV)
    os.close(w)
    with os.fdopen(r) as ready:
        assert ready.readline().strip() == "", "every module of PRELOAD imports"
    yield path
    server.terminate()
    server.wait(timeout=30)
    assert not path.exists(), "the server removes its socket when it stops"


def _field(out: str, key: str) -> list[str]:
    return next(line.split()[1:] for line in out.splitlines() if line.startswith(key + " "))


def test_worker_forward_is_bit_identical_to_own_process(tmp_path, worker):
    script = _script(tmp_path, "forward.py", FORWARD)
    alone = _run(script)
    assert alone.returncode == 0, alone.stderr
    delegated = _run(script, socket_path=worker)
    assert delegated.returncode == 0, delegated.stderr
    assert _field(alone.stdout, "WHERE")[1] == "None"            # really ran in its own process
    assert _field(delegated.stdout, "WHERE")[1] == "1"           # really ran in a worker child
    assert _field(delegated.stdout, "HASH") == _field(alone.stdout, "HASH")


def test_exit_status_streams_and_cwd(tmp_path, worker):
    script = _script(tmp_path, "status.py", HEAD + textwrap.dedent("""\
        print("out", os.getcwd(), sys.argv[1:])
        print("err", file=sys.stderr)
        sys.exit(int(sys.argv[1]))
        """))
    for code in (0, 3):
        p = _run(script, str(code), socket_path=worker)
        assert p.returncode == code
        assert p.stdout.split() == ["out", str(tmp_path), f"['{code}']"]
        assert p.stderr.strip() == "err"


def test_uncaught_exception_is_reported_and_fails(tmp_path, worker):
    script = _script(tmp_path, "boom.py", HEAD + "raise RuntimeError('boom at line 5')\n")
    p = _run(script, socket_path=worker)
    assert p.returncode == 1
    assert "RuntimeError: boom at line 5" in p.stderr
    assert f'File "{script}", line 5' in p.stderr                # the script's own frame
    assert "runpy" not in p.stderr                              # not the worker's machinery


def test_concurrent_jobs(tmp_path, worker):
    script = _script(tmp_path, "sleep.py", HEAD + "import time; time.sleep(1.5); print(sys.argv[1])\n")
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env={**ENV, "LPBENCH_WORKER": str(worker)},
                              stdout=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert outs == ["0", "1", "2"]
    assert time.perf_counter() - t0 < 1.5 * 3                   # they overlapped


def test_killed_job_process_takes_its_child_along(tmp_path, worker):
    pidfile = tmp_path / "child.pid"
    script = _script(tmp_path, "long.py", HEAD + textwrap.dedent(f"""\
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        import time; time.sleep(120)
        """))
    p = subprocess.Popen([sys.executable, str(script)], env={**ENV, "LPBENCH_WORKER": str(worker)})
    deadline = time.time() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert child != p.pid
    p.send_signal(signal.SIGKILL)                               # Snakemake killing the job on ^C
    p.wait()
    deadline = time.time() + 10
    while Path(f"/proc/{child}").exists() and "zombie" not in _state(child):
        assert time.time() < deadline, "the forked job outlived its waiting process"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (FileNotFoundError, IndexError):
        return "zombie"


def test_no_server_runs_in_own_process(tmp_path):
    script = _script(tmp_path, "here.py",
                     HEAD + "print('WHERE', os.getpid(), os.environ.get('LPBENCH_WORKER_CHILD'))\n")
    p = _run(script, socket_path=tmp_path / "nobody-listens.sock")
    assert p.returncode == 0, p.stderr
    assert _field(p.stdout, "WHERE")[1] == "None"


def test_wrapper_returns_the_command_status(tmp_path):
    sock = tmp_path / "w.sock"
    p = subprocess.run([sys.executable, "-m", "lpbench.worker", "--socket", str(sock), "--", "sh", "-c",
                        'test -n "$LPBENCH_WORKER" && exit 7'], env=ENV, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 7, p.stderr
    assert not sock.exists()
