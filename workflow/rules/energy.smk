# Whole-model energy per generated token (lpbench.hwcost) for every evaluated causal (model, method) —
# stacks included — and the accuracy-energy Pareto table and figures (lpbench.studies.pareto).
# Appends to FINAL_OUTPUTS (see common.smk).

ENERGY = config["energy"]
ENERGY_PAIRS = sorted({(m, meth) for m, _, meth in TRIPLES if m in CAUSAL})


localrules:
    energy,
    pareto,
    pareto_figure,


rule energy:
    """pJ per generated token by component (GEMMs at their operand widths, LM head, attention, softmax, norms,
    the method's extras, weight and KV memory traffic) at the configured batch size and context, and batch 1."""
    input:
        models=expand("resources/models/{model}/lpbench_model.json", model=CAUSAL),
        costs=config["hw_costs"],
    output:
        csv=report("results/tables/energy.csv", caption="../report/energy.rst", category="Hardware cost"),
        md="results/tables/energy.md",
    log:
        "logs/energy/energy.log",
    benchmark:
        "results/benchmarks/energy/energy.tsv"
    conda:
        ENV
    params:
        methods=lambda wc: {meth: config["methods"][meth] for _, meth in ENERGY_PAIRS},
        pairs=ENERGY_PAIRS,
        batches=sorted({1, ENERGY["batch"]}),
        context=ENERGY["context"],
    script:
        "../../scripts/energy.py"


rule pareto:
    """Energy per token beside the perplexity ratio to FP32 (paired block-bootstrap CI); the non-dominated front."""
    input:
        energy="results/tables/energy.csv",
        evals=[f"results/evals/{m}/{c}/{meth}.json" for m, c, meth in TRIPLES if m in CAUSAL],
    output:
        csv=report("results/tables/pareto.csv", caption="../report/pareto_table.rst", category="Hardware cost"),
        md="results/tables/pareto.md",
    log:
        "logs/energy/pareto.log",
    benchmark:
        "results/benchmarks/pareto/pareto.tsv"
    conda:
        ENV
    script:
        "../../scripts/pareto.py"


rule pareto_figure:
    """One model's accuracy-energy figure (a batch-1 panel beside the default batch when the front changes)."""
    input:
        csv="results/tables/pareto.csv",
    output:
        png=report(
            "results/figures/pareto/{model}.png",
            caption="../report/pareto.rst",
            category="Hardware cost",
            subcategory="{model}",
        ),
        pdf="results/figures/pareto/{model}.pdf",
    log:
        "logs/energy/pareto_figure/{model}.log",
    benchmark:
        "results/benchmarks/pareto_figure/{model}.tsv"
    conda:
        ENV
    params:
        batch=ENERGY["batch"],
    script:
        "../../scripts/pareto_figure.py"


if ENERGY_PAIRS:
    FINAL_OUTPUTS += outputs(rules.energy, rules.pareto) + expand(
        "results/figures/pareto/{model}.{ext}", model=CAUSAL, ext=("png", "pdf")
    )
