"""Rule download_corpus: one config entry -> calibration.txt / evaluation.txt / corpus.json."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.corpora import materialize
from lpbench.jobs import setup

log = setup(snakemake)
meta = materialize(snakemake.wildcards.corpus, snakemake.params.entry, Path(snakemake.output.meta).parent,
                   Path(snakemake.params.work))
log.info("corpus %s: %s characters", snakemake.wildcards.corpus, meta["chars"])
