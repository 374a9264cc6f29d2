"""Unified Normalization study (Yang et al., ACM MM 2022): train LN / BN / UN transformers on real data,
fold UN into the linears, measure CPU latency / memory and the norms' per-token ops.

Settings come from the ``unified_norm`` config block; :func:`settings` fills defaults and checks names,
:func:`runs` lists the (task, norm, seed) training jobs.
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
            from .outliers import outlier_settings
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
