"""Rule pareto: energy per token + perplexity ratio to FP32 (paired block-bootstrap CI) -> pareto table."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.jobs import setup
from lpbench.studies.pareto import pareto_table
from lpbench.tables import load_results, write_table

log = setup(snakemake)
df = pareto_table(pd.read_csv(snakemake.input.energy), load_results(snakemake.input.evals))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "Accuracy vs energy: perplexity ratio to FP32 (95 % paired block-bootstrap CI) and energy per "
            "generated token; on_front = not dominated in (energy, ratio) at that batch size")
log.info("pareto: %d rows, %d on a front", len(df), int(df["on_front"].sum()) if len(df) else 0)
