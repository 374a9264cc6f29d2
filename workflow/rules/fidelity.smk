# Fidelity to FP32 (issue 25): per-token KL(P_fp32 ‖ Q), top-1 agreement and Δp of every causal evaluation
# (written by rule evaluate against the reference of rule evaluate_reference), per-token cosine / SQNR of
# every encoder evaluation, aggregated with block-bootstrap CIs (lpbench.fidelity). Appends to FINAL_OUTPUTS.


localrules:
    fidelity_tables,


rule fidelity_tables:
    """Fidelity of every evaluated method to FP32: table (causal LMs and encoders) and figure."""
    input:
        evals=eval_results(),
    output:
        csv=report("results/tables/fidelity.csv", caption="../report/fidelity.rst", category="Tables"),
        md="results/tables/fidelity.md",
        enc_csv=report(
            "results/tables/fidelity_encoder.csv", caption="../report/fidelity_encoder.rst", category="Tables"
        ),
        enc_md="results/tables/fidelity_encoder.md",
        png=report("results/figures/fidelity.png", caption="../report/fidelity_figure.rst", category="Figures"),
        pdf="results/figures/fidelity.pdf",
    log:
        "logs/fidelity_tables.log",
    benchmark:
        "results/benchmarks/fidelity_tables/fidelity.tsv"
    conda:
        ENV
    script:
        "../../scripts/fidelity_tables.py"


FINAL_OUTPUTS += outputs(rules.fidelity_tables)
