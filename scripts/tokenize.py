"""Rule tokenize: one corpus split -> token ids for one model's tokenizer."""
from pathlib import Path

import torch
from transformers import AutoTokenizer

from lpbench.data import tokenize
from lpbench.jobs import setup

log = setup(snakemake)
tok = AutoTokenizer.from_pretrained(Path(snakemake.input.model).parent)
ids = tokenize(tok, Path(snakemake.input.text).read_text())
torch.save(ids, snakemake.output[0])
log.info("%d tokens", ids.numel())
