rule evaluate:
    """Apply a method to a model and measure it on the evaluation windows: one JSON with provenance,
    including the content hashes of the model, tokenizer, text, tokens and artifact it read."""
    input:
        unpack(method_artifact_input),
        model="resources/models/{model}/lpbench_model.json",
        tokens="resources/tokens/{model}/{corpus}/evaluation.pt",
        tokens_meta="resources/tokens/{model}/{corpus}/evaluation.json",
        corpus="resources/corpora/{corpus}/corpus.json",
    output:
        "results/evals/{model}/{corpus}/{method}.json",
    params:
        entry=lambda wc: method_entry(wc.method),
        settings=lambda wc: window_settings(config, wc.model, "evaluation"),
        seed=config["seed"],
        device=config["device"],
        config_hash=lambda wc: config_slice_hash(wc),
    threads: config["threads"]
    resources:
        mem_mb=12000,
    benchmark:
        "results/benchmarks/evaluate/{model}/{corpus}/{method}.tsv"
    log:
        "logs/evaluate/{model}/{corpus}/{method}.log",
    conda:
        ENV
    script:
        "../../scripts/evaluate.py"
