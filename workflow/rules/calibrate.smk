rule calibrate:
    """Offline statistics every method needs, one pass over the calibration windows. Each file's sha256 is
    recorded beside it (``<file>.sha256``) and verified by every reader (lpbench.integrity)."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        tokens="resources/tokens/{model}/{corpus}/calibration.pt",
        tokens_meta="resources/tokens/{model}/{corpus}/calibration.json",
    output:
        stats="resources/calib/{model}/{corpus}.pt",
        windows="resources/calib/{model}/{corpus}.windows.pt",
        stats_sha256="resources/calib/{model}/{corpus}.pt.sha256",
        windows_sha256="resources/calib/{model}/{corpus}.windows.pt.sha256",
    log:
        "logs/calibrate/{model}/{corpus}.log",
    benchmark:
        "results/benchmarks/calibrate/{model}/{corpus}.tsv"
    priority: 10  # the chain to the GPTQ weights is the pipeline's critical path: start it first
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        settings=lambda wc: window_settings(config, wc.model, "calibration"),
        seed=config["seed"],
    script:
        "../../scripts/calibrate.py"
