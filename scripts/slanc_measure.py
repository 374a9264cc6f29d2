"""Rule slanc_measure: norm inputs of the FP32 model on the evaluation windows through every variant's
emulated low-precision norm (lpbench.studies.slanc) -> one .pt file per (model, corpus)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import time
from pathlib import Path

import torch

from lpbench.archs import get_arch
from lpbench.data import eval_windows
from lpbench.integrity import load_checked
from lpbench.jobs import compute, setup
from lpbench.limits import check_job_seqlen
from lpbench.methods import build_method
from lpbench.studies.slanc.measure import measure
from lpbench.sources import encoder_ends, load_model, special_tokens

log = setup(snakemake)
t0 = time.perf_counter()
p = snakemake.params
check_job_seqlen(Path(snakemake.input.model).parent, p.settings["seqlen"], "evaluation")
model, _, meta = load_model(Path(snakemake.input.model).parent)
sp = special_tokens(Path(snakemake.input.model).parent, meta)
arch = get_arch(model)
ids = torch.load(snakemake.input.tokens)
seqlen = p.settings["seqlen"]
if meta.get("causal", True):
    bos = sp["bos"] if meta.get("bos_per_window") else None
    windows = eval_windows(ids, seqlen, p.n_windows, bos_id=bos)
else:
    cls, sep = encoder_ends(sp)
    body = eval_windows(ids, seqlen - 2, p.n_windows)
    windows = torch.cat([torch.full((len(body), 1), cls), body, torch.full((len(body), 1), sep)], 1)
scales = load_checked(snakemake.input.artifact)["artifact"]["scales"]
slanc = build_method(p.method, p.entry).params  # the entry over the method's defaults
with compute():
    out = measure(model, arch, windows, scales, fmt=slanc["fmt"], order=slanc["order"], stress_k=p.stress_k,
                  target_sumsq=slanc["target_sumsq"], apply_as=slanc["apply_as"], progress=False)
out["meta"] = {"model": snakemake.wildcards.model, "corpus": snakemake.wildcards.corpus,
               "family": arch.family, "placement": arch.placement, "norm_kind": arch.norm_kind,
               "windows": int(windows.shape[0]), "seqlen": int(windows.shape[1]),
               "label": meta.get("label", snakemake.wildcards.model), "causal": meta.get("causal", True),
               "wall_time_s": round(time.perf_counter() - t0, 1)}
Path(snakemake.output[0]).parent.mkdir(parents=True, exist_ok=True)
torch.save(out, snakemake.output[0])
log.info("slanc measure %s: %d windows in %.1fs (stress check %s)", snakemake.wildcards.model,
         windows.shape[0], time.perf_counter() - t0, out["stress_check_rel"])
