rule method_artifact:
    """A method's offline artifact (scales, rotations, groupings), computed once and shared."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        stats="resources/calib/{model}/{corpus}.pt",
        windows="resources/calib/{model}/{corpus}.windows.pt",
    output:
        "resources/artifacts/{model}/{corpus}/{method}.pt",
    params:
        entry=lambda wc: config["methods"][wc.method],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        mem_mb=8000,
    log:
        "logs/method_artifact/{model}/{corpus}/{method}.log",
    conda:
        ENV
    script:
        "../../scripts/method_artifact.py"


rule gptq_weights:
    """GPTQ weights of one transform (none, QuaRot rotation, SmoothQuant scales), shared by every method
    that quantizes the same transformed weights (lpbench.methods.gptq)."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        stats="resources/calib/{model}/{corpus}.pt",
        windows="resources/calib/{model}/{corpus}.windows.pt",
    output:
        "resources/gptq/{model}/{corpus}/{key}.pt",
    params:
        entry=lambda wc: GPTQ_ENTRIES[wc.key],
        seed=config["seed"],
    threads: config["threads"]
    resources:
        mem_mb=8000,
    benchmark:
        "results/benchmarks/gptq/{model}/{corpus}/{key}.tsv"
    log:
        "logs/gptq_weights/{model}/{corpus}/{key}.log",
    conda:
        ENV
    script:
        "../../scripts/gptq_weights.py"
