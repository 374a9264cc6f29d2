"""Rule method_artifact: a method's offline artifact from the shared calibration statistics.
(Methods without an offline step have no artifact job: see ``method_artifact_input`` in common.smk.)"""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.archs import get_arch
from lpbench.integrity import load_checked, save_checked
from lpbench.jobs import compute, setup
from lpbench.methods import build_method
from lpbench.sources import load_model

log = setup(snakemake)
method = build_method(snakemake.wildcards.method, snakemake.params.entry)
model, _, _ = load_model(Path(snakemake.input.model).parent)
with compute():
    artifact = method.calibrate(model, get_arch(model), load_checked(snakemake.input.stats),
                                load_checked(snakemake.input.windows))
save_checked({"method": method.describe(), "artifact": artifact}, snakemake.output[0])
log.info("%s: artifact with %d entries", method.describe(), len(artifact))
