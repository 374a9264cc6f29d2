"""Rotated Runtime Smooth (Yi et al., ICLR 2025): which evaluations and models the RRS rules read
(:func:`targets`) and the ``rrs`` config section (:data:`DEFAULTS`, :func:`settings`).

The RRS methods are ordinary config methods evaluated by the shared ``evaluate`` rule; the paper's own
outputs — perplexity table and figure, activation-outlier figure (RRS-3), cost table (RRS-4) — are computed
in :mod:`lpbench.studies.rrs.analysis`. This module imports no torch: the Snakefile imports it.
"""
from __future__ import annotations

from dataclasses import dataclass

from lpbench.studies.selection import Triple, eval_paths, is_causal, kind, merge_section
from lpbench.studies.tender import settings as tender_settings

#: method kinds of the RRS table (w4a4 = the official run script's RTN and GPTQ lines)
KINDS = ("w4a4", "smoothquant", "quarot", "rs", "rrs")

#: defaults of the ``rrs`` config section
DEFAULTS = {
    # the model of the activation-outlier figure when it has RRS evaluations (SmolLM2: pre-norm Llama, exact
    # QuaRot rotation); else the first model (sorted) that has them
    "outlier_model": "smollm2-135m",
}


def settings(section: dict | None) -> dict:
    """The ``rrs`` config section over :data:`DEFAULTS`."""
    return merge_section("rrs", DEFAULTS, section)


@dataclass(frozen=True)
class Targets:
    """What the RRS rules read."""

    triples: list[Triple]           # fp32 of the RRS models, then every RRS-kind evaluation of a causal model
    models: list[str]               # sorted models of ``triples``
    outlier_model: str | None       # the outlier figure's model (None: no RRS evaluations)
    outlier_corpus: str | None      # its corpus: the first it is evaluated on

    @property
    def evals(self) -> list[str]:
        return eval_paths(self.triples)

    @property
    def families(self) -> dict[str, str]:
        """Model -> rotation family label of the perplexity table (a Gemma model id: its sandwich-norm
        rotation variant)."""
        return {m: ("gemma3" if "gemma" in m else "") for m in self.models}


def targets(config: dict, triples: list[Triple]) -> Targets:
    """The RRS evaluations among the experiment ``triples`` and the outlier figure's (model, corpus)."""
    tender_rows = tender_settings(config.get("tender"))["weight_variants"]    # Tender's equal-weight rows
    own = [(m, c, meth) for m, c, meth in triples
           if kind(config, meth) in KINDS and is_causal(config, m) and meth not in tender_rows]
    models = {m for m, _, _ in own}
    base = [(m, c, meth) for m, c, meth in triples if m in models and meth == "fp32"]
    selected = base + own
    models = sorted({m for m, _, _ in selected})
    preferred = settings(config.get("rrs"))["outlier_model"]
    outlier = preferred if preferred in models else (models[0] if models else None)
    corpus = next((c for m, c, _ in selected if m == outlier), None)
    return Targets(selected, models, outlier, corpus)
