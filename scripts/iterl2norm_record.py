"""Rule iterl2norm_record: inputs of every norm of one model on its calibration windows -> a .pt file.

Standalone: python scripts/iterl2norm_record.py <model_dir> <windows.pt> <out.pt> (see lpbench.jobs)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import sys
from pathlib import Path

import torch

from lpbench.archs import get_arch
from lpbench.integrity import load_checked
from lpbench.studies.iterl2norm import DEFAULTS
from lpbench.studies.iterl2norm.models import record_norm_inputs
from lpbench.jobs import compute, mock_snakemake, setup
from lpbench.sources import load_model

if "snakemake" not in globals():
    snakemake = mock_snakemake({"model": str(Path(sys.argv[1]) / "lpbench_model.json"), "windows": sys.argv[2]},
                               {"inputs": sys.argv[3]}, {"record": {}, "seed": 0})
log = setup(snakemake)
rec = {**DEFAULTS["record"], **snakemake.params.record}
model, _tok, meta = load_model(Path(snakemake.input.model).parent)
arch = get_arch(model)
windows = load_checked(snakemake.input.windows)[: rec["windows"]]
limit = getattr(model.config, "max_position_embeddings", None)
if limit and windows.shape[1] > limit:
    windows = windows[:, :limit]
with compute():
    inputs = record_norm_inputs(model, arch, windows, rec["tokens_per_window"], rec["max_vectors"],
                                seed=snakemake.params.seed)
Path(snakemake.output.inputs).parent.mkdir(parents=True, exist_ok=True)
torch.save({"inputs": inputs, "model": meta["model_id"], "norm_kind": arch.norm_kind,
            "windows": int(windows.shape[0]), "seqlen": int(windows.shape[1])}, snakemake.output.inputs)
log.info("%s: recorded norm inputs %s", meta["model_id"], {d: tuple(v.shape) for d, v in inputs.items()})
