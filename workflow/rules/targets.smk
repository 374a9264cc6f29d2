# Which evaluations, models and artifacts each paper's rules read (selection helpers), kept apart
# from the rule files so that each .smk holds either rules or functions (snakemake --lint).


#: more rows of a Tender role with Tender's weight quantizer (or Tender with the baseline's): TENDER-1 like
#: with like; Tender's rows only (the RRS table leaves them out: not rows of the RRS paper)
TENDER_WEIGHT_VARIANTS = {"smoothquant-w4a4-rtn": "smoothquant", "tender-int4-wclip": "tender"}


# ---- rrs ------------------------------------------------------------------------------------------
_RRS_KINDS = ("w4a4", "smoothquant", "quarot", "rs", "rrs")


def _rrs_triples():
    """Evaluations the RRS table shows: every evaluated method of an RRS kind (w4a4 = the run script's RTN
    and GPTQ lines), plus fp32 of the same models."""
    own = [(m, c, meth) for m, c, meth in TRIPLES
           if config["methods"][meth].get("method") in _RRS_KINDS and m in CAUSAL
           and meth not in TENDER_WEIGHT_VARIANTS]
    models = {m for m, _, _ in own}
    base = [(m, c, meth) for m, c, meth in TRIPLES if m in models and meth == "fp32"]
    return base + own


RRS_TRIPLES = _rrs_triples()
RRS_MODELS = sorted({m for m, _, _ in RRS_TRIPLES})
# the outlier figure: SmolLM2 (pre-norm Llama, exact QuaRot rotation) when configured, else the first model
RRS_OUTLIER_MODEL = "smollm2-135m" if "smollm2-135m" in RRS_MODELS else (RRS_MODELS[0] if RRS_MODELS else None)
RRS_OUTLIER_CORPUS = next((c for m, c, _ in RRS_TRIPLES if m == RRS_OUTLIER_MODEL), None)


def _rrs_evals(wc=None):
    return [f"results/evals/{m}/{c}/{meth}.json" for m, c, meth in RRS_TRIPLES]


# ---- tender ------------------------------------------------------------------------------------------
#: role -> {activation bits: method name}. per_row is the suite's plain RTN (per-token activations).
TENDER_ROLES = {
    "tender": {8: "tender-int8", 4: "tender-int4"},
    "per_tensor": {8: "pertensor-w8a8", 4: "pertensor-w4a4"},
    "per_row": {8: "rtn-w8a8", 4: "rtn-w4a4"},
    "per_column": {8: "percol-w8a8", 4: "percol-w4a4"},
    "smoothquant": {8: "smoothquant-w8a8", 4: "smoothquant-w4a4"},
}
#: the Tender artifacts whose calibrated scales/groups drive the exactness check on real layers
TENDER_EXACTNESS_METHODS = ["tender-int8", "tender-int4"]
#: cost model workload: prefill length (the paper's 2048) and model shapes beyond the configured ones.
#: Llama-2-7B: config.json of meta-llama/Llama-2-7b-hf (hidden 4096, intermediate 11008, 32 layers,
#: 32 heads, vocab 32000) — the paper's main model; G from the official table (INT4 14, INT8 8).
TENDER_COST = {"seqlen": 2048, "bits": [4, 8],
               "extra_models": {"llama-2-7b": {"model_type": "llama", "hidden": 4096, "intermediate": 11008,
                                               "layers": 32, "heads": 32, "kv_heads": 32, "head_dim": 128,
                                               "vocab": 32000, "mlp_matrices": 3, "max_positions": 4096}}}

_TENDER_ROLE_METHODS = ({meth for by_bits in TENDER_ROLES.values() for meth in by_bits.values()}
                        | set(TENDER_WEIGHT_VARIANTS))


def _is_tender(meth):
    return config["methods"][meth].get("method") == "tender"


def _tender_triples():
    """Evaluations the Tender tables show: every tender-kind method, the role baselines and fp32 of the
    models that have a tender evaluation (causal LMs only: perplexity)."""
    own = [(m, c, meth) for m, c, meth in TRIPLES if _is_tender(meth) and m in CAUSAL]
    models = {m for m, _, _ in own}
    base = [(m, c, meth) for m, c, meth in TRIPLES
            if m in models and not _is_tender(meth) and (meth in _TENDER_ROLE_METHODS or meth == "fp32")]
    return base + own


TENDER_TRIPLES = _tender_triples()
TENDER_MODELS = sorted({m for m, _, _ in TENDER_TRIPLES})
TENDER_EXACT = [(m, c, meth) for m, c, meth in TENDER_TRIPLES if meth in TENDER_EXACTNESS_METHODS]
# artifacts of the linear-scope tender methods at the role widths: measured non-empty groups for the cost model
TENDER_COST_ARTIFACTS = [(m, c, meth) for m, c, meth in TENDER_TRIPLES
                         if meth in TENDER_ROLES["tender"].values()]


# ---- slanc ------------------------------------------------------------------------------------------
SLANC_MEASURE = {
    "n_windows": 4,       # measured windows (the first of the evaluation windows); budget: ~1.5 min total
    "stress_k": 16,       # residual-stream reparametrization factor of the labelled stress case (fixed a priori)
}


def _slanc_variant_methods():
    """variant label -> method name, from the experiments' methods of kind slanc."""
    out = {}
    used = {meth for _, _, meth in TRIPLES}
    for name, entry in config["methods"].items():
        if entry.get("method") != "slanc" or name not in used:
            continue
        v = entry.get("variant", "static")
        label = {"none": "none", "dynamic": "dynamic"}.get(v, "slanc")
        out.setdefault(label, name)
    return out


SLANC_METHODS = _slanc_variant_methods()
SLANC_PAIRS = sorted({(m, c) for m, c, meth in TRIPLES if meth in SLANC_METHODS.values()})


def _slanc_static_entry():
    return config["methods"][SLANC_METHODS["slanc"]]
