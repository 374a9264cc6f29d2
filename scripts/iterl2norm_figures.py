"""Rule iterl2norm_figures: error vs iterations (faceted by d) and the latency model vs d."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import pandas as pd

from lpbench.studies.iterl2norm.figures import error_figure, init_figure, latency_figure, real_error_figure
from lpbench.jobs import setup
from lpbench.plots import save

setup(snakemake)
errors, conv = pd.read_csv(snakemake.input.errors), pd.read_csv(snakemake.input.conv)
out = snakemake.output
save(error_figure(errors, conv), out.err_png, out.err_pdf)
save(real_error_figure(errors, conv), out.real_png, out.real_pdf)
save(latency_figure(pd.read_csv(snakemake.input.curve), pd.read_csv(snakemake.input.lat)),
     out.lat_png, out.lat_pdf)
save(init_figure(pd.read_csv(snakemake.input.init)), out.init_png, out.init_pdf)
