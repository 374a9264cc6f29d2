"""Rule un_speed: LN vs folded UN latency / peak memory / norm time share / folding check, and the
norms' per-token ops and energy on the hardware-cost scale."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import torch

from lpbench.jobs import compute, setup
from lpbench.studies.unified_norm.speed import speed_job
from lpbench.tables import write_table

log = setup(snakemake)
p, out = snakemake.params, snakemake.output
torch.set_num_threads(int(p.torch_threads))    # the job holds every core (no neighbour); times on these threads
with compute():
    speed, energy = speed_job(p.cfg, [tuple(r) for r in p.runs], list(snakemake.input.ckpts),
                              snakemake.input.costs, p.seed)
write_table(speed, out.csv, out.md,
            "LN vs folded UN inference on this CPU (1 thread; per-call process CPU time, minimum of interleaved "
            "repeats; peak = activation peak + parameters). Paper: 31 % faster, 18 % less memory (GPU)")
write_table(energy, out.energy, out.energy_md, "Norm ops and energy per token (FP32, Horowitz 45 nm; "
            "sqrt/divide charged as one FP32 multiply, a lower bound)")
log.info("speed:\n%s", speed.to_string())
