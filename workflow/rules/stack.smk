# The offline artifact of a `stack` method (lpbench.methods.stack). Its evaluation is the shared `evaluate`
# rule; its GPTQ weights are the set of its GPTQ method (common.smk: method_gptq_key, gptq_entry).


ruleorder: stack_artifact > method_artifact


rule stack_artifact:
    """A stack's artifact: each method's own artifact file where it is shared with the stand-alone method,
    recalibrated on the model with the earlier methods applied where it is not (Tender after SLaNC)."""
    input:
        unpack(stack_artifact_input),
    output:
        "resources/artifacts/{model}/{corpus}/{method}.pt",
        "resources/artifacts/{model}/{corpus}/{method}.pt.sha256",
    log:
        "logs/stack_artifact/{model}/{corpus}/{method}.log",
    benchmark:
        "results/benchmarks/stack_artifact/{model}/{corpus}/{method}.tsv"
    wildcard_constraints:
        method=STACK_PATTERN,
    conda:
        ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        entry=lambda wc: method_entry(wc.method),
        seed=config["seed"],
    script:
        "../../scripts/stack_artifact.py"
