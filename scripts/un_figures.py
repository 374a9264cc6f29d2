"""Rule un_figures: training curves (mean and seed band), one layer's statistic per step, speed bars."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.unified_norm.tables import speed_figure, statistic_figure, training_curves

log = setup(snakemake)
out = snakemake.output
logs = {tuple(r): pd.read_csv(f) for r, f in zip(snakemake.params.runs, snakemake.input.logs)}
save(training_curves(logs), out.curves, out.curves_pdf)
save(statistic_figure(logs, snakemake.params.stat_tasks), out.stat, out.stat_pdf)
save(speed_figure(pd.read_csv(snakemake.input.speed)), out.speed, out.speed_pdf)
log.info("figures written")
