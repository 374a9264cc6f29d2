"""Accuracy evaluation.

Causal LMs: perplexity = exp(mean token NLL) over non-overlapping windows (see :mod:`lpbench.data`).
Every window has the same number of predicted tokens (seqlen - 1), so this equals exp of the mean over
windows of the mean NLL (the GPTQ/QuaRot/Tender formula). NLL is accumulated in float64.
A window whose logits contain NaN/inf is **reported** (``nonfinite_windows``) and excluded; if any window
is non-finite the perplexity is ``None`` with a reason — never an average that hides it.

Per-token NLL (``metrics["token_nll"]``): one list per window, one float per predicted token (position t
predicts token t + 1), in window order — the same tokens, in the same order, for every method of a
(model, corpus), so any two evaluations pair token by token (``metrics["tokens_sha256"]``, a hash of the
evaluated windows, lets a reader check that). The confidence intervals of :mod:`lpbench.bootstrap` read them.

Fidelity to FP32 (causal LMs; intervals and tables in :mod:`lpbench.fidelity`). The ``fp32`` evaluation of a
(model, corpus) also writes the *reference distribution* P (:func:`save_reference`). Every other evaluation
of the same windows reads it and stores, beside ``token_nll`` and in the same per-window layout, for its
distribution Q: ``kl`` (KL(P ‖ Q) over P's top-K plus one bucket, :func:`token_fidelity`), ``top1_agree``
and ``dp`` (Q(target) − P(target)); ``null`` in all three for a non-finite window.

Encoders (BERT family, no LM head): the method's output is compared with the unmodified FP32 model on
the same windows (relative Frobenius error, sentence-embedding cosine, per-token ``token_cosine``,
``token_signal_power`` / ``token_noise_power``, ``sqnr_db``).

Definitions, storage format, numerics and cost of every metric: docs/metrics.md.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


def split_logsumexp(x: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split log Σ_v exp(x_v) over the last axis at ``ids``: returns (x at ids (…, K), log-sum-exp of the
    other entries (…), their maximum (…)); both −inf when ``ids`` covers the axis. In place: ``x`` is
    overwritten. The rest is shifted by its own maximum, so a tail far below float32's smallest exp (a
    model with a huge logit range) does not underflow to −inf."""
    vals = x.gather(-1, ids)
    x.scatter_(-1, ids, float("-inf"))
    top = x.amax(-1, keepdim=True)
    m = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    return vals, x.sub_(m).exp_().sum(-1).log_().add_(m.squeeze(-1)), top.squeeze(-1)


def coarse_logprobs(logits_k: torch.Tensor, tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distribution coarsened to K + 1 outcomes (K tokens and one bucket for the rest), as float64
    log-probabilities, from the K logits and the log-sum-exp of the other logits (same units)."""
    u = torch.cat([logits_k.double(), tail.double()[..., None]], -1)
    u = u - torch.logsumexp(u, -1, keepdim=True)
    return u[..., :-1], u[..., -1]


def token_fidelity(ref: dict, q_logits: torch.Tensor, q_tail: torch.Tensor, q_tail_max: torch.Tensor,
                   q_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token (KL, top-1 agreement, Δp) of Q against the reference P, float64.

    ``ref``: P's ``logits`` (…, K) at its top-K ``ids`` (sorted, so ``ids[..., 0]`` is P's top token),
    ``tail`` (…) log-sum-exp of P's other logits and ``target_logp`` (…, log P(target)); ``q_logits``: Q's
    logits at P's ids, ``q_tail`` / ``q_tail_max`` log-sum-exp and maximum of Q's other logits,
    ``q_target`` = log Q(target).
    KL = Σ_k P_k (log P_k − log Q_k) + P_tail (log P_tail − log Q_tail): the KL of the two distributions
    coarsened to K + 1 outcomes, a lower bound of the exact KL, exact when K = vocabulary (empty tail,
    whose term is 0). Both sides are normalized over their K + 1 outcomes in float64 from the raw logits.
    Q = P gives exactly 0, 1 and 0."""
    lp, pt = coarse_logprobs(ref["logits"], ref["tail"])
    lq, qt = coarse_logprobs(q_logits, q_tail)
    kl = (lp.exp() * (lp - lq)).sum(-1)
    kl = kl + torch.where(torch.isneginf(pt), torch.zeros_like(pt), pt.exp() * (pt - qt))
    top1 = (q_logits[..., 0] >= torch.maximum(q_logits.amax(-1), q_tail_max)).to(torch.uint8)
    dp = q_target.double().exp() - ref["target_logp"].double().exp()
    return kl, top1, dp


_REF_KEYS = ("ids", "logits", "tail", "target_logp")


def _digits(x: torch.Tensor, fmt: str) -> list[float]:
    return np.char.mod(fmt, x.cpu().numpy()).astype(np.float64).tolist()


@torch.inference_mode()
def evaluate_causal(model: nn.Module, windows: torch.Tensor, batch_size: int = 1, progress: bool = True,
                    reference: dict | None = None, top_k: int | None = None) -> tuple[dict, dict | None]:
    """Perplexity and per-token NLL of ``model`` on ``windows``; with ``reference`` (:func:`load_reference`)
    also the per-token fidelity against it; with ``top_k`` (the FP32 job) the reference is built from this
    model's own distribution, returned as the second value (tensors, one row per window), and the fidelity
    metrics are those of the model against itself (0, 1, 0). Returns (metrics, built reference or None)."""
    if reference is not None and top_k:
        raise ValueError("evaluate_causal: either read a reference or build one, not both")
    nll_sum = 0.0
    tokens = 0
    bad: list[int] = []
    per_window: list[float] = []
    token_nll: list[list[float] | None] = []
    fid = {"kl": [], "top1_agree": [], "dp": []}
    no_fid: list[int] = []
    built: dict[str, list] = {k: [] for k in _REF_KEYS}
    fidelity = reference is not None or bool(top_k)
    for i in tqdm(range(0, len(windows), batch_size), desc="perplexity", disable=not progress):
        batch = windows[i: i + batch_size].to(model.device)
        logits = model(batch, use_cache=False).logits
        # shift: position t predicts token t+1
        x = logits[:, :-1].float()
        del logits
        vocab = int(x.shape[-1])
        target = batch[:, 1:]
        # the NLL as it always was (float32 cross_entropy: perplexities bit-identical to earlier runs); the
        # split log-sum-exp below serves only the fidelity metrics
        nll32 = F.cross_entropy(x.reshape(-1, vocab), target.reshape(-1), reduction="none").view(target.shape)
        nll = nll32.double()
        if fidelity:
            if top_k:                                                        # build P: sorted, ids[..., 0] is the top
                ids = x.topk(min(top_k, vocab), -1).indices
            else:
                ref = {k: reference[k][i: i + batch_size].to(x.device) for k in _REF_KEYS}
                ids = ref["ids"]
                ref_ok = reference["finite"][i: i + batch_size]
            vals, tail, tail_max = split_logsumexp(x, ids)                     # x is overwritten
            if top_k:
                ref = {"ids": ids, "logits": vals, "tail": tail, "target_logp": -nll32}
                for k in _REF_KEYS:
                    built[k].append(ref[k].cpu())
            kl, top1, dp = token_fidelity(ref, vals, tail, tail_max, -nll32)
        del x
        for j in range(batch.shape[0]):
            finite = bool(torch.isfinite(nll[j]).all())
            if fidelity:
                ok = finite and bool(torch.isfinite(kl[j]).all()) and (bool(top_k) or bool(ref_ok[j]))
                if not ok:
                    no_fid.append(i + j)
                for name, values in (("kl", kl), ("dp", dp)):
                    fid[name].append(_digits(values[j], "%.6g") if ok else None)
                fid["top1_agree"].append(top1[j].tolist() if ok else None)
            if not finite:
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
           "tokens_sha256": tokens_sha256(windows),
           "token_nll": token_nll}
    if bad:
        out.update(perplexity=None, mean_nll=None,
                   error=f"{len(bad)} of {len(windows)} windows gave NaN/inf logits (windows {bad[:10]})")
    else:
        mean = nll_sum / tokens
        out.update(perplexity=math.exp(mean), mean_nll=mean)
    if fidelity:
        out.update(fid)
        good = [w for w in fid["kl"] if w is not None]
        whole = not no_fid and good
        out["mean_kl"] = float(np.mean(np.concatenate(good))) if whole else None
        agree = [w for w in fid["top1_agree"] if w is not None]
        out["top1_agreement"] = float(np.mean(np.concatenate(agree))) if whole else None
        out["fidelity"] = {"vocab": vocab, "windows_without": no_fid}
        if no_fid:
            out["fidelity"]["error"] = (f"{len(no_fid)} window(s) without fidelity metrics (non-finite Q or "
                                        f"FP32 reference): {no_fid[:10]}")
    made = None
    if top_k:
        made = {k: torch.cat(v) for k, v in built.items()}
        made["finite"] = torch.tensor([w not in no_fid for w in range(len(windows))])
    return out, made


def perplexity(model: nn.Module, windows: torch.Tensor, batch_size: int = 1, progress: bool = True,
               dtype: torch.dtype = torch.float32) -> dict:
    """Perplexity and per-token NLL only (:func:`evaluate_causal` without fidelity metrics)."""
    return evaluate_causal(model, windows, batch_size, progress)[0]


def tokens_sha256(windows: torch.Tensor) -> str:
    return hashlib.sha256(windows.cpu().numpy().astype("int64").tobytes()).hexdigest()


def save_reference(path, ref: dict, meta: dict) -> None:
    """Write the FP32 reference distribution (one row per window): top-K ``ids`` (int32) and their raw
    ``logits`` (float32, sorted), ``tail`` = log-sum-exp of the other logits,
    ``target_logp`` (log P(target)), ``finite`` per window, and ``meta`` (top_k, vocab, tokens_sha256, …).
    log P(top-K) = logits − logsumexp(logits, tail): the logits are stored as the model produced them
    (exact), and the normalizer is recomputed in float64 (:func:`coarse_logprobs`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"ids": ref["ids"].to(torch.int32),
            **{k: ref[k].float() for k in ("logits", "tail", "target_logp")}, "finite": ref["finite"],
            "meta": meta}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)


def load_reference(path, windows: torch.Tensor) -> dict:
    """Read the reference of :func:`save_reference` for ``windows``: an error (with the fix) if it was
    built on other windows."""
    ref = torch.load(path)
    want = tokens_sha256(windows)
    if ref["meta"].get("tokens_sha256") != want:
        raise ValueError(f"{path}: FP32 reference built on other evaluation windows (tokens sha256 "
                         f"{str(ref['meta'].get('tokens_sha256'))[:16]}…, these are {want[:16]}…); "
                         f"rerun: snakemake --forcerun {path}")
    return {**ref, "ids": ref["ids"].long()}


@torch.inference_mode()
def encoder_outputs(model: nn.Module, windows: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    outs = [model(windows[i: i + batch_size].to(model.device)).last_hidden_state.float().cpu()
            for i in range(0, len(windows), batch_size)]
    return torch.cat(outs)


@torch.inference_mode()
def encoder_error(reference: torch.Tensor, output: torch.Tensor) -> dict:
    """Output error of an encoder against FP32 (see the module docstring), with per-token cosine and
    signal / noise powers of every finite window (``null`` for a non-finite one)."""
    finite = torch.isfinite(output).flatten(1).all(1)
    bad = (~finite).nonzero().flatten().tolist()
    r, o = reference.double(), output.double()
    cos_t = F.cosine_similarity(o, r, dim=-1)                 # (windows, tokens)
    signal, noise = r.pow(2).mean(-1), (o - r).pow(2).mean(-1)
    per_token = {name: [None if w in bad else _digits(x[w], "%.9g") for w in range(len(output))]
                 for name, x in (("token_cosine", cos_t), ("token_signal_power", signal),
                                 ("token_noise_power", noise))}
    if bad:
        return {"relative_error": None, "cosine": None, "mean_token_cosine": None, "sqnr_db": None,
                "nonfinite_windows": bad, **per_token,
                "error": f"{len(bad)} windows gave NaN/inf hidden states"}
    rel = ((o - r).flatten(1).norm(dim=1) / r.flatten(1).norm(dim=1)).mean().item()
    cos = F.cosine_similarity(o.mean(1), r.mean(1), dim=-1).mean().item()
    total_noise = noise.sum().item()
    return {"relative_error": rel, "cosine": cos, "nonfinite_windows": [], "windows": int(len(output)),
            "mean_token_cosine": cos_t.mean().item(),
            "sqnr_db": 10 * math.log10(signal.sum().item() / total_noise) if total_noise > 0 else None,
            **per_token}


def run_evaluation(model_dir, method, artifact: dict, ids: torch.Tensor, settings: dict,
                   progress: bool = True, device: str = "cpu", reference=None, reference_out=None,
                   top_k: int | None = None, reference_method: str | None = None) -> dict:
    """Load the canonical model, apply ``method`` with its offline ``artifact`` and evaluate it on the
    non-overlapping windows of ``ids`` described by ``settings`` (seqlen, n_windows, batch_size).
    Methods are applied on the CPU, then the model moves to ``device`` ("cuda" on a GPU node).

    Causal LMs, fidelity to FP32: ``reference`` (path of the FP32 reference distribution) adds the per-token
    KL / top-1 / Δp against it; ``reference_out`` (the FP32 job) builds that reference with ``top_k`` ids per
    token from this evaluation's own forward pass and writes it there. ``reference_method`` names the method
    the reference comes from (recorded in the result)."""
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
        ref = load_reference(reference, windows) if reference is not None else None
        model = method.apply(model, arch, artifact).to(device)
        with compute():
            metrics, made = evaluate_causal(model, windows, settings.get("batch_size", 1), progress=progress,
                                            reference=ref, top_k=top_k if reference_out is not None else None)
        if made is not None:
            ref = {**made, "meta": {"method": reference_method or method.name, "top_k": int(made["ids"].shape[-1]),
                                    "vocab": metrics["fidelity"]["vocab"], "tokens_sha256": metrics["tokens_sha256"],
                                    "windows": int(len(windows)), "seqlen": int(windows.shape[1]),
                                    "model_sha256": meta.get("content_sha256")}}
            save_reference(reference_out, made, ref["meta"])
        if ref is not None:
            tail = coarse_logprobs(ref["logits"], ref["tail"])[1][ref["finite"]].exp()
            if ref["meta"]["vocab"] != metrics["fidelity"]["vocab"]:
                raise ValueError(f"{reference}: FP32 reference over {ref['meta']['vocab']} tokens, this model's "
                                 f"logits have {metrics['fidelity']['vocab']}")
            metrics["fidelity"].update(reference=ref["meta"]["method"], top_k=ref["meta"]["top_k"],
                                       reference_tail_mass=tail.mean().item() if tail.numel() else None)
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
