"""A pre-loaded worker for the pipeline's rule scripts: import torch + transformers once, fork per job.

* ``python -m lpbench.worker -- <command…>`` (what ``make run`` does) starts a server process that imports
  the heavy modules once (:data:`PRELOAD`; no torch operation runs in it, so no thread pool exists yet),
  runs ``<command>`` with ``LPBENCH_WORKER=<socket>`` in its environment, then stops the server;
* every rule script starts with :func:`delegate`: if ``LPBENCH_WORKER`` names a live server, the script
  process sends it its standard streams (file descriptors over the Unix socket), working directory,
  environment and the path of the script Snakemake generated, and waits; the server forks, the child
  runs that same script exactly as Python would (``runpy``, ``__name__ == "__main__"``) and exits with its
  status, which the waiting process exits with. Otherwise (no variable, no server: SLURM, a GPU profile,
  a plain ``snakemake`` call) the script simply runs in its own process — the same code either way.

If the waiting process is killed (Snakemake interrupted), the server kills its child. The wrapper's pid is the
one to signal: SIGINT, SIGTERM or SIGHUP to it stops Snakemake and its jobs as a ^C would, then the server,
and the wrapper exits only when none of the processes it started is left (:func:`run_with_worker`).
POSIX only (``fork``, ``SCM_RIGHTS``).

Why a worker, what a forked child sees, and its costs and limits: docs/performance.md.
"""
from __future__ import annotations

import gc
import importlib
import os
import pickle
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from lpbench.procgroup import empty_group, signal_group

ENV = "LPBENCH_WORKER"          # socket path of the server, set for the jobs by `python -m lpbench.worker`
_IN_CHILD = "LPBENCH_WORKER_CHILD"
_LEN = struct.Struct("!Q")

#: imported once by the server (a module that fails to import is skipped: the job imports it itself)
PRELOAD = (
    "torch", "transformers", "transformers.models.llama.modeling_llama",
    "transformers.models.gemma3.modeling_gemma3", "transformers.models.bert.modeling_bert",
    "safetensors.torch", "pandas", "matplotlib", "matplotlib.pyplot", "seaborn", "snakemake.script",
    "snakemake.logging", "lpbench.jobs", "lpbench.evaluate", "lpbench.methods", "lpbench.sources",
    "lpbench.data", "lpbench.calibration", "lpbench.tables", "lpbench.plots", "lpbench.claims",
    # the Hadamard matrices of every rotating job (lpbench.rotation._ct): ~0.2 CPU-s each once transformers is in
    "compressed_tensors.transform.utils.hadamard",
)


# ---- the job side ----------------------------------------------------------------------------------------
def delegate() -> None:
    """Run the calling rule script in the worker and exit with its status; return if there is none.

    Call it first thing in a Snakemake ``script:`` (before the heavy imports)."""
    path = os.environ.get(ENV)
    if not path or os.environ.get(_IN_CHILD):
        return
    main = sys.modules.get("__main__")
    script = getattr(main, "__real_file__", None)    # the script file Snakemake generated (with its preamble)
    if script is None:
        return
    try:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(path)
    except OSError:
        return                                      # no server (yet, or any more): run here
    with conn:
        request = pickle.dumps({"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(),
                                "env": dict(os.environ)})
        sys.stdout.flush()
        sys.stderr.flush()
        socket.send_fds(conn, [_LEN.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        reply = _recv_exact(conn, _LEN.size)
    if reply is None:
        sys.stderr.write(f"lpbench.worker: the worker at {path} closed the connection before the job "
                         "finished (was it stopped?)\n")
        os._exit(1)
    os._exit(_LEN.unpack(reply)[0] & 0xFF)


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


# ---- the server side -------------------------------------------------------------------------------------
def _preload(modules) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")                           # headless, as every figure script
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:                           # noqa: BLE001 — optional: the job imports it itself
            failed.append(name)
    return failed


def _exit_code(e: SystemExit) -> int:
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def _run_child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the job's process and never return."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ[_IN_CHILD] = "1"
        sys.argv = list(request["argv"])
        import runpy
        try:
            runpy.run_path(request["script"], run_name="__main__")
            code = 0
        except SystemExit as e:
            code = _exit_code(e)
        except BaseException as e:                  # noqa: BLE001 — reported like an uncaught exception
            tb = e.__traceback__                    # from the script's own frames on, as Python would
            while tb is not None and tb.tb_frame.f_code.co_filename != request["script"]:
                tb = tb.tb_next
            e = e.with_traceback(tb or e.__traceback__)
            sys.excepthook(type(e), e, e.__traceback__)
            code = 1
        import atexit
        atexit._run_exitfuncs()                     # what interpreter exit would run (e.g. the compute log)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(path: str, preload=PRELOAD, ready_fd: int | None = None) -> None:
    """Import ``preload``, listen on the Unix socket ``path`` and fork one child per job until SIGTERM or
    SIGINT, or until the process that started it is gone (a wrapper killed with SIGKILL). On the way out
    every job child still running is stopped (SIGTERM, then SIGKILL) and reaped."""
    parent = os.getppid()
    failed = _preload(preload)
    # the imported modules' objects go to the permanent generation: a child's garbage collections then
    # never walk (and copy-on-write) them — without this a forked forward pass ran ~20 % slower
    gc.collect()
    gc.freeze()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}            # child pid -> connection of the waiting job process
    if ready_fd is not None:
        os.write(ready_fd, (",".join(failed) + "\n").encode())
        os.close(ready_fd)
    try:
        while not stop and os.getppid() == parent:
            for key, _ in sel.select(timeout=0.05):
                if key.fileobj is listener:
                    _accept(listener, sel, jobs)
                else:                               # readable job connection: its process went away
                    pid = key.data
                    if pid in jobs and not key.fileobj.recv(1, socket.MSG_PEEK):
                        _kill(pid)
                        sel.unregister(key.fileobj)
            _reap(sel, jobs)
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)
        _stop_children(jobs)


def _stop_children(jobs: dict, grace: float = 10.0) -> None:
    """SIGTERM every job child, wait up to ``grace`` s for them, SIGKILL the rest, reap them all."""
    for pid in list(jobs):
        _kill(pid)
    deadline = time.monotonic() + grace
    while jobs:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            conn = jobs.pop(pid, None)
            if conn is not None:
                conn.close()
            continue
        if time.monotonic() > deadline:
            for pid in list(jobs):
                _kill(pid, signal.SIGKILL)
            deadline = float("inf")
        time.sleep(0.02)


def _accept(listener: socket.socket, sel, jobs: dict) -> None:
    conn, _ = listener.accept()
    try:
        msg, fds, _, _ = socket.recv_fds(conn, _LEN.size, 3)
        body = _recv_exact(conn, _LEN.unpack(msg)[0]) if len(msg) == _LEN.size else None
        if body is None or len(fds) != 3:
            raise ValueError("incomplete request")
        request = pickle.loads(body)
    except Exception:                               # noqa: BLE001 — a broken client must not stop the server
        conn.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        sel.close()
        listener.close()
        for other in jobs.values():
            other.close()
        conn.close()
        _run_child(request, fds)
    for fd in fds:
        os.close(fd)
    jobs[pid] = conn
    sel.register(conn, selectors.EVENT_READ, data=pid)


def _reap(sel, jobs: dict) -> None:
    while jobs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = jobs.pop(pid, None)
        if conn is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        try:
            conn.sendall(_LEN.pack(code if code >= 0 else 128 - code))
        except OSError:
            pass
        try:
            sel.unregister(conn)
        except (KeyError, ValueError):
            pass
        conn.close()


def _kill(pid: int, sig: int = signal.SIGTERM) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# ---- the wrapper ------------------------------------------------------------------------------------------
#: signals the wrapper passes on to the command as the terminal's ^C would (SIGHUP: the terminal closed)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_with_worker(command: list[str], path: str, grace: float = 30.0) -> int:
    """Start a server on ``path``, run ``command`` with ``LPBENCH_WORKER`` set, stop the server; the
    command's exit status. The command starts at once: jobs that come before the server is ready run in
    their own process.

    Signals: the command runs in its own session (process group), so the wrapper's pid is the one to
    signal (what a user's ``kill``, a batch system or the terminal's ^C reaches). SIGINT, SIGTERM and
    SIGHUP to the wrapper are each passed on as SIGINT to the command's whole process group — for
    Snakemake exactly a ^C: it and its running jobs stop, the jobs are marked incomplete and the next run
    (``--rerun-incomplete``) redoes them. (Snakemake's own SIGTERM handling would instead wait for the
    running jobs to finish.) When the command has exited, whatever is left in its process group gets
    SIGTERM, then SIGKILL after ``grace`` s, and the server is stopped and waited for (it stops its own
    job children first): the wrapper returns only when no process it started is left. Exit status: the
    command's, or 128 + the signal number if it was signalled and still exited 0."""
    received: list[int] = []
    proc: subprocess.Popen | None = None

    def forward(signum, _frame):
        received.append(signum)
        if proc is not None:
            signal_group(proc.pid, signal.SIGINT)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    r, w = os.pipe()
    server = subprocess.Popen([sys.executable, "-m", "lpbench.worker", "serve", path, "--ready-fd", str(w)],
                              pass_fds=(w,))
    os.close(w)
    env = {**os.environ, ENV: os.path.abspath(path)}
    t0 = time.perf_counter()

    def announce():                                 # one line from the server when its imports are done
        with os.fdopen(r) as ready:
            line = ready.readline()
        if line.strip():
            print(f"lpbench.worker: not preloaded (jobs import them): {line.strip()}", file=sys.stderr)
        if line:
            print(f"lpbench.worker: ready after {time.perf_counter() - t0:.1f} s", file=sys.stderr)

    threading.Thread(target=announce, daemon=True).start()
    code = 1
    try:
        if not received:                            # not signalled while the server was being started
            # not waiting for the server: a no-op run stays fast
            proc = subprocess.Popen(command, env=env, start_new_session=True)
            if received:                            # signalled while the command was being started
                signal_group(proc.pid, signal.SIGINT)
            code = proc.wait()
    finally:
        if proc is not None:
            empty_group(proc.pid, grace)
        server.terminate()
        try:
            server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 + received[0] if received and code == 0 else code


def main(argv: list[str] | None = None) -> int:
    import argparse
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "serve":
        p = argparse.ArgumentParser(prog="python -m lpbench.worker serve")
        p.add_argument("path")
        p.add_argument("--ready-fd", type=int)
        a = p.parse_args(argv[1:])
        serve(a.path, ready_fd=a.ready_fd)
        return 0
    p = argparse.ArgumentParser(prog="python -m lpbench.worker",
                                description="run COMMAND with a pre-loaded worker for its rule scripts")
    p.add_argument("--socket", default=".snakemake/lpbench-worker.sock")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    command = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not command:
        p.error("no command given (python -m lpbench.worker -- snakemake …)")
    path = os.path.abspath(a.socket)
    if len(path.encode()) > 100:                    # AF_UNIX paths are limited to ~107 bytes
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="lpbench-worker-"), "s.sock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return run_with_worker(command, path)


if __name__ == "__main__":
    sys.exit(main())
