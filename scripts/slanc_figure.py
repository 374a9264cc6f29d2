"""Rule slanc_figure: per-norm Σx² of every model against the FP16 limits."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd
import torch

from lpbench.jobs import setup
from lpbench.plots import save
from lpbench.studies.slanc.tables import sumsq_figure, sumsq_long

setup(snakemake)
rows, lim = [], None
for path in snakemake.input.measures:
    res = torch.load(path)
    rows += sumsq_long(res, res["meta"]["model"])
    lim = (res["max"], res["tiny"])
save(sumsq_figure(pd.DataFrame(rows), *lim), snakemake.output.png, snakemake.output.pdf)
