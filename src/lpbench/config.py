"""Checks of the experiment config beyond its JSON schema, run by the Snakefile before any job starts:

* :func:`load_yaml` — strict YAML for every file the suite reads (configs, the claims ledger, the cost
  file): a syntax error names the file, line and column; a key given twice in one mapping names the file,
  both lines and the key (a plain load keeps the last value without a word);
* :func:`config_overrides` — ``--config key=value`` values typed as YAML at any depth, so a nested value
  can be overridden (``--config 'evaluation={seqlen: 256}'``);
* :func:`check_entries` — every model / corpus entry holds only the keys its ``source`` accepts (the
  ``propertyNames`` lists of the schema's per-source branches), reported with the allowed keys and the
  nearest one ("did you mean"); an ``hf`` ``repo_id`` has the hub's ``owner/name`` form;
* :func:`check_references` — every name an experiment uses exists (else the nearest known one is
  offered), every method entry builds (known kind, known parameters, each parameter within its declared
  type and range);
* :func:`method_facts` — the same checks, plus what the DAG needs to know of each method (offline step,
  GPTQ weight set), remembered between Snakefile parses so a no-op run does not import torch.

``python -m lpbench.config FILE...`` runs all of them on config files (``make run`` does, first).
"""
from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import re
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    pass


def safe_loader():
    """PyYAML's safe loader, the libyaml (C) one where PyYAML has it: the same documents ~10x faster; the
    Snakefile reads the config, the claims ledger and their schemas on every run, no-op runs included."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=None)
def _strict_loader():
    """:func:`safe_loader` whose mappings refuse a key given twice (PyYAML keeps the last silently).
    Keys brought in by a merge (``<<: *anchor``) may be overridden, as YAML specifies."""
    import yaml

    class StrictLoader(safe_loader()):
        pass

    def construct_mapping(loader, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:                   # unhashable key: the constructor reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(key, first.line + 1, key_node.start_mark.line + 1,
                                            key_node.start_mark.column + 1)
                seen[key] = key_node.start_mark
        return yaml.constructor.SafeConstructor.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return StrictLoader


class DuplicateKeyError(Exception):
    def __init__(self, key, first_line: int, line: int, column: int):
        super().__init__(key, first_line, line, column)
        self.key, self.first_line, self.line, self.column = key, first_line, line, column


def _load_json_strict(path: Path, text: str):
    """``text`` as JSON (for a JSON config the YAML loader cannot read), a key given twice in one object
    being an error naming the file and the key; None if it is not JSON either."""
    import json

    dup = []

    def pairs(items):
        keys = [k for k, _ in items]
        dup.extend(k for i, k in enumerate(keys) if k in keys[:i])
        return dict(items)

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except ValueError:
        return None
    if dup:
        raise ConfigError(f"{path}: duplicate key {dup[0]!r} in a JSON object; a key may appear once per object")
    return data


def load_yaml(path) -> dict:
    """Load a YAML (or JSON) file strictly: a syntax error names the file, line and column; a key given
    twice in one mapping names the file, both lines and the key (a plain YAML load keeps the last value
    silently: two method entries of the same name became one)."""
    import yaml

    path = Path(path)
    text = path.read_text()
    try:
        data = yaml.load(text, Loader=_strict_loader())
    except DuplicateKeyError as e:
        raise ConfigError(f"{path}:{e.line}:{e.column}: duplicate key {e.key!r} (first given on line "
                          f"{e.first_line}); a key may appear once per mapping: rename or remove one") from None
    except yaml.MarkedYAMLError as e:
        data = _load_json_strict(path, text)
        if data is None:
            mark = e.problem_mark or e.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            raise ConfigError(f"{where}: YAML syntax error: {e.problem or e.context}"
                              f"{f' ({e.context})' if e.context and e.problem else ''}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys at top level, got {type(data).__name__}")
    return data


def config_overrides(args) -> dict:
    """``--config key=value`` arguments read the way a config file is read (strict YAML): Snakemake types
    only a top-level value and leaves every nested leaf a string (``evaluation={seqlen: 256}`` gives
    ``'256'``, which the schema then refuses). A value that is not YAML stays the string it was."""
    import yaml

    out = {}
    for arg in args or []:
        key, sep, value = str(arg).partition("=")
        if not sep:
            continue                                # Snakemake has refused it already
        try:
            out[key] = yaml.load(value, Loader=_strict_loader()) if value != "" else None
        except DuplicateKeyError as e:
            raise ConfigError(f"--config {arg}: duplicate key {e.key!r}") from None
        except yaml.YAMLError:
            out[key] = value
    return out


def allowed_keys(schema: dict) -> dict[str, dict[str, list[str]]]:
    """``{section: {source: [allowed keys]}}`` from the schema's per-source ``propertyNames`` lists."""
    out: dict[str, dict[str, list[str]]] = {}
    for section in ("models", "corpora"):
        entry = schema["properties"][section]["additionalProperties"]
        for branch in entry.get("allOf", []):
            source = branch["if"]["properties"]["source"]["const"]
            out.setdefault(section, {})[source] = list(branch["then"]["propertyNames"]["enum"])
    return out


#: a hub repo id: owner/name, word characters, '-' and '.', each part starting and ending with a word character
REPO_ID = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?/[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def repo_id_ok(repo_id) -> bool:
    """Whether ``repo_id`` has the hub's form (the hub refuses any other before a download starts)."""
    return (isinstance(repo_id, str) and len(repo_id) <= 96 and REPO_ID.match(repo_id) is not None
            and "--" not in repo_id and ".." not in repo_id)


def check_entries(config: dict, schema: dict | None = None) -> None:
    """Unknown keys in a model or corpus entry are an error (listing the keys its source accepts); an ``hf``
    entry's ``repo_id`` must have the hub's form (``owner/name``)."""
    import yaml

    schema = schema if schema is not None else yaml.load(SCHEMA.read_text(), Loader=safe_loader())
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
            if entry["source"] == "hf" and "repo_id" in entry and not repo_id_ok(entry["repo_id"]):
                errors.append(f"{section}.{name}.repo_id: {entry['repo_id']!r} is not a Hugging Face repo id: "
                              "'owner/name', each part letters, digits, '-', '_' or '.', starting and ending with a "
                              "letter, digit or '_', no '--' or '..', at most 96 characters (a legacy id without "
                              "owner such as 'gpt2' is spelled with its owner now: 'openai-community/gpt2')")
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def did_you_mean(unknown, known) -> str:
    """`` (did you mean 'x'?)`` for the nearest known name of each unknown one, or ``""`` when none is near."""
    near = {u: m[0] for u in unknown if (m := difflib.get_close_matches(str(u), [str(k) for k in known], n=1))}
    if not near:
        return ""
    return " (did you mean " + ", ".join(f"{v!r} for {u!r}" if len(unknown) > 1 else repr(v)
                                         for u, v in near.items()) + "?)"


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
                errors.append(f"method '{name}' (kind stack): unknown method '{x}'{did_you_mean([x], methods)}")
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
                              f" name(s) {unknown}{did_you_mean(unknown, config[key])}; known: {sorted(config[key])}")
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
    """:func:`check_references`, then for every configured method ``{"offline": bool, "gptq": str | None,
    "clip_scales": str | None, "pass": str | None, "seed": int | None}``: whether it has an offline step (an
    artifact job), the name of the shared GPTQ weight set it reads, the GPTQ set whose scales are its MSE
    clip search (:func:`lpbench.methods.gptq.clip_scales_key`), the statistics pass its calibration can
    share with others (``Method.pass_key``), and the seed of a method that declares one (its ``seed``, else
    the config's).

    Building the methods imports torch, and the Snakefile is parsed on every run (a no-op ``make run``
    took 3.8–4.8 s with it, 1.9–2.0 s without). So with ``cache_dir`` the answer is kept in a file named
    by a hash of the ``methods`` section and of every source file under ``code_root``: a run with the same
    methods and the same code reads it (names are still checked, torch is not imported); a change to
    either builds and checks every method again. Only a config that passed the checks is ever written."""
    key = None
    if cache_dir is not None:
        h = hashlib.sha256(json.dumps([config["methods"], config.get("seed")], sort_keys=True,
                                      default=repr).encode())
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
    facts = {name: method_fact(method, config["methods"][name], config.get("seed")) for name, method in built.items()}
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


def method_fact(method, entry: dict, default_seed: int | None) -> dict:
    """What the DAG needs of one built method (see :func:`method_facts`)."""
    from lpbench.methods import has_offline_step
    from lpbench.methods.gptq import clip_scales_key, gptq_key

    seeded = "seed" in type(method).defaults
    seed = method.params["seed"] if seeded and method.params["seed"] is not None else default_seed
    fact = {"offline": has_offline_step(entry), "gptq": gptq_key(method, default_seed),
            "clip_scales": clip_scales_key(method), "pass": method.pass_key(), "seed": seed if seeded else None}
    if method.kind == "stack":
        fact["stack"] = method.facts()
    return fact


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
    """Evaluation window settings with the model's own overrides (e.g. a shorter position table). Without
    ``top_k`` (the FP32 reference's size, read by rule evaluate_reference only), so changing it reruns
    only what depends on the reference."""
    base = {k: v for k, v in config[kind].items() if k != "top_k"}
    if kind == "evaluation":
        base.update(config["models"][model].get("eval", {}))
    return base


def _with_window_defaults(config: dict, schema: dict) -> dict:
    """``evaluation`` / ``calibration`` with the schema's defaults filled in (as Snakemake's validate does)."""
    out = dict(config)
    for kind in ("evaluation", "calibration"):
        defaults = {k: v["default"] for k, v in schema["properties"][kind]["properties"].items() if "default" in v}
        out[kind] = {**defaults, **(config.get(kind) or {})}
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m lpbench.config FILE...``: YAML syntax and duplicate keys (file:line), strict entries,
    references, sequence lengths within the models' position tables where known."""
    import yaml

    schema = yaml.load(SCHEMA.read_text(), Loader=safe_loader())
    status = 0
    for f in argv if argv is not None else sys.argv[1:]:
        try:
            cfg = load_yaml(f)
            check_entries(cfg, schema)
            if all(k in cfg for k in ("models", "corpora", "methods", "experiments")):
                check_references(cfg)
                from lpbench.limits import check_positions
                check_positions(_with_window_defaults(cfg, schema))
        except ConfigError as e:
            print(f"{f}: {e}" if not str(e).startswith(str(f)) else str(e), file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
