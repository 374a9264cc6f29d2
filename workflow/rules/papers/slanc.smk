# Rules of the slanc reproduction. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
# The methods of kind `slanc` in config.methods (variant none | static | dynamic) are evaluated by the
# shared evaluate rule (perplexity with every norm in emulated low precision). These rules add the
# per-norm measurements on real activations, the tables and the Σx² figure.
# Which methods, evaluations and (model, corpus) pairs they read: lpbench.studies.slanc.targets (settings:
# the `slanc` config section, defaults in lpbench.studies.slanc.DEFAULTS).

from lpbench.studies import slanc as slanc_study

SLANC = slanc_study.targets(config, TRIPLES)


rule slanc_measure:
    """Norm inputs of the FP32 model through every variant's emulated low-precision norm."""
    input:
        model="resources/models/{model}/lpbench_model.json",
        tokens="resources/tokens/{model}/{corpus}/evaluation.pt",
        artifact=lambda wc: f"resources/artifacts/{wc.model}/{wc.corpus}/{SLANC.methods['slanc']}.pt",
    output:
        "results/slanc/{model}/{corpus}.pt",
    log:
        "logs/slanc_measure/{model}/{corpus}.log",
    benchmark:
        "results/benchmarks/slanc_measure/{model}/{corpus}.tsv"
    conda:
        PAPER_ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        settings=lambda wc: window_settings(config, wc.model, "evaluation"),
        n_windows=SLANC.measure["n_windows"],
        stress_k=SLANC.measure["stress_k"],
        # the static SLaNC method's entry; its fmt/order/target_sumsq/apply_as (defaults included) are
        # resolved by the library (lpbench.methods.slanc) in the script
        method=lambda wc: SLANC.methods["slanc"],
        entry=lambda wc: config["methods"][SLANC.methods["slanc"]],
        seed=config["seed"],
    script:
        "../../../scripts/slanc_measure.py"


rule slanc_tables:
    input:
        measures=[f"results/slanc/{m}/{c}.pt" for m, c in SLANC.pairs],
        evals=SLANC.evals,
        models=model_paths(sorted({m for m, _ in SLANC.pairs})),
        costs=config["hw_costs"],
    output:
        csv=report("results/tables/slanc.csv", caption="../../report/slanc_table.rst", category="SLaNC"),
        md="results/tables/slanc.md",
        layers_csv=report("results/tables/slanc_layers.csv", caption="../../report/slanc_layers.rst", category="SLaNC"),
        layers_md="results/tables/slanc_layers.md",
        cost_csv=report("results/tables/slanc_cost.csv", caption="../../report/slanc_cost.rst", category="SLaNC"),
        cost_md="results/tables/slanc_cost.md",
    log:
        "logs/slanc_tables.log",
    benchmark:
        "results/benchmarks/slanc_tables/slanc_tables.tsv"
    conda:
        PAPER_ENV
    params:
        variant_methods=SLANC.methods,
        methods={name: config["methods"][name] for name in SLANC.methods.values()},
        fp32_method="fp32",
    script:
        "../../../scripts/slanc_tables.py"


rule slanc_figure:
    input:
        measures=[f"results/slanc/{m}/{c}.pt" for m, c in SLANC.pairs],
    output:
        png=report("results/figures/slanc_sumsq.png", caption="../../report/slanc_sumsq.rst", category="SLaNC"),
        pdf="results/figures/slanc_sumsq.pdf",
    log:
        "logs/slanc_figure.log",
    benchmark:
        "results/benchmarks/slanc_figure/slanc_figure.tsv"
    conda:
        PAPER_ENV
    script:
        "../../../scripts/slanc_figure.py"


if SLANC.measured:
    FINAL_OUTPUTS += outputs(rules.slanc_tables, rules.slanc_figure)
    CLAIM_TABLES += [rules.slanc_tables.output.csv, rules.slanc_tables.output.cost_csv]
