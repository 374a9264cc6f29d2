# Rules of the iterl2norm reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
#
# IterL2Norm: precision study (ITER-1, ITER-2), norm-macro latency and energy (ITER-3),
# model level through the shared evaluate rule (methods of kind `iterl2norm`, ITER-4).
# Settings: the `iterl2norm` config section (defaults in lpbench.studies.iterl2norm.DEFAULTS); which
# evaluations and models the rules read: lpbench.studies.iterl2norm.targets.

from lpbench.studies import iterl2norm as iterl2norm_study

ITERL2NORM_CFG = config.get("iterl2norm") or {}
ITERL2NORM = iterl2norm_study.targets(config, TRIPLES)


# seconds on small CSVs / the cost model: run where Snakemake runs, never queued on a cluster
localrules:
    iterl2norm_latency,
    iterl2norm_figures,
    iterl2norm_model_table,


rule iterl2norm_record:
    """Inputs of every norm of a model on its first calibration windows (forward pre-hooks)."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        windows=f"resources/calib/{{model}}/{ITERL2NORM.record_corpus}.windows.pt",
    output:
        inputs="resources/iterl2norm/{model}/norm_inputs.pt",
    log:
        "logs/iterl2norm/record/{model}.log",
    benchmark:
        "results/benchmarks/iterl2norm_record/iterl2norm/record/{model}.tsv"
    conda:
        PAPER_ENV
    threads: config["threads"]
    resources:
        mem_mb=6000,
    params:
        record=ITERL2NORM.record,
        seed=config["seed"],
    script:
        "../../../scripts/iterl2norm_record.py"


rule iterl2norm_precision:
    """Error vs iterations per format and d (synthetic and real inputs); ITER-1 and ITER-2 tables."""
    input:
        real=expand("resources/iterl2norm/{model}/norm_inputs.pt", model=ITERL2NORM.record_models),
    output:
        errors="results/data/iterl2norm_errors.csv",
        conv=report(
            "results/tables/iterl2norm_convergence.csv",
            caption="../../report/iterl2norm_convergence.rst",
            category="IterL2Norm",
        ),
        conv_md="results/tables/iterl2norm_convergence.md",
        wins=report(
            "results/tables/iterl2norm_wins.csv", caption="../../report/iterl2norm_wins.rst", category="IterL2Norm"
        ),
        wins_md="results/tables/iterl2norm_wins.md",
        init=report(
            "results/tables/iterl2norm_init.csv", caption="../../report/iterl2norm_init.rst", category="IterL2Norm"
        ),
        init_md="results/tables/iterl2norm_init.md",
    log:
        "logs/iterl2norm/precision.log",
    benchmark:
        "results/benchmarks/iterl2norm_precision/iterl2norm/precision.tsv"
    conda:
        PAPER_ENV
    threads: config["threads"]
    resources:
        mem_mb=4000,
    params:
        cfg=ITERL2NORM_CFG,
    script:
        "../../../scripts/iterl2norm_precision.py"


rule iterl2norm_latency:
    """Norm-macro cycle model vs the paper's endpoints (ITER-3); energy vs a sqrt + divide datapath."""
    input:
        costs=config["hw_costs"],
    output:
        lat=report(
            "results/tables/iterl2norm_latency.csv",
            caption="../../report/iterl2norm_latency_table.rst",
            category="IterL2Norm",
        ),
        lat_md="results/tables/iterl2norm_latency.md",
        curve="results/data/iterl2norm_latency_curve.csv",
        energy=report(
            "results/tables/iterl2norm_energy.csv", caption="../../report/iterl2norm_energy.rst", category="IterL2Norm"
        ),
        energy_md="results/tables/iterl2norm_energy.md",
    log:
        "logs/iterl2norm/latency.log",
    benchmark:
        "results/benchmarks/iterl2norm_latency/iterl2norm/latency.tsv"
    conda:
        PAPER_ENV
    params:
        cfg=ITERL2NORM_CFG,
    script:
        "../../../scripts/iterl2norm_latency.py"


rule iterl2norm_figures:
    input:
        errors="results/data/iterl2norm_errors.csv",
        conv="results/tables/iterl2norm_convergence.csv",
        curve="results/data/iterl2norm_latency_curve.csv",
        lat="results/tables/iterl2norm_latency.csv",
        init="results/tables/iterl2norm_init.csv",
    output:
        err_png=report(
            "results/figures/iterl2norm_error.png", caption="../../report/iterl2norm_error.rst", category="IterL2Norm"
        ),
        err_pdf="results/figures/iterl2norm_error.pdf",
        real_png=report(
            "results/figures/iterl2norm_error_real.png",
            caption="../../report/iterl2norm_error_real.rst",
            category="IterL2Norm",
        ),
        real_pdf="results/figures/iterl2norm_error_real.pdf",
        lat_png=report(
            "results/figures/iterl2norm_latency.png",
            caption="../../report/iterl2norm_latency.rst",
            category="IterL2Norm",
        ),
        lat_pdf="results/figures/iterl2norm_latency.pdf",
        init_png=report(
            "results/figures/iterl2norm_init.png",
            caption="../../report/iterl2norm_init_figure.rst",
            category="IterL2Norm",
        ),
        init_pdf="results/figures/iterl2norm_init.pdf",
    log:
        "logs/iterl2norm/figures.log",
    benchmark:
        "results/benchmarks/iterl2norm_figures/iterl2norm/figures.tsv"
    conda:
        PAPER_ENV
    script:
        "../../../scripts/iterl2norm_figures.py"


rule iterl2norm_model_table:
    """Perplexity vs k (causal LMs) and output error (encoder) of the iterl2norm methods (ITER-4)."""
    input:
        ITERL2NORM.evals,
    output:
        csv=report(
            "results/tables/iterl2norm_model.csv", caption="../../report/iterl2norm_model.rst", category="IterL2Norm"
        ),
        md="results/tables/iterl2norm_model.md",
    log:
        "logs/iterl2norm/model_table.log",
    benchmark:
        "results/benchmarks/iterl2norm_model_table/iterl2norm/model_table.tsv"
    conda:
        PAPER_ENV
    script:
        "../../../scripts/iterl2norm_model_table.py"


FINAL_OUTPUTS += outputs(
    rules.iterl2norm_precision, rules.iterl2norm_latency, rules.iterl2norm_figures, rules.iterl2norm_model_table
)
CLAIM_TABLES += [
    rules.iterl2norm_precision.output.conv,
    rules.iterl2norm_precision.output.wins,
    rules.iterl2norm_precision.output.init,
    rules.iterl2norm_latency.output.lat,
    rules.iterl2norm_model_table.output.csv,
]
