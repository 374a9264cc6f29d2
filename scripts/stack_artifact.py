"""Rule stack_artifact: a stack's artifact — each method's own artifact file where it is shared with the
stand-alone method, recalibrated on the model with the earlier methods applied where it is not
(lpbench.methods.stack)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.archs import get_arch
from lpbench.integrity import load_checked, save_checked
from lpbench.jobs import compute, setup
from lpbench.methods import build_method
from lpbench.methods.gptq import load_gptq
from lpbench.sources import load_model

log = setup(snakemake)
method = build_method(snakemake.wildcards.method, snakemake.params.entry)
inp = snakemake.input
shared = {Path(p).name[: -len(".pt")]: load_checked(p)["artifact"]
          for p in (inp.shared if "shared" in inp.keys() else [])}
recal = method.facts()["recalibrate"]
model = arch = stats = windows = gptq = None
if recal:
    model, _, _ = load_model(Path(inp.model).parent)
    arch = get_arch(model)
    stats, windows = load_checked(inp.stats), load_checked(inp.windows)
    gptq = load_gptq(inp.gptq) if "gptq" in inp.keys() else None
with compute():
    artifact = method.calibrate(model, arch, stats, windows, shared=shared, gptq_weights=gptq)
save_checked({"method": method.describe(), "artifact": artifact, "shared": sorted(shared), "recalibrated": recal},
             snakemake.output[0])
log.info("%s: shared %s, recalibrated %s", method.name, sorted(shared), recal)
