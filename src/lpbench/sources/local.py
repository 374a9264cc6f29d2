"""The sources that need no network: ``local`` (a directory in HF form or holding a GGUF file) and
``random`` (a deterministic tiny model built from a transformers config with a fixed seed, and a byte-level
tokenizer built in code: for tests and CI)."""
from __future__ import annotations

from pathlib import Path

import torch

from lpbench.sources.common import DownloadError, copy_hf_dir, save_canonical
from lpbench.sources.gguf import gguf_to_hf


def from_local(path: Path, entry: dict, out: Path) -> None:
    if not path.is_dir():
        raise DownloadError(f"local model path {path} does not exist or is not a directory")
    ggufs = sorted(path.glob("*.gguf"))
    if (path / "config.json").exists():
        copy_hf_dir(path, out, entry.get("causal", True))
    elif ggufs:
        gguf_to_hf(path, ggufs[0].name, out, entry.get("causal", True))
    else:
        raise DownloadError(f"{path} holds neither an HF model (config.json) nor a .gguf file")


def byte_tokenizer():
    """A byte-level tokenizer built in code: 256 byte tokens + <bos>, <eos>, <pad>. No download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<0x{i:02X}>": i for i in range(256)}
    vocab.update({"<bos>": 256, "<eos>": 257, "<pad>": 258})
    bpe = models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token=None)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tk.decoder = decoders.ByteFallback()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


def build_random(entry: dict, out: Path) -> dict:
    """Deterministic tiny model: ``entry['config']`` holds ``model_type`` and config fields."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cfg_fields = dict(entry["config"])
    model_type = cfg_fields.pop("model_type")
    cfg_fields.setdefault("vocab_size", 259)
    cfg = AutoConfig.for_model(model_type, **cfg_fields)
    torch.manual_seed(int(entry.get("seed", 0)))
    cls = AutoModelForCausalLM if entry.get("causal", True) else AutoModel
    model = cls.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # non-trivial norm weights, so norm handling is really exercised
        g = torch.Generator().manual_seed(int(entry.get("seed", 0)) + 1)
        for name, p in model.named_parameters():
            if "norm" in name.lower() and p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    save_canonical(model, byte_tokenizer(), out)
    return {"weights_origin": "random", "seed": int(entry.get("seed", 0))}
