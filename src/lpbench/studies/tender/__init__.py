"""Tender (Lee et al., ISCA 2024): which evaluations, models and artifacts the Tender rules read
(:func:`targets`) and the ``tender`` config section (:data:`DEFAULTS`, :func:`settings`).

Tender and its baselines are ordinary config methods evaluated by the shared ``evaluate`` rule; the
tables, figures and the systolic-array cost model are in :mod:`lpbench.studies.tender.analysis`. This
module imports no torch: the Snakefile imports it.
"""
from __future__ import annotations

from dataclasses import dataclass

from lpbench.studies.selection import Triple, check_methods, is_causal, kind, merge_section

#: defaults of the ``tender`` config section
DEFAULTS = {
    # role -> {activation bits: method name}: which evaluated method plays which role in the tables
    # (per_row is the suite's plain RTN, per-token activations). A method that is not evaluated is left out.
    "roles": {
        "tender": {8: "tender-int8", 4: "tender-int4"},
        "per_tensor": {8: "pertensor-w8a8", 4: "pertensor-w4a4"},
        "per_row": {8: "rtn-w8a8", 4: "rtn-w4a4"},
        "per_column": {8: "percol-w8a8", 4: "percol-w4a4"},
        "smoothquant": {8: "smoothquant-w8a8", 4: "smoothquant-w4a4"},
    },
    # more rows of a role on equal weights (TENDER-1 like with like): a baseline with Tender's weight quantizer,
    # or Tender with the baseline's; method -> role. Rows of the Tender tables only (the RRS table leaves them out)
    "weight_variants": {"smoothquant-w4a4-rtn": "smoothquant", "tender-int4-wclip": "tender"},
    # the Tender methods whose calibrated scales and groups drive the integer exactness check (TENDER-2)
    "exactness_methods": ["tender-int8", "tender-int4"],
    # workload of the cost model (TENDER-4): prefill length (the paper's 2048), activation widths and model
    # shapes beyond the evaluated ones. Llama-2-7B: config.json of meta-llama/Llama-2-7b-hf, the paper's
    # main model; its G comes from the official table (INT4 14, INT8 8).
    "cost": {"seqlen": 2048, "bits": [4, 8],
             "extra_models": {"llama-2-7b": {"model_type": "llama", "hidden": 4096, "intermediate": 11008,
                                             "layers": 32, "heads": 32, "kv_heads": 32, "head_dim": 128,
                                             "vocab": 32000, "mlp_matrices": 3, "max_positions": 4096}}},
}


def settings(section: dict | None) -> dict:
    """The ``tender`` config section over :data:`DEFAULTS` (``roles`` and ``cost`` merged per key)."""
    return merge_section("tender", DEFAULTS, section)


@dataclass(frozen=True)
class Targets:
    """What the Tender rules read."""

    triples: list[Triple]           # role baselines and fp32 of the Tender models, then every tender-kind one
    models: list[str]               # sorted models of ``triples``
    artifacts: list[Triple]         # the tender-kind evaluations (each has a calibrated artifact)
    exact: list[Triple]             # evaluations of the exactness methods (TENDER-2)
    cost_artifacts: list[Triple]    # the `tender` role's methods: measured non-empty groups for the cost model
    roles: dict                     # settings()["roles"]
    weight_variants: dict           # settings()["weight_variants"]
    cost: dict                      # settings()["cost"]


def targets(config: dict, triples: list[Triple]) -> Targets:
    """The Tender evaluations among the experiment ``triples``: every tender-kind method on a causal LM
    (perplexity), plus the role baselines and fp32 of the same models."""
    section = config.get("tender") or {}
    given = [meth for by_bits in (section.get("roles") or {}).values() for meth in by_bits.values()]
    check_methods("tender", config, given + list(section.get("exactness_methods") or []))
    cfg = settings(section)
    roles = cfg["roles"]
    role_methods = {meth for by_bits in roles.values() for meth in by_bits.values()} | set(cfg["weight_variants"])

    def is_tender(meth):
        return kind(config, meth) == "tender"

    own = [(m, c, meth) for m, c, meth in triples if is_tender(meth) and is_causal(config, m)]
    models = {m for m, _, _ in own}
    base = [(m, c, meth) for m, c, meth in triples
            if m in models and not is_tender(meth) and (meth in role_methods or meth == "fp32")]
    selected = base + own
    return Targets(
        triples=selected,
        models=sorted({m for m, _, _ in selected}),
        artifacts=[t for t in selected if is_tender(t[2])],
        exact=[t for t in selected if t[2] in cfg["exactness_methods"]],
        cost_artifacts=[t for t in selected if t[2] in roles["tender"].values()],
        roles=roles,
        weight_variants=cfg["weight_variants"],
        cost=cfg["cost"],
    )
