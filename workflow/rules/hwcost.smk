rule hwcost:
    """Per-token op counts of every evaluated method, turned into energy with config/hw_costs.yaml."""
    input:
        models=expand("resources/models/{model}/lpbench_model.json", model=MODELS),
        costs=config["hw_costs"],
    output:
        csv=report("results/tables/hwcost.csv", caption="../report/hwcost.rst", category="Hardware cost"),
        md="results/tables/hwcost.md",
    log:
        "logs/hwcost.log",
    benchmark:
        "results/benchmarks/hwcost/hwcost.tsv"
    conda:
        ENV
    params:
        methods=lambda wc: {meth: config["methods"][meth] for _, _, meth in TRIPLES},
        pairs=sorted({(m, meth) for m, _, meth in TRIPLES}),
    script:
        "../../scripts/hwcost.py"


FINAL_OUTPUTS += outputs(rules.hwcost)
CLAIM_TABLES += [rules.hwcost.output.csv]
