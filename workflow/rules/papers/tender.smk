# Rules of the Tender reproduction (ISCA 2024). Appends to FINAL_OUTPUTS / CLAIM_TABLES
# (see common.smk).
#
# Tender and its baselines are ordinary config methods evaluated by the shared `evaluate` rule (kind
# `tender`; the granularity baselines of the paper's Table 1 are `rtn` entries with `a_granularity`;
# SmoothQuant is the `smoothquant` kind). This file adds the paper's own outputs:
#   tender_tables     results/tables/tender_perplexity.{csv,md}  model x method x bits (TENDER-1, TENDER-3)
#                     results/tables/tender_granularity.{csv,md} Tender vs per-tensor / per-row / per-column /
#                                                                SmoothQuant per (model, bits) (TENDER-1)
#                     results/figures/tender_groups.{png,pdf}    perplexity vs G (TENDER-3)
#   tender_exactness  results/tables/tender_exactness.{csv,md}   integer shift accumulation vs fake quant on
#                                                                real layers and activations (TENDER-2)
#   tender_cost       results/tables/tender_cost.{csv,md}, results/figures/tender_cost.{png,pdf}
#                     analytical systolic-array model: shift vs explicit requantization (TENDER-4)
#
# Which evaluations, models and artifacts they read: lpbench.studies.tender.targets. Which evaluated method
# plays which role, the exactness methods and the cost workload: the `tender` config section (defaults in
# lpbench.studies.tender.DEFAULTS).

from lpbench.studies import tender as tender_study

TENDER = tender_study.targets(config, TRIPLES)


rule tender_tables:
    """Tender perplexity table (model x method x bits), granularity comparison and the G-sweep figure."""
    input:
        evals=eval_paths(TENDER.triples),
        models=model_paths(TENDER.models),
        artifacts=artifact_paths(TENDER.artifacts),
    output:
        csv=report(
            "results/tables/tender_perplexity.csv", caption="../../report/tender_perplexity.rst", category="Tender"
        ),
        md="results/tables/tender_perplexity.md",
        gran=report(
            "results/tables/tender_granularity.csv", caption="../../report/tender_granularity.rst", category="Tender"
        ),
        gran_md="results/tables/tender_granularity.md",
        png=report("results/figures/tender_groups.png", caption="../../report/tender_groups.rst", category="Tender"),
        pdf="results/figures/tender_groups.pdf",
        cal=report(
            "results/tables/tender_calibration.csv", caption="../../report/tender_calibration.rst", category="Tender"
        ),
        cal_md="results/tables/tender_calibration.md",
        cal_png=report(
            "results/figures/tender_calibration.png", caption="../../report/tender_calibration.rst", category="Tender"
        ),
        cal_pdf="results/figures/tender_calibration.pdf",
    log:
        "logs/tender/tables.log",
    benchmark:
        "results/benchmarks/tender_tables/tender/tables.tsv"
    conda:
        PAPER_ENV
    params:
        roles=TENDER.roles,
        variants=TENDER.weight_variants,
        calib_seqlen=config["calibration"]["seqlen"],
        artifact_triples=TENDER.artifacts,
    script:
        "../../../scripts/tender_tables.py"


rule tender_exactness:
    """TENDER-2: integer-only Tender layers (INT32 accumulator, shifts) vs fake quantization, on real
    layers of every model with a Tender artifact and real activations of one calibration window."""
    input:
        models=model_paths(m for m, _, _ in TENDER.exact),
        artifacts=artifact_paths(TENDER.exact),
        tokens=[f"resources/tokens/{m}/{c}/evaluation.pt" for m, c, _ in TENDER.exact],
    output:
        csv=report(
            "results/tables/tender_exactness.csv", caption="../../report/tender_exactness.rst", category="Tender"
        ),
        md="results/tables/tender_exactness.md",
    log:
        "logs/tender/exactness.log",
    benchmark:
        "results/benchmarks/tender_exactness/tender/exactness.tsv"
    conda:
        PAPER_ENV
    threads: config["threads"]
    resources:
        mem_mb=8000,
    params:
        triples=TENDER.exact,
        entries={meth: config["methods"][meth] for _, _, meth in TENDER.exact},
        settings={m: window_settings(config, m, "evaluation") for m, _, _ in TENDER.exact},
        seed=config["seed"],
    script:
        "../../../scripts/tender_exactness.py"


rule tender_cost:
    """TENDER-4: cycles and energy of a transformer layer's GEMMs on the output-stationary array under
    Tender shift accumulation, explicit requantization, per-tensor INT and FP16."""
    input:
        models=model_paths(TENDER.models),
        artifacts=artifact_paths(TENDER.cost_artifacts),
        costs=config["hw_costs"],
    output:
        csv=report("results/tables/tender_cost.csv", caption="../../report/tender_cost.rst", category="Tender"),
        md="results/tables/tender_cost.md",
        png=report("results/figures/tender_cost.png", caption="../../report/tender_cost_figure.rst", category="Tender"),
        pdf="results/figures/tender_cost.pdf",
    log:
        "logs/tender/cost.log",
    benchmark:
        "results/benchmarks/tender_cost/tender/cost.tsv"
    conda:
        PAPER_ENV
    params:
        cost=TENDER.cost,
        artifact_triples=TENDER.cost_artifacts,
        entries={meth: config["methods"][meth] for _, _, meth in TENDER.cost_artifacts},
    script:
        "../../../scripts/tender_cost.py"


# the cost model needs no evaluation (Llama-2-7B shapes alone suffice): always part of the run
FINAL_OUTPUTS += outputs(rules.tender_cost)
CLAIM_TABLES += [rules.tender_cost.output.csv]
if TENDER.triples:
    FINAL_OUTPUTS += outputs(rules.tender_tables)
    CLAIM_TABLES += [rules.tender_tables.output.csv, rules.tender_tables.output.gran]
if TENDER.exact:
    FINAL_OUTPUTS += outputs(rules.tender_exactness)
    CLAIM_TABLES += [rules.tender_exactness.output.csv]
