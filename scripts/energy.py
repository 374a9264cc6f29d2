"""Rule energy: whole-model energy per generated token of every evaluated causal (model, method)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.hwcost import load_costs
from lpbench.jobs import setup
from lpbench.methods import model_dims
from lpbench.studies.pareto import energy_rows
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params
dims, archs = model_dims(snakemake.input.models)
df = pd.DataFrame(energy_rows(dims, archs, p.methods, p.pairs, load_costs(snakemake.input.costs), p.batches,
                              p.context))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "Energy per generated token (pJ) by component, Horowitz 45 nm; INT4 multiplies as INT8 (upper "
            "bound; total_pj_quadratic: quadratic-in-width estimate); DRAM at 1.3 nJ per 64 bits")
log.info("energy: %d rows (batches %s, context %d)", len(df), p.batches, p.context)
