"""Rule method_artifact: a method's offline artifact from the shared calibration statistics.
(Methods without an offline step have no artifact job: see ``method_artifact_input`` in common.smk.)"""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import torch

from lpbench.archs import get_arch
from lpbench.integrity import load_checked, save_checked
from lpbench.jobs import compute, setup
from lpbench.methods import build_method
from lpbench.sources import load_model

log = setup(snakemake)
method = build_method(snakemake.wildcards.method, snakemake.params.entry)
model, _, _ = load_model(Path(snakemake.input.model).parent)
windows = load_checked(snakemake.input.windows)
if "shared_pass" in snakemake.input.keys():     # the statistics pass is shared with other methods (rule shared_pass)
    shared = load_checked(snakemake.input.shared_pass)
    own = method.own_windows(windows)
    if len(own) not in shared["readings"] or not torch.equal(shared["windows"][: len(own)], own):
        raise ValueError(f"{snakemake.input.shared_pass} was not read after this method's {len(own)} calibration "
                         f"windows, or its windows are not these (readings at {sorted(shared['readings'])}); "
                         "rerun it: snakemake --forcerun " + snakemake.input.shared_pass)
    with compute():
        artifact = method.calibrate_from_pass(model, get_arch(model), shared["readings"][len(own)], own)
else:
    with compute():
        artifact = method.calibrate(model, get_arch(model), load_checked(snakemake.input.stats), windows)
save_checked({"method": method.describe(), "artifact": artifact}, snakemake.output[0])
log.info("%s: artifact with %d entries", method.describe(), len(artifact))
