"""Rule iterl2norm_latency: norm-macro cycle model vs the paper's endpoints (ITER-3) and the energy of
one normalization vs a square-root + divide datapath."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.hwcost import load_costs
from lpbench.studies.iterl2norm import settings
from lpbench.studies.iterl2norm.hardware import energy_table, latency_table
from lpbench.jobs import setup
from lpbench.tables import write_table

log = setup(snakemake)
cfg = settings(snakemake.params.cfg)
lat, curve = latency_table(cfg["macro"], cfg["macro_lanes_sweep"], cfg["macro_anchor_d"])
out = snakemake.output
write_table(lat, out.lat, out.lat_md,
            f"Norm-macro cycle model: overhead calibrated at d = {cfg['macro_anchor_d']}, other endpoint "
            "predicted (paper: 116 cycles at d = 64, 227 at d = 1024, 100 MHz)")
curve.to_csv(out.curve, index=False)
en = energy_table(load_costs(snakemake.input.costs), cfg["energy"]["dims"],
                  [f for f in cfg["formats"] if f != "fp64"], cfg["energy"]["div_sqrt_vs_mult"])
write_table(en, out.energy, out.energy_md,
            "Energy of one LayerNorm normalization (pJ, Horowitz 45 nm; sqrt and divide charged as "
            "r x the format's multiply, r swept: no sourced constant)")
log.info("latency:\n%s", lat.to_string())
