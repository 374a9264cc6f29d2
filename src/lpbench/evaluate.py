"""Accuracy evaluation.

Causal LMs: perplexity = exp(mean token NLL) over non-overlapping windows (see :mod:`lpbench.data`).
Every window has the same number of predicted tokens (seqlen - 1), so this equals exp of the mean over
windows of the mean NLL (the GPTQ/QuaRot/Tender formula). NLL is accumulated in float64.
A window whose logits contain NaN/inf is **reported** (``nonfinite_windows``) and excluded; if any window
is non-finite the perplexity is ``None`` with a reason — never an average that hides it.

Per-token NLL (``metrics["token_nll"]``): one list per window, one float per predicted token (position t
predicts token t + 1), in window order — the same tokens, in the same order, for every method of a
(model, corpus), so any two evaluations pair token by token (``metrics["tokens_sha256"]``, a hash of the
evaluated windows, lets a reader check that). Stored inside the result JSON rather than in a sidecar
file: the numbers travel with their provenance, the evaluate rule keeps one output, and the size is
small (≈ 10 bytes per token: 2044 tokens by default). Values are the float32 NLLs the model produced,
written with 9 significant digits (exact round trip to float32); a non-finite window is ``null``.
The confidence intervals of :mod:`lpbench.bootstrap` read them.

Encoders (BERT family, no LM head): the method's output is compared with the unmodified FP32 model on
the same windows: mean relative Frobenius error of the last hidden state and mean cosine similarity of
the mean-pooled sentence embeddings.
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


@torch.inference_mode()
def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 1, progress: bool = True,
               dtype: torch.dtype = torch.float32) -> dict:
    nll_sum = 0.0
    tokens = 0
    bad: list[int] = []
    per_window: list[float] = []
    token_nll: list[list[float] | None] = []
    for i in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress):
        batch = windows[i: i + batch_size].to(model.device)
        logits = model(batch, use_cache=False).logits
        # shift: position t predicts token t+1
        lp = logits[:, :-1].float()
        target = batch[:, 1:]
        nll = F.cross_entropy(lp.reshape(-1, lp.shape[-1]), target.reshape(-1), reduction="none")
        nll32 = nll.view(batch.shape[0], -1)
        nll = nll32.double()
        for j in range(batch.shape[0]):
            if not torch.isfinite(nll[j]).all():
                bad.append(i + j)
                per_window.append(float("nan"))
                token_nll.append(None)
                continue
            token_nll.append([float(f"{v:.9g}") for v in nll32[j].tolist()])
            nll_sum += nll[j].sum().item()
            tokens += nll.shape[1]
            per_window.append(nll[j].mean().item())
    out = {"windows": int(len(windows)), "seqlen": int(windows.shape[1]), "predicted_tokens": tokens,
           "nonfinite_windows": bad, "window_mean_nll": per_window,
           "tokens_sha256": hashlib.sha256(windows.cpu().numpy().astype("int64").tobytes()).hexdigest(),
           "token_nll": token_nll}
    if bad:
        out.update(perplexity=None, mean_nll=None,
                   error=f"{len(bad)} of {len(windows)} windows gave NaN/inf logits (windows {bad[:10]})")
    else:
        mean = nll_sum / tokens
        out.update(perplexity=math.exp(mean), mean_nll=mean)
    return out


@torch.inference_mode()
def encoder_outputs(model: nn.Module, windows: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    outs = [model(windows[i: i + batch_size].to(model.device)).last_hidden_state.float().cpu()
            for i in range(0, len(windows), batch_size)]
    return torch.cat(outs)


@torch.inference_mode()
def encoder_error(reference: torch.Tensor, output: torch.Tensor) -> dict:
    finite = torch.isfinite(output).flatten(1).all(1)
    bad = (~finite).nonzero().flatten().tolist()
    if bad:
        return {"relative_error": None, "cosine": None, "nonfinite_windows": bad,
                "error": f"{len(bad)} windows gave NaN/inf hidden states"}
    r, o = reference.double(), output.double()
    rel = ((o - r).flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1)).mean().item()
    cos = F.cosine_similarity(o.mean(1), r.mean(1), dim=-1).mean().item()
    return {"relative_error": rel, "cosine": cos, "nonfinite_windows": [], "windows": int(len(output))}


def run_evaluation(model_dir, method, artifact: dict, ids: torch.Tensor, settings: dict,
                   progress: bool = True, device: str = "cpu") -> dict:
    """Load the canonical model, apply ``method`` with its offline ``artifact`` and evaluate it on the
    non-overlapping windows of ``ids`` described by ``settings`` (seqlen, n_windows, batch_size).
    Methods are applied on the CPU, then the model moves to ``device`` ("cuda" on a GPU node)."""
    from lpbench.archs import get_arch
    from lpbench.data import eval_windows
    from lpbench.jobs import compute
    from lpbench.sources import encoder_ends, load_model, special_tokens

    model, _, meta = load_model(model_dir)
    sp = special_tokens(model_dir, meta)
    arch = get_arch(model)
    if meta.get("causal", True):
        bos = sp["bos"] if meta.get("bos_per_window") else None
        windows = eval_windows(ids, settings["seqlen"], settings.get("n_windows"), bos_id=bos)
        model = method.apply(model, arch, artifact).to(device)
        with compute():
            metrics = perplexity(model, windows, settings.get("batch_size", 1), progress=progress)
        metrics["kind"] = "perplexity"
    else:
        cls, sep = encoder_ends(sp)
        body = eval_windows(ids, settings["seqlen"] - 2, settings.get("n_windows"))
        windows = torch.cat([torch.full((len(body), 1), cls), body, torch.full((len(body), 1), sep)], 1)
        with compute():
            reference = encoder_outputs(model.to(device), windows)
        model = method.apply(model.cpu(), arch, artifact).to(device)
        with compute():
            output = encoder_outputs(model, windows)
        metrics = encoder_error(reference, output)
        metrics["kind"] = "encoder_error"
    return {"model": {"id": meta["model_id"], "model_type": meta["model_type"], "source": meta["source"],
                      "caveat": meta.get("caveat", "")},
            "method": {"name": method.name, "kind": method.kind, "params": method.params},
            "settings": dict(settings), "metrics": metrics}
