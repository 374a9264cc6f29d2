"""Unified Normalization study (Yang et al., ACM MM 2022): train LN / BN / UN transformers on real data,
fold UN into the linears, measure CPU latency / memory and the norms' per-token ops.

Settings come from the ``unified_norm`` config block; :func:`settings` fills defaults and checks names,
:func:`runs` lists the (task, norm, seed) training jobs, :func:`task_inputs`, :func:`run_files` and
:func:`speed_runs` the files the rules read. This module imports no torch: the Snakefile imports it (the
training, folding, timing and tables are in its submodules).
"""
from __future__ import annotations

import copy

DEFAULTS = {
    "seeds": [0, 1, 2],
    "images": {},
    "norms": {},
    "tasks": {},
    "speed": {"tasks": [], "shapes": {}, "grid": [[1, 64]], "trained_grid": [[1, 64]], "repeats": 5, "warmup": 2},
}
TASK_KEYS = {"kind", "data", "un", "norms", "arch", "train", "eval", "stress", "stat_layer", "label", "outliers"}


def settings(block: dict | None) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    block = copy.deepcopy(block or {})
    unknown = sorted(set(block) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unified_norm: unknown key(s) {unknown}; known: {sorted(DEFAULTS)}")
    speed = {**cfg["speed"], **block.pop("speed", {})}
    cfg.update(block)
    cfg["speed"] = speed
    for name, task in cfg["tasks"].items():
        bad = sorted(set(task) - TASK_KEYS)
        if bad:
            raise ValueError(f"unified_norm.tasks.{name}: unknown key(s) {bad}; known: {sorted(TASK_KEYS)}")
        if task.get("kind") not in ("vision", "lm"):
            raise ValueError(f"unified_norm.tasks.{name}: kind must be vision or lm, got {task.get('kind')!r}")
        missing = sorted(set(task.get("norms", [])) - set(cfg["norms"]))
        if missing:
            raise ValueError(f"unified_norm.tasks.{name}: unknown norm(s) {missing}; known: {sorted(cfg['norms'])}")
        if task.get("un") and task["un"] not in cfg["norms"]:
            raise ValueError(f"unified_norm.tasks.{name}: un '{task['un']}' is not a norm")
        if task.get("outliers") is not None:
            if task["kind"] != "vision":
                raise ValueError(f"unified_norm.tasks.{name}: outliers are implemented for vision tasks only")
            outlier_settings(task["outliers"])
        if task["kind"] == "vision" and task.get("data") not in cfg["images"]:
            raise ValueError(f"unified_norm.tasks.{name}: image set '{task.get('data')}' is not in unified_norm.images")
    for t in cfg["speed"]["tasks"]:
        if t not in cfg["tasks"]:
            raise ValueError(f"unified_norm.speed.tasks: unknown task '{t}'")
    return cfg


def role(cfg: dict, task: str, norm: str) -> str:
    kind = cfg["norms"][norm]["kind"]
    if kind in ("ln", "bn"):
        return kind
    return "un" if cfg["tasks"][task].get("un") == norm else "ablation"


def runs(cfg: dict) -> list[tuple[str, str, int]]:
    return [(t, n, s) for t, task in cfg["tasks"].items() for n in task["norms"] for s in cfg["seeds"]]


#: the files of one training run (rule un_train), by kind
RUN_FILES = {"json": "results/unified_norm/runs/{t}/{n}/seed{s}.json",
             "log": "results/data/unified_norm/{t}/{n}/seed{s}.csv",
             "ckpt": "resources/unified_norm/ckpt/{t}/{n}/seed{s}.pt"}


def task_inputs(cfg: dict, name: str) -> dict[str, str]:
    """The data files a task trains and evaluates on: its image set, or its corpus's two splits."""
    task = cfg["tasks"][name]
    if task["kind"] == "vision":
        return {"images": f"resources/unified_norm/images/{task['data']}.pt"}
    return {"calibration": f"resources/corpora/{task['data']}/calibration.txt",
            "evaluation": f"resources/corpora/{task['data']}/evaluation.txt"}


def run_files(kind: str, runs: list[tuple[str, str, int]]) -> list[str]:
    """One file of each (task, norm, seed) run: ``json`` result, ``log`` per-step CSV or ``ckpt``."""
    return [RUN_FILES[kind].format(t=t, n=n, s=s) for t, n, s in runs]


def speed_runs(cfg: dict) -> list[tuple[str, str, int]]:
    """The trained runs the speed study folds and times: LN and the task's UN norm, first seed."""
    seed = cfg["seeds"][0]
    return [(t, n, seed) for t in cfg["speed"]["tasks"] for n in ("ln", cfg["tasks"][t]["un"])]


#: the injected-outlier schedule of a stress task (UN-3); drawn in lpbench.studies.unified_norm.outliers
OUTLIER_DEFAULTS = {"step_prob": 0.1, "token_frac": 0.01, "scale": 100.0, "start_frac": 0.1, "stop_frac": 0.9}


def outlier_settings(block: dict | None) -> dict:
    cfg = {**OUTLIER_DEFAULTS, **(block or {})}
    unknown = sorted(set(cfg) - set(OUTLIER_DEFAULTS))
    if unknown:
        raise ValueError(f"outliers: unknown key(s) {unknown}; known: {sorted(OUTLIER_DEFAULTS)}")
    if not 0 <= cfg["step_prob"] <= 1 or not 0 < cfg["token_frac"] <= 1:
        raise ValueError("outliers: step_prob must be in [0, 1] and token_frac in (0, 1]")
    if not 0 <= cfg["start_frac"] <= cfg["stop_frac"] <= 1:
        raise ValueError("outliers: need 0 <= start_frac <= stop_frac <= 1")
    if cfg["scale"] <= 0:
        raise ValueError("outliers: scale must be positive")
    return cfg
