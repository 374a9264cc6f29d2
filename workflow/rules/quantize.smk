rule method_artifact:
    """A method's offline artifact (scales, rotations, groupings), computed once and shared."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        stats="resources/calib/{model}/{corpus}.pt",
        windows=artifact_windows,
    output:
        "resources/artifacts/{model}/{corpus}/{method}.pt",
    params:
        entry=lambda wc: method_entry(wc.method),
        seed=config["seed"],
    threads: config["threads"]
    resources:
        mem_mb=8000,
    benchmark:
        "results/benchmarks/method_artifact/{model}/{corpus}/{method}.tsv",
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
    priority: 10  # the chain to the GPTQ weights is the pipeline's critical path: start it first
    benchmark:
        "results/benchmarks/gptq_weights/{model}/{corpus}/{key}.tsv"
    log:
        "logs/gptq_weights/{model}/{corpus}/{key}.log",
    conda:
        ENV
    script:
        "../../scripts/gptq_weights.py"


rule calib_windows:
    """A larger seeded set of calibration windows (same sampler and seed as the shared ones), for methods
    configured with more calibration windows than the shared statistics use."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        tokens="resources/tokens/{model}/{corpus}/calibration.pt",
    output:
        "resources/calib_windows/{model}/{corpus}/n{n}.pt",
    wildcard_constraints:
        n="[0-9]+",
    params:
        settings=lambda wc: window_settings(config, wc.model, "calibration"),
        seed=config["seed"],
    benchmark:
        "results/benchmarks/calib_windows/{model}/{corpus}/n{n}.tsv"
    log:
        "logs/calib_windows/{model}/{corpus}/n{n}.log",
    conda:
        ENV
    script:
        "../../scripts/calib_windows.py"
