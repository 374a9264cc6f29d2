"""Rule tender_tables: Tender perplexity table, granularity comparison (TENDER-1) and perplexity vs G
(TENDER-3) from the evaluation JSONs (lpbench.studies.tender)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.claims import load_nll
from lpbench.integrity import load_checked
from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.tender.analysis import (calibration_figure, calibration_rows, granularity, groups_figure,
                                    tender_perplexity)
from lpbench.tables import load_results, perplexity_table, write_table

log = setup(snakemake)
roles = {role: {int(b): m for b, m in by.items()} for role, by in snakemake.params.roles.items()}
results = load_results(snakemake.input.evals)
ppl = perplexity_table(results)
nll = load_nll(results)
model_dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.models}
artifacts = {}
for (m, _c, meth), path in zip(snakemake.params.artifact_triples, snakemake.input.artifacts):
    art = load_checked(path)["artifact"]
    artifacts[(m, meth)] = {k: v for k, v in art.items() if k.startswith("meta/")}
df = tender_perplexity(ppl, roles, model_dirs, artifacts, dict(snakemake.params.variants))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "Tender and granularity baselines: perplexity (model x method x bits)")
gran = granularity(df, roles)
write_table(gran, snakemake.output.gran, snakemake.output.gran_md,
            "Tender vs activation-quantization granularity (TENDER-1): coarse_over_tender >= 1 means Tender "
            "is at least as good as every claimed baseline; like_with_like = 1: every baseline of the row uses "
            "Tender's weight quantizer and width (weights), 0: the configured baselines as they are. Tender's "
            "activation scales are static (calibrated TMax, groups, channel bias); per-tensor / per-row / "
            "per-column are dynamic (scales from each evaluated activation); SmoothQuant: static smoothing, "
            "dynamic per-token activations")
save(groups_figure(df), snakemake.output.png, snakemake.output.pdf)
cal = calibration_rows(df, snakemake.params.calib_seqlen, nll)
write_table(cal, snakemake.output.cal, snakemake.output.cal_md,
            "Tender calibration size: perplexity vs number of calibration windows (static TMax/CMax/bias), "
            "and the runtime-TMax ablation")
save(calibration_figure(cal), snakemake.output.cal_png, snakemake.output.cal_pdf)
log.info("tender tables: %d rows, granularity %d rows", len(df), len(gran))
