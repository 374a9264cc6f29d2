rule evaluate:
    """Apply a method to a model and measure it on the evaluation windows: one JSON with provenance,
    including the content hashes of the model, tokenizer, text, tokens and artifact it read. A causal
    evaluation also reads the FP32 reference distribution of its (model, corpus) and stores the per-token
    fidelity metrics (KL, top-1 agreement, Δp) beside the per-token NLLs."""
    input:
        unpack(method_artifact_input),
        unpack(fidelity_reference_input),
        model="resources/models/{model}/lpbench_model.json",
        tokens="resources/tokens/{model}/{corpus}/evaluation.pt",
        tokens_meta="resources/tokens/{model}/{corpus}/evaluation.json",
        corpus="resources/corpora/{corpus}/corpus.json",
    output:
        "results/evals/{model}/{corpus}/{method}.json",
    log:
        "logs/evaluate/{model}/{corpus}/{method}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}/{corpus}/{method}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=12000,
    params:
        **EVALUATE_PARAMS,
    script:
        "../../scripts/evaluate.py"


if REFERENCE_METHOD is not None and CAUSAL:

    # Only the reference method of a causal model: the other evaluations' input function names its second
    # output, so this rule (not `evaluate`) is the one that makes that method's JSON for those models.
    ruleorder: evaluate_reference > evaluate

    rule evaluate_reference:
        """The FP32 evaluation of a causal LM, which also writes the FP32 reference distribution (top-K ids
        and log-probabilities per predicted token, log of the remaining mass; K = evaluation.top_k) that
        every other evaluation of the same (model, corpus) reads. Design: one rule with two outputs from a
        single forward pass — the FP32 forward never runs twice, and adding a method adds only its own
        evaluation (the reference exists once per (model, corpus)). Same inputs, script and settings as rule
        `evaluate`, which it replaces for this method and these models (ruleorder); the result JSON is the
        same as `evaluate` would write, plus its fidelity against itself (KL 0, agreement 1, Δp 0)."""
        input:
            unpack(method_artifact_input),
            model="resources/models/{model}/lpbench_model.json",
            tokens="resources/tokens/{model}/{corpus}/evaluation.pt",
            tokens_meta="resources/tokens/{model}/{corpus}/evaluation.json",
            corpus="resources/corpora/{corpus}/corpus.json",
        output:
            json="results/evals/{model}/{corpus}/{method}.json",
            reference="resources/reference/{model}/{corpus}/{method}.topk.pt",
        log:
            "logs/evaluate/{model}/{corpus}/{method}.log",
        benchmark:
            "results/benchmarks/evaluate/{model}/{corpus}/{method}.tsv"
        wildcard_constraints:
            method=re.escape(REFERENCE_METHOD),
            model="|".join(re.escape(m) for m in CAUSAL),
        priority: 5  # every other evaluation of the model waits for it (after the GPTQ chain, priority 10)
        conda:
            ENV
        threads: config["threads"]
        resources:
            mem_mb=12000,
        params:
            **EVALUATE_PARAMS,
            top_k=config["evaluation"]["top_k"],
        script:
            "../../scripts/evaluate.py"
