"""Rule download_model: one config entry -> resources/models/<id>/ (canonical FP32 HF directory)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.integrity import explain_model_source
from lpbench.jobs import setup
from lpbench.sources import materialize

log = setup(snakemake)
out = Path(snakemake.output.meta).parent
model_id, entry, work = snakemake.wildcards.model, snakemake.params.entry, Path(snakemake.params.work)
log.info("materializing model %s (source %s) into %s", model_id, entry["source"], out)
if entry["source"] == "local":
    explain_model_source(model_id, entry, work)  # a truncated safetensors / no tokenizer: named with the fix
try:
    materialize(model_id, entry, out, work)
except Exception:
    explain_model_source(model_id, entry, work)  # the hub snapshot / unpacked wheel: which file is damaged
    raise
log.info("done")
