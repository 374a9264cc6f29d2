"""Process groups: signal one, and wait until none of its processes is left (used by lpbench.worker)."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False if the group has no process any more."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:                         # only a foreign process is left in it: not ours
        return False


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a live (not zombie) process: /proc on Linux (an orphan's zombie
    may linger where PID 1 does not reap), else whether the group can be signalled."""
    proc = Path("/proc")
    if not proc.is_dir():
        return signal_group(pgid, 0)
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def empty_group(pgid: int, grace: float) -> None:
    """Wait until process group ``pgid`` has no live process: SIGTERM at once, SIGKILL after ``grace`` s;
    gives up (with a warning) ``grace`` s after the SIGKILL."""
    if not group_alive(pgid):
        return
    signal_group(pgid, signal.SIGTERM)
    start = time.monotonic()
    killed = False
    while group_alive(pgid):
        waited = time.monotonic() - start
        if waited > grace and not killed:
            signal_group(pgid, signal.SIGKILL)
            killed = True
        elif waited > 2 * grace:
            print(f"lpbench.worker: processes of group {pgid} survived SIGKILL for {grace:g} s", file=sys.stderr)
            return
        time.sleep(0.05)
