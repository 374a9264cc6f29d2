"""Rule aggregate: result JSONs -> results/tables/{perplexity,encoder}.{csv,md}."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.jobs import setup
from lpbench.tables import encoder_table, load_results, perplexity_table, write_table

log = setup(snakemake)
results = load_results(snakemake.input)
out = snakemake.output
write_table(perplexity_table(results), out.ppl, out.ppl_md, "Perplexity (non-overlapping windows)")
write_table(encoder_table(results), out.enc, out.enc_md, "Encoder output error vs FP32")
log.info("aggregated %d results", len(results))
