"""Rule slanc_tables: SLaNC measurements + evaluation JSONs -> results/tables/slanc (model x case x
variant), slanc_layers (predicted vs measured norm-input RMS per norm) and slanc_cost (runtime extras)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import json
from pathlib import Path

import torch

from lpbench.hwcost import load_costs
from lpbench.jobs import setup
from lpbench.studies.slanc.tables import cost_table, measurement_tables
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params
evals = {}
for path in snakemake.input.evals:
    r = json.loads(Path(path).read_text())
    evals[(r["model"]["id"], r["method"]["name"])] = r["metrics"]
df, layers = measurement_tables([torch.load(path) for path in snakemake.input.measures], evals,
                                p.fp32_method, p.variant_methods)
write_table(df, snakemake.output.csv, snakemake.output.md,
            "SLaNC: norm statistics in emulated low precision (counts over all norms x vectors of the "
            "measured windows; perplexity over the evaluation windows)")
write_table(layers, snakemake.output.layers_csv, snakemake.output.layers_md,
            "SLaNC: predicted (weights only) vs measured norm-input RMS, per norm")
costs = load_costs(snakemake.input.costs)
write_table(cost_table([Path(m).parent for m in snakemake.input.models], p.variant_methods, p.methods, costs),
            snakemake.output.cost_csv, snakemake.output.cost_md,
            "SLaNC vs dynamic scaling: runtime ops added per token (all norms)")
log.info("slanc tables: %d rows, %d layer rows", len(df), len(layers))
