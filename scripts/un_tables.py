"""Rule un_tables: every run JSON -> per-seed table, per-(task, norm) summary, filtration table, UN-3 outcome."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.jobs import setup
from lpbench.studies.unified_norm.tables import COLLAPSE_DEFINITION, load_runs, study_tables
from lpbench.studies.unified_norm.verdicts import un3_table
from lpbench.tables import write_table

log = setup(snakemake)
out = snakemake.output
per_seed, summary, filt = study_tables(load_runs(list(snakemake.input)))
gap = ("gap_to_ln: LN mean - mean (top-1 points) or 100 x (mean / LN mean - 1) (perplexity %), positive = "
       "worse, 95 % Welch CI over seeds; " + COLLAPSE_DEFINITION)
write_table(per_seed, out.csv, out.md, "Unified Normalization: every run. " + gap)
write_table(summary, out.summary, out.summary_md, "Unified Normalization: per task and norm. " + gap)
write_table(filt, out.filtration, out.filtration_md, "UN with vs without outlier filtration. " + COLLAPSE_DEFINITION)
un3 = un3_table(filt)
write_table(un3, out.un3, out.un3_md,
            "UN-3 per setting and overall: an arm collapses if any of its runs did; reproduced = collapse without "
            "filtration and none with it; not reproduced = a collapse with filtration; inconclusive = no collapse "
            "without filtration (premise not met). " + COLLAPSE_DEFINITION)
log.info("UN-3:\n%s", un3.to_string())
log.info("summary:\n%s", summary.to_string())
