"""Token streams and windows: the common evaluation protocol of the quantization literature.

* Evaluation windows are **non-overlapping** slices of ``seqlen`` tokens of the whole evaluation text,
  tail dropped (GPTQ / QuaRot / SmoothQuant / Tender protocol) — not a strided sliding window.
  Models that need a BOS token at the start of every sequence (Gemma 3) get windows of BOS followed by
  ``seqlen - 1`` text tokens, so every window still has ``seqlen`` positions.
* Calibration windows are ``n`` random slices of the calibration text (GPTQ's sampling: uniform random
  start positions from a seeded generator), from a split that never overlaps the evaluation text.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch


class TokenFileError(RuntimeError):
    """A token file does not match its sidecar, or the sidecar does not match the model / corpus."""


def token_record(path, ids: torch.Tensor) -> dict:
    """What a token file's sidecar records about it: sha256 and size of the file, number of tokens."""
    data = Path(path).read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "n": int(ids.numel())}


def load_tokens(path, sidecar, model_meta: dict | None = None, corpus_json=None) -> tuple[torch.Tensor, dict]:
    """Load a token file after checking it against its sidecar (``<split>.json``, written by the
    tokenize rule) and the sidecar against the model's tokenizer hash and the corpus text's hash.
    Returns (ids, sidecar). Token files are small: they are hashed in full every time."""
    path, sidecar = Path(path), Path(sidecar)
    side = json.loads(sidecar.read_text())
    fix = f"rerun: snakemake --forcerun {path} (rule tokenize)"
    data = path.read_bytes()
    got = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    rec = side["tokens"]
    if got["sha256"] != rec["sha256"] or got["bytes"] != rec["bytes"]:
        raise TokenFileError(f"{path}: {got['bytes']} bytes, sha256 {got['sha256']}, but {sidecar} records "
                             f"{rec['bytes']} bytes, sha256 {rec['sha256']} (changed after tokenization); {fix}")
    if model_meta is not None and side["tokenizer_sha256"] != model_meta.get("tokenizer_sha256"):
        raise TokenFileError(f"{path} was made with tokenizer {side['tokenizer_sha256'][:16]}…, but the model "
                             f"'{model_meta.get('model_id')}' now has tokenizer "
                             f"{str(model_meta.get('tokenizer_sha256'))[:16]}…; {fix}")
    if corpus_json is not None:
        crec = json.loads(Path(corpus_json).read_text()).get("files", {}).get(Path(side["text"]["file"]).name)
        if crec is None or crec["sha256"] != side["text"]["sha256"]:
            raise TokenFileError(f"{path} was made from a text (sha256 {side['text']['sha256'][:16]}…) that "
                                 f"{corpus_json} no longer records; {fix}")
    ids = torch.load(path)
    if int(ids.numel()) != rec["n"]:
        raise TokenFileError(f"{path}: {ids.numel()} tokens, {sidecar} records {rec['n']}; {fix}")
    return ids, side


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """The whole text as one id stream (no special tokens); int32 to halve the cache file."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.int32)


def eval_windows(ids: torch.Tensor, seqlen: int, n_windows: int | None = None,
                 bos_id: int | None = None) -> torch.Tensor:
    """(n, seqlen) int64 windows; the first ``n_windows`` of all non-overlapping ones (None = all). Fewer
    windows than ``n_windows`` in the text is an error, never a silently smaller evaluation."""
    body = seqlen - 1 if bos_id is not None else seqlen
    total = ids.numel() // body
    if total == 0:
        raise ValueError(f"text has {ids.numel()} tokens: too short for one window of {seqlen}")
    if n_windows is not None and total < n_windows:
        raise ValueError(f"text has {ids.numel()} tokens: {total} non-overlapping window(s) of {seqlen}, fewer "
                         f"than the {n_windows} requested (n_windows); set n_windows: null to use all there are")
    n = total if n_windows is None else n_windows
    w = ids[: n * body].view(n, body).long()
    if bos_id is not None:
        w = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), w], dim=1)
    return w


def calibration_windows(ids: torch.Tensor, seqlen: int, n: int, seed: int,
                        bos_id: int | None = None, source=None) -> torch.Tensor:
    """(n, seqlen) int64 windows at seeded uniform random offsets. ``source``: the token file, for messages."""
    body = seqlen - 1 if bos_id is not None else seqlen
    if ids.numel() <= body:
        raise ValueError(f"{f'{source}: ' if source else ''}calibration text has {ids.numel()} tokens: too short "
                         f"for windows of {seqlen} (calibration.seqlen)")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - body, (n,), generator=g)
    w = torch.stack([ids[s: s + body] for s in starts.tolist()]).long()
    if bos_id is not None:
        w = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), w], dim=1)
    return w
