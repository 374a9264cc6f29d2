"""Rule figures: perplexity table -> results/figures/perplexity.{png,pdf}."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.jobs import setup
from lpbench.plots import perplexity_by_method, save

setup(snakemake)
save(perplexity_by_method(pd.read_csv(snakemake.input.ppl)), snakemake.output.png, snakemake.output.pdf)
