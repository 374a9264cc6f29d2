"""Rule un_tables: every run JSON -> per-seed table, per-(task, norm) summary, filtration table."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.jobs import setup
from lpbench.studies.unified_norm.tables import COLLAPSE_DEFINITION, load_runs, study_tables
from lpbench.tables import write_table

log = setup(snakemake)
out = snakemake.output
per_seed, summary, filt = study_tables(load_runs(list(snakemake.input)))
gap = ("gap_to_ln: LN mean - mean (top-1 points) or 100 x (mean / LN mean - 1) (perplexity %), positive = "
       "worse, 95 % Welch CI over seeds; " + COLLAPSE_DEFINITION)
write_table(per_seed, out.csv, out.md, "Unified Normalization: every run. " + gap)
write_table(summary, out.summary, out.summary_md, "Unified Normalization: per task and norm. " + gap)
write_table(filt, out.filtration, out.filtration_md, "UN with vs without outlier filtration. " + COLLAPSE_DEFINITION)
log.info("summary:\n%s", summary.to_string())
