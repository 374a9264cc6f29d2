"""Checks of the experiment config beyond its JSON schema: every name an experiment uses exists, every
method entry builds (known kind, known parameters). Run by the Snakefile before any job starts."""
from __future__ import annotations

from lpbench.methods import build_method


class ConfigError(ValueError):
    pass


def check_references(config: dict) -> None:
    errors = []
    for i, exp in enumerate(config["experiments"]):
        for key in ("models", "corpora", "methods"):
            unknown = [n for n in exp[key] if n not in config[key]]
            if unknown:
                errors.append(f"experiments[{i}].{key}: unknown {key[:-1] if key != 'corpora' else 'corpus'}"
                              f" name(s) {unknown}; known: {sorted(config[key])}")
    for name, entry in config["methods"].items():
        try:
            build_method(name, entry)
        except (ValueError, TypeError) as e:
            errors.append(str(e))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def experiment_triples(config: dict) -> list[tuple[str, str, str]]:
    """Every (model, corpus, method) to evaluate, in config order, without duplicates."""
    seen = {}
    for exp in config["experiments"]:
        for m in exp["models"]:
            for c in exp["corpora"]:
                for meth in exp["methods"]:
                    seen[(m, c, meth)] = None
    return list(seen)


def window_settings(config: dict, model: str, kind: str = "evaluation") -> dict:
    """Evaluation window settings with the model's own overrides (e.g. a shorter position table)."""
    base = dict(config[kind])
    if kind == "evaluation":
        base.update(config["models"][model].get("eval", {}))
    return base
