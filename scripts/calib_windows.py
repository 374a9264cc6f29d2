"""Rule calib_windows: n seeded calibration windows (the calibrate rule's sampler, more of them)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer

from lpbench.data import calibration_windows
from lpbench.integrity import save_checked
from lpbench.jobs import setup
from lpbench.limits import check_job_seqlen

log = setup(snakemake)
check_job_seqlen(Path(snakemake.input.model).parent, snakemake.params.settings["seqlen"], "calibration")
meta = json.loads(Path(snakemake.input.model).read_text())
bos = (AutoTokenizer.from_pretrained(Path(snakemake.input.model).parent).bos_token_id
       if meta.get("bos_per_window") else None)
n = int(snakemake.wildcards.n)
windows = calibration_windows(torch.load(snakemake.input.tokens), snakemake.params.settings["seqlen"], n,
                              snakemake.params.seed, bos_id=bos, source=snakemake.input.tokens)
save_checked(windows, snakemake.output[0])
log.info("%d calibration windows x %d tokens", *windows.shape)
