"""IterL2Norm precision, latency and energy study (claims ITER-1 … ITER-3; ITER-4 is model level).

This package holds what the rule file ``workflow/rules/papers/iterl2norm.smk`` reads when the Snakefile is
parsed — :func:`targets` (which evaluations and models) and the config section's defaults — and imports no
torch. Everything the rules compute outside of model evaluation lives in its modules; the scripts
``scripts/iterl2norm_*.py`` only read their inputs and call them.

- :mod:`~lpbench.studies.iterl2norm.defaults`: the paper's numbers, the config section's defaults
  (:data:`DEFAULTS`, :func:`settings`).
- :mod:`~lpbench.studies.iterl2norm.precision`: error vs iterations per format, input and length against
  the float64 reference of the same input, the two floors (``E_round``, ``E_dp``), iterations to the
  format's precision (ITER-1), the 9-case comparison with FISR (ITER-2), the initialisation study.
- :mod:`~lpbench.studies.iterl2norm.hardware`: norm-macro latency (ITER-3) and energy per normalization.
- :mod:`~lpbench.studies.iterl2norm.models`: recorded real norm inputs and the model-level table (ITER-4).
- :mod:`~lpbench.studies.iterl2norm.figures`: the figures.

The definitions (unit-scale inputs, floors, "converged to the format's precision", the 9-case rule, the
initialisation study), each fixed before any result was read, are in docs/papers/iterl2norm.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from lpbench.studies.iterl2norm.defaults import DEFAULTS, OPT_DIMS, PAPER_ITERS, PAPER_WINS, SMALL_DIMS, settings
from lpbench.studies.selection import Triple, eval_paths, kind

__all__ = ["DEFAULTS", "OPT_DIMS", "PAPER_ITERS", "PAPER_WINS", "SMALL_DIMS", "settings", "Targets", "targets"]

#: the keys of ``iterl2norm.record`` the recording rule passes on (``models`` / ``corpus`` select its jobs)
RECORD_PARAMS = ("windows", "tokens_per_window", "max_vectors")


@dataclass(frozen=True)
class Targets:
    """What the IterL2Norm rules read."""

    methods: list[str]              # sorted evaluated methods of kind iterl2norm
    triples: list[Triple]           # their evaluations and fp32 of the same (model, corpus), in experiment order
    record_models: list[str]        # models whose norm inputs are recorded (record.models, else those of triples)
    record_corpus: str              # corpus of the recorded windows (record.corpus, else the first corpus)
    record: dict                    # the recording parameters given in record (RECORD_PARAMS)

    @property
    def evals(self) -> list[str]:
        return eval_paths(self.triples)


def targets(config: dict, triples: list[Triple]) -> Targets:
    methods = sorted({meth for _, _, meth in triples if kind(config, meth) == "iterl2norm"})
    pairs = {(m, c) for m, c, meth in triples if meth in methods}
    selected = [(m, c, meth) for m, c, meth in triples
                if meth in methods or (meth == "fp32" and (m, c) in pairs)]
    record = (config.get("iterl2norm") or {}).get("record") or {}
    return Targets(
        methods=methods,
        triples=selected,
        record_models=record.get("models") or sorted({m for m, _, meth in selected if meth != "fp32"}),
        record_corpus=record.get("corpus") or next(iter(config["corpora"])),
        record={k: v for k, v in record.items() if k in RECORD_PARAMS},
    )
