"""SLaNC study: which evaluations and measurements the SLaNC rules read (:func:`targets`) and the ``slanc``
config section (:data:`DEFAULTS`, :func:`settings`).

The measurements on real activations (every norm input of the FP32 model through the emulated
low-precision norm of each variant, overflow / underflow events, the prediction check, the stress case)
are :mod:`lpbench.studies.slanc.measure`; the tables and figure built from them
:mod:`lpbench.studies.slanc.tables`. What is measured and why: docs/papers/slanc.md. This module imports
no torch: the Snakefile imports it.
"""
from __future__ import annotations

from dataclasses import dataclass

from lpbench.studies.selection import Triple, kind, merge_section

#: variant label of each ``variant`` of the slanc method kind
VARIANT_LABELS = {"none": "none", "static": "slanc", "dynamic": "dynamic"}

#: defaults of the ``slanc`` config section
DEFAULTS = {
    # the per-norm measurement (rule slanc_measure): `n_windows` = how many of the evaluation windows (the
    # first ones) it reads, its cost linear in it; `stress_k` = the residual-stream reparametrization factor
    # of the labelled stress case (fixed a priori)
    "measure": {"n_windows": 4, "stress_k": 16},
    # variant label (none | slanc | dynamic) -> the method measured and tabulated for it; null: per variant,
    # the first evaluated method of kind slanc with that variant
    "methods": None,
}


def settings(section: dict | None) -> dict:
    """The ``slanc`` config section over :data:`DEFAULTS`."""
    return merge_section("slanc", DEFAULTS, section)


def variant_methods(config: dict, triples: list[Triple]) -> dict[str, str]:
    """Variant label -> method name: ``slanc.methods`` if given, else derived from the evaluated methods."""
    given = settings(config.get("slanc"))["methods"]
    if given is not None:
        for label, name in given.items():
            if label not in VARIANT_LABELS.values():
                raise ValueError(f"slanc.methods: unknown variant '{label}'; known: {sorted(VARIANT_LABELS.values())}")
            if name not in config["methods"] or kind(config, name) != "slanc":
                raise ValueError(f"slanc.methods.{label}: '{name}' is not a configured method of kind slanc")
        return dict(given)
    out = {}
    used = {meth for _, _, meth in triples}
    for name, entry in config["methods"].items():
        if entry.get("method") != "slanc" or name not in used:
            continue
        v = entry.get("variant", "static")
        out.setdefault(VARIANT_LABELS.get(v, "slanc"), name)
    return out


@dataclass(frozen=True)
class Targets:
    """What the SLaNC rules read."""

    methods: dict[str, str]         # variant label -> method name
    pairs: list[tuple[str, str]]    # sorted (model, corpus) evaluated with one of ``methods``
    evals: list[str]                # evaluation JSONs of the table: each pair's SLaNC methods and fp32
    measure: dict                   # settings()["measure"]

    @property
    def measured(self) -> bool:
        """Whether the study runs: a static SLaNC method and a (model, corpus) evaluated with it."""
        return "slanc" in self.methods and bool(self.pairs)


def targets(config: dict, triples: list[Triple]) -> Targets:
    methods = variant_methods(config, triples)
    pairs = sorted({(m, c) for m, c, meth in triples if meth in methods.values()})
    evals = [f"results/evals/{m}/{c}/{meth}.json" for m, c in pairs
             for meth in [*methods.values(), "fp32"] if (m, c, meth) in triples]
    return Targets(methods, pairs, evals, settings(config.get("slanc"))["measure"])
