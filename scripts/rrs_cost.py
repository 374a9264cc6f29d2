"""Rule rrs_cost: per-token op counts of RS/RRS/QuaRot/SmoothQuant overhead vs plain W4A4 -> rrs_cost table."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.hwcost import load_costs
from lpbench.jobs import setup
from lpbench.methods import model_dims
from lpbench.studies.rrs.analysis import cost_rows
from lpbench.tables import load_results, write_table

log = setup(snakemake)
costs = load_costs(snakemake.input.costs)
dims, archs = model_dims(snakemake.input.models)
df = pd.DataFrame(cost_rows(dims, archs, snakemake.params.methods, costs, load_results(snakemake.input.evals)))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "RRS cost: runtime ops per token beyond plain W4A4 (Horowitz 45 nm energies; INT4 MACs charged "
            "as INT8, an upper bound on the base) and measured fake-quant evaluation time")
log.info("rrs_cost: %d rows", len(df))
