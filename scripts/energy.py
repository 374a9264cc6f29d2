"""Rule energy: whole-model energy per generated token of every evaluated causal (model, method)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import pandas as pd
from transformers import AutoConfig

from lpbench.archs import spec_for_model_type
from lpbench.hwcost import load_costs
from lpbench.jobs import setup
from lpbench.methods import ModelDims
from lpbench.studies.pareto import energy_rows
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params
dims, archs = {}, {}
for meta in snakemake.input.models:
    cfg = AutoConfig.from_pretrained(Path(meta).parent)
    name = Path(meta).parent.name
    archs[name] = spec_for_model_type(cfg.model_type)
    dims[name] = ModelDims.from_config(cfg, archs[name])
df = pd.DataFrame(energy_rows(dims, archs, p.methods, p.pairs, load_costs(snakemake.input.costs), p.batches,
                              p.context))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "Energy per generated token (pJ) by component, Horowitz 45 nm; INT4 multiplies as INT8 (upper "
            "bound; total_pj_quadratic: quadratic-in-width estimate); DRAM at 1.3 nJ per 64 bits")
log.info("energy: %d rows (batches %s, context %d)", len(df), p.batches, p.context)
