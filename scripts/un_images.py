"""Rule un_images: an image-set entry (Fashion-MNIST from Debian) -> .pt with the official splits + JSON."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

from lpbench.images import materialize
from lpbench.jobs import setup, write_json

log = setup(snakemake)
meta = materialize(snakemake.params.entry, Path(snakemake.output.data), Path(snakemake.params.work))
write_json(snakemake.output.meta, meta)
log.info("images %s: %s", snakemake.wildcards.images, meta["sizes"])
