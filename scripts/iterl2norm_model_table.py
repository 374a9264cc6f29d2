"""Rule iterl2norm_model_table: result JSONs of the iterl2norm methods (and their FP32 references) ->
results/tables/iterl2norm_model.{csv,md} (ITER-4: perplexity vs k; MiniLM output error)."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.studies.iterl2norm.models import model_table
from lpbench.jobs import setup
from lpbench.tables import load_results, write_table

log = setup(snakemake)
df = model_table(load_results(snakemake.input))
write_table(df, snakemake.output.csv, snakemake.output.md,
            "Every norm replaced by IterL2Norm / FISR (k iterations): perplexity vs the exact norm "
            "(causal LMs) and output error vs FP32 (encoder)")
log.info("%d rows", len(df))
