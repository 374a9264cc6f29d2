"""Checks of the experiment config beyond its JSON schema, run by the Snakefile before any job starts:

* :func:`load_yaml` — a YAML syntax error names the file, line and column;
* :func:`check_entries` — every model / corpus entry holds only the keys its ``source`` accepts (the
  ``propertyNames`` lists of the schema's per-source branches), reported with the allowed keys and the
  nearest one ("did you mean");
* :func:`check_references` — every name an experiment uses exists, every method entry builds (known
  kind, known parameters, each parameter within its declared type and range).

``python -m lpbench.config FILE...`` runs all of them on config files (``make run`` does, first).
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path

from lpbench.methods import build_method

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def load_yaml(path) -> dict:
    """Load a YAML config; a syntax error names the file, the line and the column."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: YAML syntax error: {e.problem or e.context}"
                          f"{f' ({e.context})' if e.context and e.problem else ''}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys at top level, got {type(data).__name__}")
    return data


def allowed_keys(schema: dict) -> dict[str, dict[str, list[str]]]:
    """``{section: {source: [allowed keys]}}`` from the schema's per-source ``propertyNames`` lists."""
    out: dict[str, dict[str, list[str]]] = {}
    for section in ("models", "corpora"):
        entry = schema["properties"][section]["additionalProperties"]
        for branch in entry.get("allOf", []):
            source = branch["if"]["properties"]["source"]["const"]
            out.setdefault(section, {})[source] = list(branch["then"]["propertyNames"]["enum"])
    return out


def check_entries(config: dict, schema: dict | None = None) -> None:
    """Unknown keys in a model or corpus entry are an error (listing the keys its source accepts)."""
    import yaml

    schema = schema if schema is not None else yaml.safe_load(SCHEMA.read_text())
    errors = []
    for section, by_source in allowed_keys(schema).items():
        for name, entry in (config.get(section) or {}).items():
            if not isinstance(entry, dict) or entry.get("source") not in by_source:
                continue  # the schema reports these (not a mapping, unknown source)
            allowed = by_source[entry["source"]]
            for key in entry:
                if key not in allowed:
                    near = difflib.get_close_matches(str(key), allowed, n=1)
                    errors.append(f"{section}.{name}: unknown key '{key}' for source '{entry['source']}'"
                                  f"{f' (did you mean {near[0]!r}?)' if near else ''}; allowed: {allowed}")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


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


def main(argv: list[str] | None = None) -> int:
    """``python -m lpbench.config FILE...``: YAML syntax (file:line), strict entries, references."""
    import yaml

    schema = yaml.safe_load(SCHEMA.read_text())
    status = 0
    for f in argv if argv is not None else sys.argv[1:]:
        try:
            cfg = load_yaml(f)
            check_entries(cfg, schema)
            if all(k in cfg for k in ("models", "corpora", "methods", "experiments")):
                check_references(cfg)
        except ConfigError as e:
            print(f"{f}: {e}" if not str(e).startswith(str(f)) else str(e), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
