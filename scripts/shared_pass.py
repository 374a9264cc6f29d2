"""Rule shared_pass: one statistics pass over the calibration windows, read after each member's window count
(lpbench.methods: Method.pass_key); the members' method_artifact jobs finish their artifacts from it."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.archs import get_arch
from lpbench.integrity import load_checked, save_checked
from lpbench.jobs import compute, setup
from lpbench.methods import build_method
from lpbench.sources import load_model

log = setup(snakemake)
method = build_method(snakemake.wildcards.key, snakemake.params.entry)
model, _, _ = load_model(Path(snakemake.input.model).parent)
windows = load_checked(snakemake.input.windows)[: max(snakemake.params.at)]
with compute():
    readings = method.collect_pass(model, get_arch(model), windows, list(snakemake.params.at))
save_checked({"pass": snakemake.wildcards.key, "windows": windows, "readings": readings}, snakemake.output[0])
log.info("%s: pass over %d windows read at %s", snakemake.wildcards.key, len(windows), sorted(readings))
