"""Rule tender_cost (TENDER-4): analytical output-stationary systolic-array model of a transformer's
linear layers at prefill, Tender shift accumulation vs explicit requantization vs per-tensor INT vs FP16
(lpbench.studies.tender)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.hwcost import load_costs
from lpbench.integrity import load_checked
from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.tender.analysis import cost_figure, cost_table, measured_groups, model_shapes
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params.cost
costs = load_costs(snakemake.input.costs)
energy = {op: e["value"] for op, e in costs["energy_pj"].items()}
accel = {k: v["value"] for k, v in costs.get("tender_accelerator", {}).items()}
shapes = model_shapes([Path(m).parent for m in snakemake.input.models], p["extra_models"])
measured = measured_groups([(m, meth, snakemake.params.entries[meth], load_checked(path)["artifact"])
                            for (m, _c, meth), path in zip(snakemake.params.artifact_triples,
                                                           snakemake.input.artifacts)])
df = cost_table(shapes, measured, p["bits"], p["seqlen"], accel, energy)
write_table(df, snakemake.output.csv, snakemake.output.md,
            f"TENDER-4 mechanism: prefill of {p['seqlen']} tokens through every block's linears on a "
            f"{accel.get('rows', 64)}x{accel.get('cols', 64)} array of {accel.get('pe_bits', 4)}-bit PEs; ratios are "
            "baseline / Tender (> 1: Tender faster or more energy-efficient). Not ANT / OLAccel / OliVe.")
save(cost_figure(df), snakemake.output.png, snakemake.output.pdf)
log.info("tender cost: %s", df[["model", "bits", "speedup_vs_requant", "energy_vs_requant"]].to_dict("records"))
