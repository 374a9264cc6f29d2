"""Checks of the experiment config beyond its JSON schema, run by the Snakefile before any job starts:

* :func:`load_yaml` — a YAML syntax error names the file, line and column;
* :func:`check_entries` — every model / corpus entry holds only the keys its ``source`` accepts (the
  ``propertyNames`` lists of the schema's per-source branches), reported with the allowed keys and the
  nearest one ("did you mean");
* :func:`check_references` — every name an experiment uses exists, every method entry builds (known
  kind, known parameters, each parameter within its declared type and range);
* :func:`method_facts` — the same checks, plus what the DAG needs to know of each method (offline step,
  GPTQ weight set), remembered between Snakefile parses so a no-op run does not import torch.

``python -m lpbench.config FILE...`` runs all of them on config files (``make run`` does, first).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from pathlib import Path

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


def expand_stacks(methods: dict) -> tuple[dict, list[str]]:
    """``methods`` with each ``stack`` entry's ``of`` list resolved: every method name replaced by a copy of
    that method's entry with its ``name`` (``{"name": "rrs-w4a4", "method": "rrs", ...}``), so that a stack's
    entry holds everything that defines it (its config hash changes with any of its methods, and a script
    builds it from the entry alone). Returns (methods, errors); an unknown name, a stack in a stack or an
    ``of`` that is not a list of names is an error. Entries already resolved are kept as they are."""
    out, errors = dict(methods), []
    for name, entry in methods.items():
        if not isinstance(entry, dict) or entry.get("method") != "stack":
            continue
        of = entry.get("of")
        if not isinstance(of, list) or not all(isinstance(x, (str, dict)) for x in of):
            errors.append(f"method '{name}' (kind stack): 'of' must be a list of configured method names, "
                          f"got {of!r}")
            continue
        resolved = []
        for x in of:
            if isinstance(x, dict):
                resolved.append(x)
            elif x not in methods:
                near = difflib.get_close_matches(x, list(methods), n=1)
                errors.append(f"method '{name}' (kind stack): unknown method '{x}'"
                              f"{f' (did you mean {near[0]!r}?)' if near else ''}")
            elif methods[x].get("method") == "stack":
                errors.append(f"method '{name}' (kind stack): '{x}' is itself a stack; list its methods instead")
            else:
                resolved.append({"name": x, **methods[x]})
        out[name] = {**entry, "of": resolved}
    return out, errors


def check_references(config: dict, build_methods: bool = True) -> dict:
    """Every name an experiment uses is configured; with ``build_methods``, every method entry builds
    (this imports the method modules, and with them torch; stacks are resolved first,
    :func:`expand_stacks`). Returns the built methods by name (none without ``build_methods``)."""
    errors = []
    built = {}
    for i, exp in enumerate(config["experiments"]):
        for key in ("models", "corpora", "methods"):
            unknown = [n for n in exp[key] if n not in config[key]]
            if unknown:
                errors.append(f"experiments[{i}].{key}: unknown {key[:-1] if key != 'corpora' else 'corpus'}"
                              f" name(s) {unknown}; known: {sorted(config[key])}")
    if build_methods:
        from lpbench.methods import build_method

        methods, stack_errors = expand_stacks(config["methods"])
        errors += stack_errors
        for name, entry in methods.items():
            if any(e.startswith(f"method '{name}' (kind stack)") for e in stack_errors):
                continue
            try:
                built[name] = build_method(name, entry)
            except (ValueError, TypeError) as e:
                errors.append(str(e))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return built


#: the package whose source decides what a method entry means (kinds, parameter checks, GPTQ set names)
CODE_ROOT = Path(__file__).resolve().parent


def method_facts(config: dict, cache_dir: str | Path | None = None, code_root: Path = CODE_ROOT) -> dict:
    """:func:`check_references`, then for every configured method ``{"offline": bool, "gptq": str | None}``:
    whether it has an offline step (an artifact job) and the name of the shared GPTQ weight set it reads.

    Building the methods imports torch, and the Snakefile is parsed on every run (a no-op ``make run``
    took 3.8–4.8 s with it, 1.9–2.0 s without). So with ``cache_dir`` the answer is kept in a file named
    by a hash of the ``methods`` section and of every source file under ``code_root``: a run with the same
    methods and the same code reads it (names are still checked, torch is not imported); a change to
    either builds and checks every method again. Only a config that passed the checks is ever written."""
    key = None
    if cache_dir is not None:
        h = hashlib.sha256(json.dumps(config["methods"], sort_keys=True, default=repr).encode())
        for p in sorted(Path(code_root).rglob("*.py")):
            h.update(str(p.relative_to(code_root)).encode() + b"\0" + p.read_bytes() + b"\0")
        key = Path(cache_dir) / f"method-facts-{h.hexdigest()[:20]}.json"
        try:
            facts = json.loads(key.read_text())
        except (OSError, ValueError):
            facts = None
        if isinstance(facts, dict) and set(facts) == set(config["methods"]):
            check_references(config, build_methods=False)
            return facts
    built = check_references(config)
    from lpbench.methods import has_offline_step
    from lpbench.methods.gptq import gptq_key

    facts = {name: {"offline": has_offline_step(config["methods"][name]), "gptq": gptq_key(method),
                    **({"stack": method.facts()} if method.kind == "stack" else {})}
             for name, method in built.items()}
    if key is not None:
        try:
            key.parent.mkdir(parents=True, exist_ok=True)
            tmp = key.with_name(f"{key.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(facts, indent=1, sort_keys=True))
            os.replace(tmp, key)                    # atomic: a concurrent parse reads all or nothing
            for stale in key.parent.glob("method-facts-*.json"):
                if stale != key:
                    stale.unlink(missing_ok=True)
        except OSError:
            pass                                    # read-only working directory: just not remembered
    return facts


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
