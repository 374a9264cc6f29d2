"""Shared set-up for the pipeline's scripts: threads, seeds, logging to the rule's log file.

Scripts are thin: read ``snakemake.input/params/output``, call the library, write. :func:`mock_snakemake`
stands in for the ``snakemake`` object in tests and in ``scripts/iterl2norm_record.py``, the one script
that also runs standalone (outside Snakemake).
"""
from __future__ import annotations

import atexit
import json
import logging
import random
import resource
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import torch


def setup(snakemake) -> logging.Logger:
    threads = int(getattr(snakemake, "threads", 1) or 1)
    torch.set_num_threads(threads)
    seed = int(snakemake.params.get("seed", 0)) if hasattr(snakemake.params, "get") else 0
    random.seed(seed)
    torch.manual_seed(seed)
    log = logging.getLogger("lpbench")
    log.setLevel(logging.INFO)
    log.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handlers = [logging.StreamHandler()]
    if getattr(snakemake, "log", None):
        Path(snakemake.log[0]).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(snakemake.log[0], mode="w"))
    for h in handlers:
        h.setFormatter(fmt)
        log.addHandler(h)
    install_excepthook(log)
    atexit.register(_report_compute, log)
    return log


def job_cpu_s() -> float:
    """CPU seconds of this job's process (all threads) and its finished subprocesses. In a job forked by
    :mod:`lpbench.worker` this starts at zero with the job, so it is the job's own CPU either way."""
    self, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return self.ru_utime + self.ru_stime + children.ru_utime + children.ru_stime


_COMPUTE_CPU_S = [0.0]


@contextmanager
def compute():
    """Marks the work a result needs — model forward passes, training steps — as opposed to process
    start-up, model loading, I/O, tables and figures. The CPU seconds spent inside (all threads of the
    process) are summed and written to the rule's log at exit as ``compute_cpu_s=…``, which
    ``benchmarks/pipeline_profile.py`` adds up into the pipeline's overhead ratio."""
    t0 = time.process_time()
    try:
        yield
    finally:
        _COMPUTE_CPU_S[0] += time.process_time() - t0


def _report_compute(log: logging.Logger) -> None:
    if _COMPUTE_CPU_S[0] > 0:
        log.info("compute_cpu_s=%.3f", _COMPUTE_CPU_S[0])
    log.info("job_cpu_s=%.3f", job_cpu_s())    # benchmark files miss the CPU of a job run in the worker


def install_excepthook(log: logging.Logger) -> None:
    """An uncaught exception is written to the rule's log (type, message, traceback) before the script
    exits non-zero, so "check log file(s) for error details" finds it; it still goes to stderr too."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        if not issubclass(exc_type, KeyboardInterrupt):
            text = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
            file_handlers = [h for h in log.handlers if isinstance(h, logging.FileHandler)]
            record = logging.LogRecord(log.name, logging.ERROR, __file__, 0,
                                       "job failed: %s: %s\n%s", (exc_type.__name__, exc, text), None)
            for h in file_handlers:  # the console gets the traceback from the default hook below
                h.handle(record)
                h.flush()
        previous(exc_type, exc, tb)

    sys.excepthook = hook


def write_json(path, obj) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def mock_snakemake(input: dict, output: dict, params: dict | None = None, threads: int = 1,
                   log: list | None = None):
    """A stand-in for the ``snakemake`` object so that a script runs standalone or under a test."""
    class _NS(SimpleNamespace):
        def __getitem__(self, i):
            return list(vars(self).values())[i]

        def get(self, key, default=None):
            return getattr(self, key, default)

    return SimpleNamespace(input=_NS(**input), output=_NS(**output), params=_NS(**(params or {})),
                           threads=threads, log=log or [], wildcards=_NS())
