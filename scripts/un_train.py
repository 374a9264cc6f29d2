"""Rule un_train: one (task, norm, seed) training run -> checkpoint, per-step log, result JSON."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.jobs import compute, setup
from lpbench.studies.unified_norm.train import run_job

log = setup(snakemake)
wc, p = snakemake.wildcards, snakemake.params
with compute():
    res = run_job(wc.task, p.task, wc.norm, p.norm, p.role, p.seed, dict(snakemake.input.items()),
                  dict(snakemake.output.items()), int(snakemake.threads), p.device)
m = res["metrics"]
log.info("%s/%s/seed%s: %s = %.4g, collapsed=%s %s, %d steps, %.1f s training", wc.task, wc.norm, wc.seed,
         m["metric"], m["value"], m["collapsed"], m["collapse_reason"], m["steps_run"], m["train_seconds"])
