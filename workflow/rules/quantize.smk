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
    benchmark:
        "results/benchmarks/method_artifact/{model}/{corpus}/{method}.tsv",
    log:
        "logs/method_artifact/{model}/{corpus}/{method}.log",
    conda:
        ENV
    script:
        "../../scripts/method_artifact.py"
