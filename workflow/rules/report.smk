# Tables, figures and claims read small files and take seconds: on a cluster they run where Snakemake
# runs (no queue wait).
localrules:
    aggregate,
    figures,
    claims,


rule aggregate:
    """All result JSONs -> one table per metric kind (CSV + Markdown)."""
    input:
        eval_results(),
    output:
        ppl=report("results/tables/perplexity.csv", caption="../report/perplexity.rst", category="Tables"),
        ppl_md="results/tables/perplexity.md",
        enc=report("results/tables/encoder.csv", caption="../report/encoder.rst", category="Tables"),
        enc_md="results/tables/encoder.md",
    log:
        "logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate/aggregate.tsv"
    conda:
        ENV
    script:
        "../../scripts/aggregate.py"


rule figures:
    input:
        ppl="results/tables/perplexity.csv",
    output:
        png=report("results/figures/perplexity.png", caption="../report/perplexity_figure.rst", category="Figures"),
        pdf="results/figures/perplexity.pdf",
    log:
        "logs/figures.log",
    benchmark:
        "results/benchmarks/figures/figures.tsv"
    conda:
        ENV
    script:
        "../../scripts/figures.py"


rule claims:
    """Verdicts of every claim in the ledger (config/claims.yaml, checked against its schema when the Snakefile
    is parsed), computed from the result tables: claims.csv, and claims.md (summary table + one section per claim)."""
    input:
        ledger=config["claims"],
        tables=lambda wc: CLAIM_TABLES,
        evals=eval_results(),  # their per-token NLLs give the confidence intervals
    output:
        md=report("results/claims.md", caption="../report/claims.rst", category="Claims"),
        csv="results/claims.csv",
    log:
        "logs/claims.log",
    benchmark:
        "results/benchmarks/claims/claims.tsv"
    conda:
        ENV
    script:
        "../../scripts/claims.py"


FINAL_OUTPUTS += outputs(rules.aggregate, rules.figures, rules.claims)
CLAIM_TABLES += [rules.aggregate.output.ppl, rules.aggregate.output.enc]
