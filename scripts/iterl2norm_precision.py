"""Rule iterl2norm_precision: error vs iterations (synthetic + recorded real norm inputs) -> the error
data, the convergence table (ITER-1) and the 9-case win table (ITER-2)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import time
from pathlib import Path

import torch

from lpbench.studies.iterl2norm import settings
from lpbench.studies.iterl2norm.precision import convergence_table, init_table, precision_study, wins_by_init
from lpbench.jobs import compute, setup
from lpbench.tables import write_table

log = setup(snakemake)
t0 = time.perf_counter()
cfg = settings(snakemake.params.cfg)
real = {}
for path in snakemake.input.real:
    rec = torch.load(path)
    real[rec["model"]] = rec["inputs"]
with compute():   # the normalization evaluated in every format and iteration count: the work ITER-1/2 need
    errors = precision_study(cfg, real, progress=lambda f, k, d: log.info("%s %s d=%d", f, k, d))
out = snakemake.output
Path(out.errors).parent.mkdir(parents=True, exist_ok=True)
errors.to_csv(out.errors, index=False)
conv = convergence_table(errors, cfg["max_iters"])
write_table(conv, out.conv, out.conv_md,
            "IterL2Norm / FISR: iterations to the format's precision (mean error <= E_dp + E_round)")
write_table(init_table(conv, cfg["variants"]), out.init, out.init_md,
            "IterL2Norm (lambda = 1/2) from three declared starts: pow2 2^-ceil(e/2), centred pow2 x 2^-1/4, "
            "magic (FISR's bit trick): iterations to the format's precision and errors at 5 iterations")
wins = wins_by_init(errors, cfg["variants"], cfg["win_iters"], cfg["opt_dims"])
write_table(wins, out.wins, out.wins_md,
            f"IterL2Norm vs FISR at {cfg['win_iters']} iterations on the OPT embedding lengths, per start "
            "(winner per d: lower mean error; ratio = IterL2Norm / FISR mean error)")
log.info("precision study: %d rows in %.1f s", len(errors), time.perf_counter() - t0)
