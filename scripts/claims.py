"""Rule claims: ledger + result tables -> results/claims.{md,csv} with computed verdicts."""
from pathlib import Path

import pandas as pd

from lpbench.claims import evaluate_ledger, load_ledger, to_markdown
from lpbench.jobs import setup

log = setup(snakemake)
tables = {Path(p).stem: pd.read_csv(p) for p in snakemake.input.tables}
df = evaluate_ledger(load_ledger(snakemake.input.ledger), tables)
df.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.md).write_text(to_markdown(df))
log.info("verdicts: %s", df["verdict"].value_counts().to_dict())
