"""What every source shares: the canonical directory's file names, the network defaults, the errors,
checksums, and the writer of the canonical form (an HF directory with FP32 safetensors)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

META_FILE = "lpbench_model.json"
STAT_FILE = ".lpbench_stat.json"   # size + mtime of each file as written: the fast path of verification
NET_TIMEOUT = 60.0                 # seconds a network request may go unanswered
NET_RETRIES = 3                    # attempts of each network step
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja")


class DownloadError(RuntimeError):
    pass


class ModelIntegrityError(RuntimeError):
    """A canonical model directory no longer holds what download_model wrote (names file and fix)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str | None) -> None:
    if expected and sha256_file(path) != expected:
        raise DownloadError(f"{path.name}: sha256 mismatch (expected {expected}); the download is "
                            "broken or the package changed upstream")


def save_canonical(model, tok, out: Path) -> None:
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # weights are now plain FP32
    model.config.dtype = "float32"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def copy_hf_dir(src: Path, out: Path, causal: bool) -> None:
    """Load an HF directory and re-save it in the canonical form (FP32 safetensors)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if not (src / "config.json").exists():
        raise DownloadError(f"{src} has no config.json: not a Hugging Face model directory")
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(src, dtype=torch.float32)
    save_canonical(model, AutoTokenizer.from_pretrained(src), out)
