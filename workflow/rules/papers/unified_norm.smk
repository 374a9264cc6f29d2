# Rules of the Unified Normalization study. Appends to FINAL_OUTPUTS / CLAIM_TABLES (see common.smk).
#
# One training job per (task, norm, seed) -> checkpoint, per-step log, result JSON with provenance; then
# the study tables, LN vs folded-UN inference speed / memory, figures (UN-1..3).
# Settings: the `unified_norm` config section (defaults and checks in lpbench.studies.unified_norm, which
# also lists the runs and the files they read and write).

from lpbench.studies import unified_norm as un_study

UN = un_study.settings(config.get("unified_norm"))
UN_RUNS = un_study.runs(UN)
for _entry in UN["images"].values():
    if isinstance(_entry.get("path"), str):
        _entry["path"] = resolve(_entry["path"])


rule un_images:
    """Fetch an image set (Fashion-MNIST from Debian, SHA256-checked) and store its official splits."""
    output:
        data="resources/unified_norm/images/{images}.pt",
        meta="resources/unified_norm/images/{images}.json",
    log:
        "logs/unified_norm/images/{images}.log",
    benchmark:
        "results/benchmarks/un_images/{images}.tsv"
    conda:
        PAPER_ENV
    params:
        entry=lambda wc: UN["images"][wc.images],
        work=lambda wc: f"resources/downloads/images/{wc.images}",
    script:
        "../../../scripts/un_images.py"


rule un_train:
    """Train one (task, norm, seed); evaluate on the held-out split."""
    input:
        unpack(lambda wc: un_study.task_inputs(UN, wc.task)),
    output:
        result="results/unified_norm/runs/{task}/{norm}/seed{seed}.json",
        log_csv="results/data/unified_norm/{task}/{norm}/seed{seed}.csv",
        ckpt="resources/unified_norm/ckpt/{task}/{norm}/seed{seed}.pt",
    log:
        "logs/unified_norm/train/{task}/{norm}/seed{seed}.log",
    benchmark:
        "results/benchmarks/un_train/{task}/{norm}/seed{seed}.tsv"
    wildcard_constraints:
        task="[A-Za-z0-9][A-Za-z0-9_.+-]*",
        norm="[A-Za-z0-9][A-Za-z0-9_.+-]*",
        seed="[0-9]+",
    conda:
        PAPER_ENV
    threads: config["threads"]
    resources:
        mem_mb=2000,
    params:
        task=lambda wc: UN["tasks"][wc.task],
        norm=lambda wc: UN["norms"][wc.norm],
        role=lambda wc: un_study.role(UN, wc.task, wc.norm),
        seed=lambda wc: int(wc.seed),
        device=config.get("device", "cpu"),
    script:
        "../../../scripts/un_train.py"


rule un_tables:
    """Per-seed results, per-(task, norm) summary with gap to LN and CI, filtration table, UN-3 outcome."""
    input:
        un_study.run_files("json", UN_RUNS),
    output:
        csv=report(
            "results/tables/unified_norm.csv",
            caption="../../report/unified_norm.rst",
            category="Unified Normalization",
        ),
        md="results/tables/unified_norm.md",
        summary=report(
            "results/tables/unified_norm_summary.csv",
            caption="../../report/unified_norm_summary.rst",
            category="Unified Normalization",
        ),
        summary_md="results/tables/unified_norm_summary.md",
        filtration="results/tables/unified_norm_filtration.csv",
        filtration_md="results/tables/unified_norm_filtration.md",
        un3="results/tables/unified_norm_un3.csv",
        un3_md="results/tables/unified_norm_un3.md",
    log:
        "logs/unified_norm/tables.log",
    benchmark:
        "results/benchmarks/un_tables/unified_norm.tsv"
    conda:
        PAPER_ENV
    script:
        "../../../scripts/un_tables.py"


rule un_speed:
    """LN vs folded UN: latency, peak memory, norm time share, folding check; norm ops and energy."""
    input:
        ckpts=un_study.run_files("ckpt", un_study.speed_runs(UN)),
        data=sorted({f for t in UN["speed"]["tasks"] for f in un_study.task_inputs(UN, t).values()}),
        costs=config["hw_costs"],
    output:
        csv=report(
            "results/tables/unified_norm_speed.csv",
            caption="../../report/unified_norm_speed.rst",
            category="Unified Normalization",
        ),
        md="results/tables/unified_norm_speed.md",
        energy="results/tables/unified_norm_energy.csv",
        energy_md="results/tables/unified_norm_energy.md",
    log:
        "logs/unified_norm/speed.log",
    benchmark:
        "results/benchmarks/un_speed/unified_norm.tsv"
    conda:
        PAPER_ENV
    # a timing job holds every core, so that no other job shares the CPU while it measures (with other
    # jobs beside it, the SmolLM2-shape 1x64 speedup read 1.13 in one run and 1.45 in the next); it still
    # times with `torch_threads` threads (profiles/slurm sets 1: a SLURM job is alone on its CPUs)
    threads: workflow.cores
    resources:
        mem_mb=4000,
    params:
        cfg=UN,
        runs=un_study.speed_runs(UN),
        seed=config["seed"],
        torch_threads=config["threads"],
    script:
        "../../../scripts/un_speed.py"


rule un_figures:
    input:
        logs=un_study.run_files("log", UN_RUNS),
        speed="results/tables/unified_norm_speed.csv",
    output:
        curves=report(
            "results/figures/unified_norm_training.png",
            caption="../../report/unified_norm_training.rst",
            category="Unified Normalization",
        ),
        curves_pdf="results/figures/unified_norm_training.pdf",
        stat=report(
            "results/figures/unified_norm_statistic.png",
            caption="../../report/unified_norm_statistic.rst",
            category="Unified Normalization",
        ),
        stat_pdf="results/figures/unified_norm_statistic.pdf",
        speed=report(
            "results/figures/unified_norm_speed.png",
            caption="../../report/unified_norm_speed_figure.rst",
            category="Unified Normalization",
        ),
        speed_pdf="results/figures/unified_norm_speed.pdf",
    log:
        "logs/unified_norm/figures.log",
    benchmark:
        "results/benchmarks/un_figures/unified_norm.tsv"
    conda:
        PAPER_ENV
    params:
        runs=UN_RUNS,
        stat_tasks=[t for t, task in UN["tasks"].items() if task["kind"] == "vision"],
    script:
        "../../../scripts/un_figures.py"


if UN_RUNS:
    FINAL_OUTPUTS += outputs(rules.un_tables, rules.un_figures, rules.un_speed)
    CLAIM_TABLES += [
        rules.un_tables.output.summary,
        rules.un_tables.output.filtration,
        rules.un_tables.output.un3,
        rules.un_speed.output.csv,
    ]
