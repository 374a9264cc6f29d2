"""Rule rrs_outliers: outlier statistics of linear inputs (original / RS / rotated / RRS) + the figure."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import pandas as pd
import torch

from lpbench.archs import get_arch
from lpbench.data import eval_windows
from lpbench.jobs import compute, setup
from lpbench.limits import check_job_seqlen
from lpbench.plots import save
from lpbench.studies.rrs.analysis import capture_inputs, layer_table, outlier_figure, pick_figure_input
from lpbench.sources import load_model, special_tokens
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params
check_job_seqlen(Path(snakemake.input.model).parent, p.seqlen, "evaluation")
model, _, meta = load_model(Path(snakemake.input.model).parent)
arch = get_arch(model)
bos = special_tokens(Path(snakemake.input.model).parent, meta)["bos"] if meta.get("bos_per_window") else None
window = eval_windows(torch.load(snakemake.input.tokens), p.seqlen, 1, bos_id=bos)[0]
with compute():
    captured = capture_inputs(model, arch, window)
df = pd.DataFrame(layer_table(model, arch, captured, p.seed, p.group_size))
df.insert(0, "model", snakemake.wildcards.model if hasattr(snakemake.wildcards, "model") else p.model)
write_table(df, snakemake.output.csv, snakemake.output.md,
            f"Outlier statistics of linear inputs, {p.model}, one {p.seqlen}-token evaluation window: "
            "max/median channel ratio, max/median token ratio (spikes), kurtosis, per-token INT4 error")
layer, role = pick_figure_input(df)
save(outlier_figure(model, arch, captured, layer, role, p.seed, p.group_size, p.model),
     snakemake.output.png, snakemake.output.pdf)
log.info("outlier figure: layer %d %s input", layer, role)
