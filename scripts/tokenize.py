"""Rule tokenize: one corpus split -> token ids for one model's tokenizer, plus a sidecar JSON with the
hashes of what they were made from (text, tokenizer) and of the tokens themselves."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import torch
from transformers import AutoTokenizer

from lpbench.corpora import verify_text
from lpbench.data import tokenize, token_record
from lpbench.jobs import setup, write_json
from lpbench.sources import verify_model_dir

log = setup(snakemake)
model_dir = Path(snakemake.input.model).parent
meta = verify_model_dir(model_dir)                      # tokenizer files as download_model wrote them
text_rec = verify_text(snakemake.input.text, snakemake.input.corpus)  # text as download_corpus wrote it
tok = AutoTokenizer.from_pretrained(model_dir)
ids = tokenize(tok, Path(snakemake.input.text).read_text())
torch.save(ids, snakemake.output.tokens)
write_json(snakemake.output.meta, {"model": meta["model_id"], "tokenizer_sha256": meta["tokenizer_sha256"],
                                   "text": {"file": str(snakemake.input.text), **text_rec},
                                   "tokens": token_record(snakemake.output.tokens, ids)})
log.info("%d tokens", ids.numel())
