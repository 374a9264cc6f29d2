"""Rule download_model: one config entry -> resources/models/<id>/ (canonical FP32 HF directory)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.jobs import setup
from lpbench.sources import materialize

log = setup(snakemake)
out = Path(snakemake.output.meta).parent
log.info("materializing model %s (source %s) into %s", snakemake.wildcards.model,
         snakemake.params.entry["source"], out)
materialize(snakemake.wildcards.model, snakemake.params.entry, out, Path(snakemake.params.work))
log.info("done")
