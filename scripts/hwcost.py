"""Rule hwcost: per-token op counts of each (model, method) -> energy table."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.hwcost import energy_pj, load_costs
from lpbench.jobs import setup
from lpbench.methods import build_method, model_dims
from lpbench.tables import write_table

log = setup(snakemake)
costs = load_costs(snakemake.input.costs)
dims, _ = model_dims(snakemake.input.models)
rows = []
for model, name in snakemake.params.pairs:
    method = build_method(name, snakemake.params.methods[name])
    ops = method.ops_per_token(dims[model])
    energy = energy_pj(ops, costs)
    rows.append({"model": model, "method": name, "kind": method.kind,
                 "gemm_macs_per_token": dims[model].gemm_macs, "energy_pj_per_token": energy["total"],
                 **{f"ops.{k}": v for k, v in sorted(ops.items())}})
df = pd.DataFrame(rows).fillna({c: 0.0 for c in {k for r in rows for k in r if k.startswith("ops.")}})
ref = df[df["method"] == "fp32"].set_index("model")["energy_pj_per_token"]
df["energy_vs_fp32"] = df["energy_pj_per_token"] / df["model"].map(ref)
write_table(df, snakemake.output.csv, snakemake.output.md, "Energy per token (blocks' GEMMs and method extras)")
log.info("hwcost for %d (model, method) pairs", len(df))
