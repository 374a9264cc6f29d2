"""Loading a canonical model directory (after verifying it) and the special-token ids a job needs."""
from __future__ import annotations

from pathlib import Path

import torch

from lpbench.sources.integrity import verify_model_dir

SPECIAL_TOKENS = ("bos", "eos", "cls", "sep", "pad")


def token_ids_of(tok) -> dict[str, int | None]:
    """The special-token ids a job needs (BOS per window, CLS/SEP of an encoder), from a tokenizer."""
    return {k: getattr(tok, f"{k}_token_id", None) for k in SPECIAL_TOKENS}


def special_tokens(model_dir: str | Path, meta: dict) -> dict[str, int | None]:
    """Special-token ids of a canonical model directory: recorded in ``lpbench_model.json`` at download
    (loading Gemma-3's 262k-entry tokenizer costs ~3 CPU-s per job), or read from the tokenizer for a
    directory written before they were recorded."""
    if "special_tokens" in meta:
        return meta["special_tokens"]
    from transformers import AutoTokenizer
    return token_ids_of(AutoTokenizer.from_pretrained(model_dir))


def encoder_ends(sp: dict) -> tuple[int | None, int | None]:
    """(first, last) token of an encoder window: CLS/SEP, or BOS/EOS where the tokenizer has no CLS/SEP."""
    return (sp["cls"] if sp["cls"] is not None else sp["bos"], sp["sep"] if sp["sep"] is not None else sp["eos"])


def load_model(model_dir: str | Path, tokenizer: bool = False):
    """Load a canonical model directory: (model in FP32 eval mode, tokenizer or None, metadata dict),
    after checking its files against ``lpbench_model.json`` (:func:`verify_model_dir`). The tokenizer is
    loaded only if asked for: jobs read pre-tokenized ids, and :func:`special_tokens` has the ids they need."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    meta = verify_model_dir(model_dir)
    cls = AutoModelForCausalLM if meta.get("causal", True) else AutoModel
    model = cls.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir) if tokenizer else None
    return model, tok, meta
