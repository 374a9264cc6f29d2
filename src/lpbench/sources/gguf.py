"""GGUF files (optionally assembled from parts) dequantized to FP32 by transformers + ``gguf``."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import torch

from lpbench.sources.common import save_canonical

GGUF_CAVEAT = ("weights were published as a 4-bit GGUF and are dequantized to FP32 here: the 'FP32' "
               "weights are 4-bit values, so weight-only 4-bit requantization looks unrealistically easy; "
               "activations are those of the genuine model")


@contextmanager
def gguf_read_once():
    """Within the block, ``gguf.GGUFReader(path)`` returns one reader per path instead of a new one.

    transformers opens a GGUF file three times to build a model from it (tokenizer, config, weights),
    and each ``GGUFReader`` parses every metadata field in Python: ~20 CPU-s per parse for Gemma-3's
    262k-token vocabulary, two thirds of its conversion. A reader is only read from after construction
    (fields and memory-mapped tensor data), so sharing it gives the same model and tokenizer files."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def shared(path, *args, **kwargs):
        key = (os.path.realpath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def gguf_to_hf(gguf_dir: Path, gguf_name: str, out: Path, causal: bool) -> None:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    cls = AutoModelForCausalLM if causal else AutoModel
    with gguf_read_once():
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        loaded = cls.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as "quantized" and refuses to save it: move the
    # dequantized FP32 weights into a plain model built from the same config.
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = cls.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    save_canonical(model, tok, out)
