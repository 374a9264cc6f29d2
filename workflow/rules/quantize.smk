rule method_artifact:
    """A method's offline artifact (scales, rotations, groupings), computed once and shared; its sha256 is
    recorded beside it and verified by every reader (lpbench.integrity)."""
    input:
        unpack(artifact_pass_input),
        model="resources/models/{model}/lpbench_model.json",
        stats="resources/calib/{model}/{corpus}.pt",
        windows=artifact_windows,
    output:
        "resources/artifacts/{model}/{corpus}/{method}.pt",
        "resources/artifacts/{model}/{corpus}/{method}.pt.sha256",
    log:
        "logs/method_artifact/{model}/{corpus}/{method}.log",
    benchmark:
        "results/benchmarks/method_artifact/{model}/{corpus}/{method}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        entry=lambda wc: method_entry(wc.method),
        seed=config["seed"],
    script:
        "../../scripts/method_artifact.py"


rule shared_pass:
    """One statistics pass shared by the calibrations of methods that differ only in how many windows they
    read and in what they keep (Tender's calibration-size sweep and runtime variants: Method.pass_key), read
    after each member's window count; each member's method_artifact job finishes its own artifact from it."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        windows=lambda wc: calib_windows_file(wc, shared_pass_members(wc)),
    output:
        "resources/passes/{model}/{corpus}/{key}.pt",
        "resources/passes/{model}/{corpus}/{key}.pt.sha256",
    log:
        "logs/shared_pass/{model}/{corpus}/{key}.log",
    benchmark:
        "results/benchmarks/shared_pass/{model}/{corpus}/{key}.tsv"
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        entry=lambda wc: method_entry(shared_pass_members(wc)[0]),
        at=lambda wc: sorted({own_window_count(wc, m) for m in shared_pass_members(wc)}),
    script:
        "../../scripts/shared_pass.py"


rule gptq_weights:
    """GPTQ weights of one transform (none, QuaRot rotation, SmoothQuant scales), shared by every method
    that quantizes the same transformed weights (lpbench.methods.gptq)."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        stats="resources/calib/{model}/{corpus}.pt",
        windows="resources/calib/{model}/{corpus}.windows.pt",
    output:
        "resources/gptq/{model}/{corpus}/{key}.pt",
        "resources/gptq/{model}/{corpus}/{key}.pt.sha256",
    log:
        "logs/gptq_weights/{model}/{corpus}/{key}.log",
    benchmark:
        "results/benchmarks/gptq_weights/{model}/{corpus}/{key}.tsv"
    priority: 10  # the chain to the GPTQ weights is the pipeline's critical path: start it first
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        entry=lambda wc: GPTQ_ENTRIES[wc.key],
        seed=config["seed"],
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
        "resources/calib_windows/{model}/{corpus}/n{n}.pt.sha256",
    log:
        "logs/calib_windows/{model}/{corpus}/n{n}.log",
    benchmark:
        "results/benchmarks/calib_windows/{model}/{corpus}/n{n}.tsv"
    wildcard_constraints:
        n="[0-9]+",
    conda:
        ENV
    params:
        settings=lambda wc: window_settings(config, wc.model, "calibration"),
        seed=config["seed"],
    script:
        "../../scripts/calib_windows.py"
