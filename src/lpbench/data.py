"""Token streams and windows: the common evaluation protocol of the quantization literature.

* Evaluation windows are **non-overlapping** slices of ``seqlen`` tokens of the whole evaluation text,
  tail dropped (GPTQ / QuaRot / SmoothQuant / Tender protocol) — not a strided sliding window.
  Models that need a BOS token at the start of every sequence (Gemma 3) get windows of BOS followed by
  ``seqlen - 1`` text tokens, so every window still has ``seqlen`` positions.
* Calibration windows are ``n`` random slices of the calibration text (GPTQ's sampling: uniform random
  start positions from a seeded generator), from a split that never overlaps the evaluation text.
"""
from __future__ import annotations

import torch


def tokenize(tokenizer, text: str) -> torch.Tensor:
    """The whole text as one id stream (no special tokens); int32 to halve the cache file."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.int32)


def eval_windows(ids: torch.Tensor, seqlen: int, n_windows: int | None = None,
                 bos_id: int | None = None) -> torch.Tensor:
    """(n, seqlen) int64 windows; the first ``n_windows`` of all non-overlapping ones (None = all)."""
    body = seqlen - 1 if bos_id is not None else seqlen
    total = ids.numel() // body
    if total == 0:
        raise ValueError(f"text has {ids.numel()} tokens: too short for one window of {seqlen}")
    n = total if n_windows is None else min(n_windows, total)
    w = ids[: n * body].view(n, body).long()
    if bos_id is not None:
        w = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), w], dim=1)
    return w


def calibration_windows(ids: torch.Tensor, seqlen: int, n: int, seed: int,
                        bos_id: int | None = None) -> torch.Tensor:
    """(n, seqlen) int64 windows at seeded uniform random offsets."""
    body = seqlen - 1 if bos_id is not None else seqlen
    if ids.numel() <= body:
        raise ValueError(f"calibration text has {ids.numel()} tokens: too short for windows of {seqlen}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, ids.numel() - body, (n,), generator=g)
    w = torch.stack([ids[s: s + body] for s in starts.tolist()]).long()
    if bos_id is not None:
        w = torch.cat([torch.full((n, 1), bos_id, dtype=torch.long), w], dim=1)
    return w
