"""Model level: the inputs of every norm of a real model (for the precision study) and the ITER-4 table of the
evaluated ``iterl2norm`` methods."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, activations_pass, get_submodule


@torch.inference_mode()
def record_norm_inputs(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, tokens_per_window: int = 32,
                       max_vectors: int = 512, seed: int = 0) -> dict[int, torch.Tensor]:
    """Inputs of every norm of ``model`` on ``windows`` (forward pre-hooks), ``tokens_per_window``
    seeded random positions per window and norm, grouped by vector length; LayerNorm inputs are
    centered in float64 (y = x − mean: the vector the L2 normalization sees). At most ``max_vectors``
    per length (a seeded subsample)."""
    g = torch.Generator().manual_seed(seed)
    got: dict[int, list[torch.Tensor]] = {}
    center = arch.norm_kind == "layernorm"

    def hook(_mod, args):
        x = args[0].detach().double()    # (batch, tokens, d), or (batch, heads, tokens, head_dim) for q/k norms
        pos = torch.randperm(x.shape[-2], generator=g)[:tokens_per_window]
        v = x[..., pos, :].reshape(-1, x.shape[-1])
        if center:
            v = v - v.mean(-1, keepdim=True)
        got.setdefault(v.shape[-1], []).append(v)

    handles = [get_submodule(model, n).register_forward_pre_hook(hook) for n in arch.norm_names(model)]
    try:
        for w in windows:
            activations_pass(model, arch, w.unsqueeze(0))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for d, parts in got.items():
        v = torch.cat(parts)
        v = v[v.ne(0).any(-1)]
        if len(v) > max_vectors:
            v = v[torch.randperm(len(v), generator=g)[:max_vectors]]
        out[d] = v
    return out


def model_table(results: list[dict]) -> pd.DataFrame:
    """One row per (model, corpus, iterl2norm method): the method's parameters, its perplexity beside the
    FP32 reference's and the relative change (causal LMs), or the output error vs FP32 (encoders)."""
    ref = {(r["model"]["id"], r["corpus"]["id"]): r["metrics"] for r in results
           if r["method"]["kind"] == "fp32"}
    rows = []
    for r in results:
        if r["method"]["kind"] != "iterl2norm":
            continue
        m, p = r["metrics"], r["method"]["params"]
        base = ref.get((r["model"]["id"], r["corpus"]["id"]), {})
        row = {"model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
               "algorithm": p["algorithm"], "fmt": p["fmt"], "iters": p["iters"], "lam": p["lam"],
               "init": p["init"], "metric": m.get("kind")}
        if m.get("kind") == "perplexity":
            ppl, ppl0 = m.get("perplexity"), base.get("perplexity")
            row.update(perplexity=ppl, perplexity_fp32=ppl0,
                       rel_change_vs_fp32=(ppl / ppl0 - 1) if ppl is not None and ppl0 else math.nan)
        else:
            row.update(relative_error=m.get("relative_error"), cosine=m.get("cosine"))
        row["error"] = m.get("error") or ""
        row["caveat"] = r["model"].get("caveat", "")
        rows.append(row)
    cols = ["model", "corpus", "method", "algorithm", "fmt", "iters", "lam", "init", "metric", "perplexity",
            "perplexity_fp32", "rel_change_vs_fp32", "relative_error", "cosine", "error", "caveat"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df:
            df[c] = np.nan
    return df[cols].sort_values(["model", "algorithm", "fmt", "iters"]).reset_index(drop=True) if len(df) else df[cols]
