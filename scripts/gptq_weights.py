"""Rule gptq_weights: sequential GPTQ of one transformed model (lpbench.gptq), shared by the methods using it."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import torch

from lpbench.archs import get_arch
from lpbench.integrity import load_checked, save_checked
from lpbench.jobs import compute, setup
from lpbench.methods import build_method
from lpbench.methods.gptq import compute_gptq
from lpbench.sources import load_model

log = setup(snakemake)
method = build_method(snakemake.wildcards.key, snakemake.params.entry)
model, _, _ = load_model(Path(snakemake.input.model).parent)
with torch.inference_mode(), compute():
    out = compute_gptq(method, model, get_arch(model), load_checked(snakemake.input.stats),
                       load_checked(snakemake.input.windows), log=log)
save_checked({"key": snakemake.wildcards.key, "method": method.describe(), **out}, snakemake.output[0])
log.info("GPTQ %s: %d linears in %.1f s", snakemake.wildcards.key, len(out["gptq"]), out["time_s"])
