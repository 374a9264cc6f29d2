"""Hardware-cost scaffold: per-token op counts → energy, with constants from ``config/hw_costs.yaml``.

Each method reports ``ops_per_token(dims)`` as ``{op_name: count}``; this module multiplies by the
per-op energies of the cost file. An op name the file does not define is an error naming the known ones
(no silent zero).
"""
from __future__ import annotations

from pathlib import Path

from lpbench.config import load_yaml


def load_costs(path: str | Path) -> dict:
    data = load_yaml(path)  # strict: a key given twice is an error naming file and line
    for op, entry in data["energy_pj"].items():
        if "value" not in entry or "source" not in entry:
            raise ValueError(f"{path}: energy_pj.{op} needs 'value' and 'source'")
    return data


def energy_pj(ops: dict[str, float], costs: dict) -> dict[str, float]:
    """Energy per op family and in total (pJ per token)."""
    table = costs["energy_pj"]
    unknown = sorted(set(ops) - set(table))
    if unknown:
        raise KeyError(f"op(s) {unknown} have no energy constant in the cost file; known: {sorted(table)}")
    parts = {op: count * table[op]["value"] for op, count in ops.items()}
    parts["total"] = sum(parts.values())
    return parts
