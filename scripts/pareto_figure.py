"""Rule pareto_figure: one model's accuracy-energy figure from results/tables/pareto.csv."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.pareto import pareto_figure

setup(snakemake)
df = pd.read_csv(snakemake.input.csv)
save(pareto_figure(df, snakemake.wildcards.model, snakemake.params.batch), snakemake.output.png,
     snakemake.output.pdf)
