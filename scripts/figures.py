"""Rule figures: perplexity table -> results/figures/perplexity.{png,pdf}."""
import pandas as pd

from lpbench.jobs import setup
from lpbench.plots import perplexity_by_method, save

setup(snakemake)
save(perplexity_by_method(pd.read_csv(snakemake.input.ppl)), snakemake.output.png, snakemake.output.pdf)
