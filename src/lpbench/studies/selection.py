"""What every paper's target selection shares: result paths and questions about config entries.

Each study package (``lpbench.studies.<paper>``) has a ``targets(config, triples)`` that its rule file calls
when the Snakefile is parsed. Selection reads plain config dicts only (method kinds from the ``method:``
key, never a built method), so planning a run imports neither torch nor pandas.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable

Triple = tuple[str, str, str]        # (model, corpus, method), as lpbench.config.experiment_triples lists them


def eval_paths(triples: Iterable[Triple]) -> list[str]:
    """The evaluation JSON of each (model, corpus, method) (rule ``evaluate``)."""
    return [f"results/evals/{m}/{c}/{meth}.json" for m, c, meth in triples]


def model_paths(models: Iterable[str]) -> list[str]:
    """The downloaded form of each model (rule ``download_model``)."""
    return [f"resources/models/{m}/lpbench_model.json" for m in models]


def artifact_paths(triples: Iterable[Triple]) -> list[str]:
    """The offline artifact of each (model, corpus, method) (rule ``method_artifact``)."""
    return [f"resources/artifacts/{m}/{c}/{meth}.pt" for m, c, meth in triples]


def kind(config: dict, method: str) -> str | None:
    """The kind (``method:`` key) of a configured method."""
    return config["methods"][method].get("method")


def is_causal(config: dict, model: str) -> bool:
    """A causal LM (perplexity), not an encoder (``causal: false``)."""
    return config["models"][model].get("causal", True)


def merge_section(name: str, defaults: dict, section: dict | None) -> dict:
    """A study's config section over its defaults: unknown keys are an error; a mapping given for a
    mapping default is merged one level deep (its keys replace the default's); anything else replaces."""
    out = copy.deepcopy(defaults)
    for key, value in (section or {}).items():
        if key not in defaults:
            raise ValueError(f"{name}: unknown key '{key}'; known: {sorted(defaults)}")
        if isinstance(value, dict) and isinstance(out[key], dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def check_methods(name: str, config: dict, methods: Iterable[str]) -> None:
    """Method names given in a study's config section must be configured methods."""
    unknown = sorted(set(methods) - set(config["methods"]))
    if unknown:
        raise ValueError(f"{name}: unknown method name(s) {unknown}; known: {sorted(config['methods'])}")
