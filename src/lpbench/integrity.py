"""Content checks of the files the pipeline writes and reads, beyond the model and corpus records of
:mod:`lpbench.sources` and :mod:`lpbench.corpora`:

* **Offline artifacts** (calibration statistics and windows under ``resources/calib/``, method artifacts
  under ``resources/artifacts/``, GPTQ weights, larger calibration window sets): :func:`save_checked`
  writes the file and beside it ``<file>.sha256`` (``sha256sum`` format: ``sha256sum -c`` checks it too);
  :func:`load_checked` verifies the file against it before ``torch.load``. A truncated, changed or
  unreadable file is an :class:`ArtifactError` naming the file and the command that rebuilds it
  (``snakemake --forcerun <file>``), never a bare ``OSError`` from deep inside torch.
* **Model source directories** (a ``local`` entry's directory, a hub snapshot, an HF directory inside a
  wheel): :func:`check_model_source` reads every safetensors header and checks the file holds the bytes
  the header promises, checks the shards an index names, and that tokenizer files are there, so a
  truncated ``model.safetensors`` or a missing tokenizer is named with its file and the fix instead of
  ``SafetensorError: incomplete metadata`` or "Couldn't instantiate the backend tokenizer".
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

SUFFIX = ".sha256"


class ArtifactError(RuntimeError):
    """An offline artifact is missing its hash, differs from it, or cannot be read (names file and fix)."""


class ModelSourceError(RuntimeError):
    """A model's source directory is incomplete or damaged (names the file and the fix)."""


# ---- offline artifacts ---------------------------------------------------------------------------------
def sidecar(path) -> Path:
    """Where the hash of ``path`` is recorded: ``<path>.sha256``."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def rebuild_command(path) -> str:
    return f"snakemake --forcerun {path}"


def save_checked(obj, path) -> str:
    """``torch.save(obj, path)`` and record its sha256 in ``<path>.sha256``; returns the hash. The file is
    written in a temporary directory under its own name (torch names the records inside the archive after
    the file: the bytes are those of a direct save) and moved, so a reader never sees a half-written file."""
    import shutil

    import torch

    path = Path(path)
    tmp_dir = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    try:
        tmp = tmp_dir / path.name
        torch.save(obj, tmp)
        digest = _sha256(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    side_tmp = sidecar(path).with_name(f"{sidecar(path).name}.{os.getpid()}.tmp")
    side_tmp.write_text(f"{digest}  {path.name}\n")
    os.replace(side_tmp, sidecar(path))
    return digest


def recorded_sha256(path) -> str:
    """The hash :func:`save_checked` recorded for ``path`` (an :class:`ArtifactError` if there is none)."""
    path, side = Path(path), sidecar(path)
    fix = f"rebuild it: {rebuild_command(path)}"
    try:
        line = side.read_text().split()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: no recorded content hash ({side} is missing; written by an older lpbench, "
                            f"or deleted); {fix}") from None
    if len(line) != 2 or len(line[0]) != 64 or line[1] != path.name:
        raise ArtifactError(f"{side}: not a sha256 record of {path.name}; {fix}")
    return line[0]


def verify_checked(path) -> str:
    """Check ``path`` against its recorded hash; returns the hash."""
    path = Path(path)
    expected = recorded_sha256(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: missing (its hash is recorded in {sidecar(path)}); "
                            f"rebuild it: {rebuild_command(path)}")
    got = _sha256(path)
    if got != expected:
        raise ArtifactError(f"{path}: {path.stat().st_size} bytes with sha256 {got}, but {sidecar(path)} records "
                            f"{expected} (truncated or changed after it was written); "
                            f"rebuild it: {rebuild_command(path)}")
    return got


def load_checked(path, with_hash: bool = False, **kwargs):
    """``torch.load(path)`` after :func:`verify_checked`; a file torch cannot read is named with the fix.
    ``with_hash``: return ``(obj, sha256)``."""
    import torch

    digest = verify_checked(path)
    try:
        obj = torch.load(path, **kwargs)
    except Exception as e:                          # noqa: BLE001 — whatever torch raises, name the file
        raise ArtifactError(f"{path}: cannot be read by torch.load ({type(e).__name__}: {e}); "
                            f"rebuild it: {rebuild_command(path)}") from e
    return (obj, digest) if with_hash else obj


# ---- model source directories --------------------------------------------------------------------------
#: files that carry a tokenizer's vocabulary (any one is enough for transformers to build one)
TOKENIZER_VOCAB = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer.tiktoken")


def check_safetensors(path, fix: str) -> None:
    """The header of a safetensors file parses and the file holds every byte the header's tensors span."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ModelSourceError(f"{path}: {size} bytes, too short for a safetensors file (truncated?); {fix}")
        (n,) = struct.unpack("<Q", head)
        if 8 + n > size:
            raise ModelSourceError(f"{path}: truncated safetensors file: its header alone needs {8 + n} bytes, the "
                                   f"file has {size}; {fix}")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise ModelSourceError(f"{path}: unreadable safetensors header ({e}); {fix}") from None
    end = max((int(t["data_offsets"][1]) for k, t in header.items()
               if k != "__metadata__" and isinstance(t, dict) and "data_offsets" in t), default=0)
    if 8 + n + end != size:
        raise ModelSourceError(f"{path}: truncated or damaged safetensors file: its header describes "
                               f"{8 + n + end} bytes, the file has {size}; {fix}")


def check_model_source(directory, what: str, fix: str | None = None) -> None:
    """A Hugging Face model directory a model is materialised from: config.json, complete safetensors
    (and the shards an index names) and tokenizer files. A directory holding only a GGUF file passes
    (its tokenizer is inside the GGUF). ``what`` names the source in messages (e.g. the config key)."""
    d = Path(directory)
    fix = fix or f"replace the damaged or missing file(s) in {d} ({what}) with complete ones, then run again"
    if not d.is_dir():
        return                                      # the source reports a missing directory itself
    names = {p.name for p in d.iterdir() if p.is_file()}
    if "config.json" not in names:
        return                                      # a GGUF directory, or not a model: the source says which
    for index in sorted(n for n in names if n.endswith(".safetensors.index.json")):
        try:
            shards = set(json.loads((d / index).read_text())["weight_map"].values())
        except (ValueError, KeyError, TypeError) as e:
            raise ModelSourceError(f"{d / index}: unreadable shard index ({type(e).__name__}: {e}); {fix}") from None
        missing = sorted(shards - names)
        if missing:
            raise ModelSourceError(f"{d / index} names shard(s) {missing} that are not in {d}; {fix}")
    for name in sorted(n for n in names if n.endswith(".safetensors")):
        check_safetensors(d / name, fix)
    if not any(n in TOKENIZER_VOCAB or n.endswith((".model", ".tiktoken")) for n in names):
        raise ModelSourceError(f"{d} ({what}) has no tokenizer files: none of {list(TOKENIZER_VOCAB)}, no "
                               f"*.model or *.tiktoken; it holds {sorted(names)}. Copy the model's tokenizer "
                               f"files into {d}, then run again")


def model_source_dir(entry: dict, work) -> Path | None:
    """The HF directory download_model converts a model entry from (None: a random model, a GGUF)."""
    source = entry.get("source")
    if source == "local":
        return Path(entry["path"])
    if source == "hf":
        return Path(work) / "hf"
    if source == "pypi" and "hf_dir" in entry:
        return Path(work) / "unpacked" / entry["hf_dir"]
    return None


def explain_model_source(model_id: str, entry: dict, work) -> None:
    """Raise a :class:`ModelSourceError` naming the file if the entry's source directory is damaged.
    Called before materialising a ``local`` entry, and after any other materialisation failed (the hub
    snapshot / unpacked wheel is on disk then), so the error says which file and what to do."""
    d = model_source_dir(entry, work)
    if d is None:
        return
    what = f"models.{model_id}" + (f".path = {entry['path']}" if entry.get("source") == "local" else
                                   f", {entry.get('repo_id') or entry.get('packages')}")
    fix = None
    if entry.get("source") != "local":
        fix = (f"the downloaded copy in {d} is incomplete: rerun with `snakemake --forcerun "
               f"resources/models/{model_id}/lpbench_model.json`; if it recurs, the published model lacks it")
    check_model_source(d, what, fix)
