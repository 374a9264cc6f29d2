# Rules of the Rotated Runtime Smooth (RRS) reproduction and its W4A4 baselines.
# Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
#
# The RRS-paper methods are ordinary config methods (kinds smoothquant, quarot, rs, rrs; evaluated by the
# shared `evaluate` rule); this file adds the paper's own outputs: the perplexity table and figure, the
# activation-outlier figure/table, and the cost table that claim RRS-4 reads.
# Which evaluations and models they read: lpbench.studies.rrs.targets (settings: the `rrs` config section).

from lpbench.studies import rrs as rrs_study

RRS = rrs_study.targets(config, TRIPLES)


rule rrs_perplexity:
    """Perplexity of RTN / SmoothQuant / RS / QuaRot / RRS at W4A4, KV16 and KV4."""
    input:
        evals=RRS.evals,
    output:
        csv=report("results/tables/rrs_perplexity.csv", caption="../../report/rrs_perplexity.rst", category="RRS"),
        md="results/tables/rrs_perplexity.md",
        png=report(
            "results/figures/rrs_perplexity.png", caption="../../report/rrs_perplexity_figure.rst", category="RRS"
        ),
        pdf="results/figures/rrs_perplexity.pdf",
    log:
        "logs/rrs/perplexity.log",
    benchmark:
        "results/benchmarks/rrs_perplexity/rrs/perplexity.tsv"
    conda:
        PAPER_ENV
    params:
        families=RRS.families,
    script:
        "../../../scripts/rrs_tables.py"


rule rrs_outliers:
    """Activation magnitudes of one linear input: original, after RS, after rotation, after RRS."""
    input:
        model=f"resources/models/{RRS.outlier_model}/lpbench_model.json",
        tokens=f"resources/tokens/{RRS.outlier_model}/{RRS.outlier_corpus}/evaluation.pt",
    output:
        csv=report("results/tables/rrs_outliers.csv", caption="../../report/rrs_outliers.rst", category="RRS"),
        md="results/tables/rrs_outliers.md",
        png=report("results/figures/rrs_outliers.png", caption="../../report/rrs_outliers_figure.rst", category="RRS"),
        pdf="results/figures/rrs_outliers.pdf",
    log:
        "logs/rrs/outliers.log",
    benchmark:
        "results/benchmarks/rrs_outliers/rrs/outliers.tsv"
    conda:
        PAPER_ENV
    threads: config["threads"]
    params:
        model=RRS.outlier_model,
        seqlen=lambda wc: window_settings(config, RRS.outlier_model, "evaluation")["seqlen"],
        seed=config["seed"],
        group_size=128,
    script:
        "../../../scripts/rrs_outliers.py"


rule rrs_cost:
    """Runtime ops per token of RS / RRS / QuaRot / SmoothQuant beyond plain W4A4, and measured eval time."""
    input:
        models=expand("resources/models/{model}/lpbench_model.json", model=RRS.models),
        costs=config["hw_costs"],
        evals=RRS.evals,
    output:
        csv=report("results/tables/rrs_cost.csv", caption="../../report/rrs_cost.rst", category="RRS"),
        md="results/tables/rrs_cost.md",
    log:
        "logs/rrs/cost.log",
    benchmark:
        "results/benchmarks/rrs_cost/rrs/cost.tsv"
    conda:
        PAPER_ENV
    params:
        methods=lambda wc: {meth: config["methods"][meth] for _, _, meth in RRS.triples},
    script:
        "../../../scripts/rrs_cost.py"


if RRS.triples:
    FINAL_OUTPUTS += outputs(rules.rrs_perplexity, rules.rrs_cost)
    CLAIM_TABLES += [rules.rrs_perplexity.output.csv, rules.rrs_cost.output.csv]
if RRS.outlier_model:
    FINAL_OUTPUTS += outputs(rules.rrs_outliers)
