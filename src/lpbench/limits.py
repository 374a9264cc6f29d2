"""Limits of the machine and of the models, checked in the dry run where they are known, else by the
first job that knows them (the Snakefile calls :func:`check_device` and :func:`check_positions`; the
jobs call :func:`check_job_seqlen` and :func:`check_job_device`):

* ``device`` (cuda, cuda:N, mps) must be usable by this torch where the jobs run;
* every model's evaluation / calibration ``seqlen`` (including ``models.<id>.eval.seqlen``) must fit
  the positions the model was built for (``max_position_embeddings``): Llama-family RoPE models would
  otherwise compute a perplexity at positions they never saw, OPT and BERT fail with an IndexError.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from lpbench.config import ConfigError, window_settings

#: set to 0 to skip the dry run's device check (jobs still check on the machine they run on)
DEVICE_CHECK_ENV = "LPBENCH_DEVICE_CHECK"


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot run here (None: it can). Imports torch only for a non-CPU device."""
    if device == "cpu":
        return None
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            return (f"this torch ({torch.__version__}) has no usable CUDA (built with CUDA "
                    f"{torch.version.cuda or 'none'}, {torch.cuda.device_count()} device(s) visible)")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            return f"only {torch.cuda.device_count()} CUDA device(s) are visible"
    elif device == "mps" and not torch.backends.mps.is_available():
        return f"this torch ({torch.__version__}) has no usable MPS backend"
    return None


def check_device(config: dict, local_exec: bool = True) -> None:
    """``device`` must be usable where the jobs run. Checked when they run on this machine (a cluster
    executor such as ``--executor slurm`` runs them elsewhere: each job checks on its node) unless
    ``LPBENCH_DEVICE_CHECK=0`` (e.g. a dry run of a GPU config on a CPU login node)."""
    device = config.get("device", "cpu")
    if not local_exec or os.environ.get(DEVICE_CHECK_ENV, "1") == "0":
        return
    why = device_problem(device)
    if why:
        raise ConfigError(f"device: {device!r} cannot run on this machine: {why}. Use device: cpu here; on a "
                          f"GPU node install torch's CUDA build; submitting from a CPU login node, run through a "
                          f"cluster executor (--profile profiles/slurm: each job checks on its node) or set "
                          f"{DEVICE_CHECK_ENV}=0 to skip this check")


def position_limit(model_config: dict) -> int | None:
    """Positions a model was built for (its position table / RoPE range), from its ``config.json`` fields."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if isinstance(model_config.get(key), int) and model_config[key] > 0:
            return model_config[key]
    text = model_config.get("text_config")
    return position_limit(text) if isinstance(text, dict) else None


def model_config_facts(name: str, entry: dict, resources: str | Path = "resources") -> tuple[dict, str] | None:
    """The transformers config of a model as far as it is known without running anything: a ``random``
    entry's own ``config`` (if it sets the position table), a ``local`` directory's config.json, else the
    config.json download_model wrote. (config dict, where it came from), or None."""
    if entry.get("source") == "random" and position_limit(entry.get("config") or {}) is not None:
        return entry["config"], f"models.{name}.config"
    for path in ([Path(entry["path"]) / "config.json"] if entry.get("source") == "local" else []) + \
            [Path(resources) / "models" / name / "config.json"]:
        try:
            return json.loads(path.read_text()), str(path)
        except (OSError, ValueError):
            continue
    return None


def seqlen_problem(model: str, kind: str, seqlen: int, model_config: dict, where: str,
                   override: bool | None = None) -> str | None:
    """A message if ``seqlen`` exceeds the model's position table. ``override``: whether the value came from
    ``models.<model>.eval.seqlen`` (None: not known here, both keys are named)."""
    limit = position_limit(model_config)
    if limit is None or seqlen <= limit:
        return None
    which = ("max_position_embeddings" if "max_position_embeddings" in model_config else "position table")
    if kind == "calibration":
        key = "calibration.seqlen"
    else:
        key = {True: f"models.{model}.eval.seqlen", False: "evaluation.seqlen",
               None: f"evaluation.seqlen (or models.{model}.eval.seqlen)"}[override]
    fix = (f"set calibration.seqlen <= {limit}" if kind == "calibration" else
           f"set models.{model}.eval.seqlen: {limit} (or less) for this model" if override else
           f"lower evaluation.seqlen, or set models.{model}.eval.seqlen: {limit} (or less) for this model")
    return (f"{key} = {seqlen} exceeds the {limit} positions model '{model}' was built for ({which} = {limit} "
            f"in {where}): it would run at positions it has no trained embedding for; {fix}")


def check_positions(config: dict, resources: str | Path = "resources") -> None:
    """Every model's evaluation and calibration ``seqlen`` (with its ``eval`` override) fits its position
    table, where the table is known before any job runs (``random`` / ``local`` entries, downloaded
    models); the jobs check the others (:func:`check_job_seqlen`) once the model is downloaded."""
    errors = []
    for name, entry in config["models"].items():
        facts = model_config_facts(name, entry, resources)
        if facts is None:
            continue
        for kind in ("evaluation", "calibration"):
            override = kind == "evaluation" and "seqlen" in (entry.get("eval") or {})
            msg = seqlen_problem(name, kind, window_settings(config, name, kind)["seqlen"], *facts, override)
            if msg:
                errors.append(msg)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def check_job_seqlen(model_dir: str | Path, seqlen: int, kind: str = "evaluation") -> None:
    """In a job, before any window is built: ``seqlen`` fits the downloaded model's position table."""
    path = Path(model_dir) / "config.json"
    msg = seqlen_problem(Path(model_dir).name, kind, int(seqlen), json.loads(path.read_text()), str(path))
    if msg:
        raise ConfigError(msg)


def check_job_device(device: str) -> None:
    """In a job, before anything is computed: ``device`` is usable on the machine the job runs on."""
    why = device_problem(device)
    if why:
        raise ConfigError(f"device: {device!r} cannot run on this machine ({os.uname().nodename}): {why}")
