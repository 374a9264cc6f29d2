"""Rule rrs_perplexity: result JSONs of the RRS methods -> results/tables/rrs_perplexity.{csv,md} + figure."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.rrs.analysis import perplexity_figure, perplexity_rows
from lpbench.tables import load_results, write_table

log = setup(snakemake)
df = pd.DataFrame(perplexity_rows(load_results(snakemake.input.evals), snakemake.params.families))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "RRS reproduction: perplexity by model x method x W/A bits x KV bits "
            "(non-overlapping windows; weights per-channel RTN, activations per-token, LM head FP)")
save(perplexity_figure(df), snakemake.output.png, snakemake.output.pdf)
log.info("rrs_perplexity: %d rows", len(df))
