"""Reading ``config/claims.yaml``: its JSON-Schema (``workflow/schemas/claims.schema.yaml``) is checked
first, and an error names the claim id and the bad key. Light (yaml + jsonschema): the Snakefile calls
:func:`check_ledger` while it parses, before any job runs."""
from __future__ import annotations

import difflib
from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "claims.schema.yaml"
VERDICTS = ("reproduced", "not reproduced", "not run", "inconclusive")
BASES = ("official code", "paper text", "our reconstruction")
COLUMNS = ["id", "paper", "statement", "paper_value", "ours", "verdict", "ci_low", "ci_high", "reason",
           "basis", "basis_pointer", "deviations", "point_verdict", "ci_detail", "note", "summary", "per_seed_verdicts"]


class LedgerError(ValueError):
    pass


def deviations_text(claim: dict) -> str:
    """A claim's deviations as one string: a list (shared parts are YAML aliases) is joined by "; "."""
    dev = claim.get("deviations", "")
    return "; ".join(dev) if isinstance(dev, list) else dev


def _where(path: list, data: dict) -> str:
    """``claim <id>: rule.checks[1]`` for a path into the ledger (``claims`` list index resolved)."""
    if len(path) < 2 or path[0] != "claims" or not isinstance(path[1], int):
        return ".".join(map(str, path)) or "top level"
    claim = data["claims"][path[1]]
    cid = claim.get("id") if isinstance(claim, dict) else None
    rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[2:]).lstrip(".")
    return f"claim {cid or '#' + str(path[1] + 1)}" + (f": {rest}" if rest else "")


def _message(err) -> str:
    """The validator's message, with unknown keys named, a "did you mean" and the allowed keys."""
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        out = []
        for key in (k for k in err.instance if k not in allowed):
            near = difflib.get_close_matches(str(key), allowed, n=1)
            out.append(f"unknown key '{key}'{f' (did you mean {near[0]!r}?)' if near else ''}; allowed: {allowed}")
        return "; ".join(out)
    if err.validator == "not" and err.validator_value == {} and err.path:  # a key forbidden in this context
        return f"key '{err.path[-1]}' is not allowed here ({err.schema.get('description', '')})"
    shown = repr(err.instance)
    return err.message.replace(shown, "this value", 1) if len(shown) > 60 else err.message


def check_ledger(path: str | Path, base: str | Path | None = None, schema: Path = SCHEMA) -> dict:
    """Validate the ledger file against its schema; raise :class:`LedgerError` listing every problem.
    A relative ``path`` that does not exist is read from ``base`` (the workflow's directory)."""
    from jsonschema import Draft202012Validator

    path = Path(path)
    if base is not None and not path.is_absolute() and not path.exists():
        path = Path(base) / path
    from lpbench.config import ConfigError, load_yaml, safe_loader

    try:
        data = load_yaml(path)          # strict: a key given twice names file, line and key
    except ConfigError as e:
        raise LedgerError(str(e)) from None
    validator = Draft202012Validator(yaml.load(Path(schema).read_text(), Loader=safe_loader()))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    problems = list(dict.fromkeys(f"{_where(list(e.absolute_path), data)}: {_message(e)}" for e in errors))
    if not problems:  # the schema holds: a list of claims, each with an id
        ids = [c["id"] for c in data["claims"]]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        problems += [f"duplicate claim ids {dup}"] if dup else []
    if problems:
        raise LedgerError(f"{path}: invalid claims ledger:\n  " + "\n  ".join(problems))
    return data


def load_ledger(path: str | Path) -> list[dict]:
    """The ledger's claims, after :func:`check_ledger`."""
    return check_ledger(path)["claims"]
