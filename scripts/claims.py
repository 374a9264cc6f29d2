"""Rule claims: ledger + result tables (+ the evaluations' per-token NLLs for the confidence
intervals) -> results/claims.{md,csv} with computed verdicts."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import pandas as pd

from lpbench.claims import evaluate_ledger, load_ledger, load_nll, to_markdown
from lpbench.claims.supporting import kl_checks
from lpbench.jobs import setup
from lpbench.tables import load_results

log = setup(snakemake)
tables = {Path(p).stem: pd.read_csv(p) for p in snakemake.input.tables}
evals = snakemake.input.evals if "evals" in snakemake.input.keys() else []
results = load_results(evals)
nll = load_nll(results)
ledger = load_ledger(snakemake.input.ledger)
df = evaluate_ledger(ledger, tables, nll)
# supporting: the same comparisons on mean KL to FP32 (lpbench.claims.supporting); a decided KL comparison
# that says the opposite of the verdict is named in the reason
df["kl_check"], notes = kl_checks(ledger, list(df["verdict"]), results)
df["reason"] = [f"{r}; {n}" if n else r for r, n in zip(df["reason"], notes)]
df.to_csv(snakemake.output.csv, index=False)
Path(snakemake.output.md).write_text(to_markdown(df))
log.info("verdicts: %s (per-token NLL of %d evaluations)", df["verdict"].value_counts().to_dict(), len(nll))
