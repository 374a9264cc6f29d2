"""Rule calibrate: calibration windows -> shared per-layer activation statistics."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.archs import get_arch
from lpbench.calibration import collect_stats
from lpbench.data import calibration_windows, load_tokens
from lpbench.integrity import save_checked
from lpbench.jobs import compute, setup
from lpbench.limits import check_job_seqlen
from lpbench.sources import load_model, special_tokens

log = setup(snakemake)
check_job_seqlen(Path(snakemake.input.model).parent, snakemake.params.settings["seqlen"], "calibration")
model, _, meta = load_model(Path(snakemake.input.model).parent)
arch = get_arch(model)
s = snakemake.params.settings
bos = special_tokens(Path(snakemake.input.model).parent, meta)["bos"] if meta.get("bos_per_window") else None
ids, _ = load_tokens(snakemake.input.tokens, snakemake.input.tokens_meta, meta)
windows = calibration_windows(ids, s["seqlen"], s["n_windows"],
                              snakemake.params.seed, bos_id=bos, source=snakemake.input.tokens)
with compute():
    stats = collect_stats(model, arch, windows)
stats["meta"].update(model=meta["model_id"], seed=snakemake.params.seed)
save_checked(stats, snakemake.output.stats)        # + <file>.sha256, verified by every reader
save_checked(windows, snakemake.output.windows)
log.info("calibrated %s on %d windows x %d tokens", meta["model_id"], *windows.shape)
