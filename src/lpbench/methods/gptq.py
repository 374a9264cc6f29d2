"""GPTQ weights for the W4A4 methods (``weights: gptq``) and the plain ``w4a4`` kind (RTN / GPTQ rows).

GPTQ depends only on the model's *transform* (none, QuaRot's rotation, SmoothQuant's scales), never on the
activation quantizer: the official ``gptq_fwrd`` runs with every activation quantizer still at 16 bits.
So ``rs``/``rs-g128``/``w4a4`` share one set of GPTQ weights per (model, corpus) and ``quarot``/``rrs`` (and
their KV4 variants) another: :func:`gptq_key` names that set, the ``gptq_weights`` rule computes it once
(:func:`compute_gptq`) into ``resources/gptq/{model}/{corpus}/{key}.pt`` and the evaluations that need it
read it (``artifact['gptq_weights']``).
"""
from __future__ import annotations

import time

import torch

from lpbench.gptq import dequantize, sequential_gptq
from lpbench.methods import register
from lpbench.methods.quarot import W4A4Base
from lpbench.quant import act_spec, quantize_block_linears


def gptq_key(method, default_seed: int | None = None) -> str | None:
    """Name of the GPTQ weight set a method uses (None for RTN weights). A rotating method's set is computed
    in its rotation, so its key holds the method's seed (``seed``, else ``default_seed``: the config's);
    sets are shared only within a seed."""
    if method.kind == "stack":                     # the set of the stack's GPTQ method
        inner = method.gptq_component()
        return None if inner is None else gptq_key(inner, default_seed)
    p = method.params
    if p.get("weights") != "gptq":
        return None
    kind = method.kind
    if kind in ("quarot", "rrs"):
        seed = p["seed"] if p.get("seed") is not None else default_seed
        t = f"quarot-{p['rotation']}-s{'cfg' if seed is None else seed}"
    elif kind == "smoothquant":
        t = f"smoothquant-a{p['alpha']}"
    else:
        t = "plain"
    return f"{t}-w{p['w_bits']}-{p['w_clip']}" + ("-actorder" if p.get("act_order") else "")


def clip_scales_key(method) -> str | None:
    """Name of the GPTQ weight set whose stored scales are this method's MSE clip search, or None.

    GPTQ fixes each output channel's scale once, before its column loop, by the MSE clip search of the layer's
    weights as they are (the official ``find_params(W)`` comes before any column is updated), so the scales in a
    ``plain`` set are exactly the search an RTN + clip row of the same weights and bits runs (``w4a4`` with
    ``weights: rtn, w_clip: mse``: no transform). Such a row reads them instead of searching again (the
    pipeline does so when that set is computed anyway; otherwise the row searches itself: same scales,
    ``tests/test_gptq.py``). Other kinds transform their weights first (a stack's components search inline)."""
    p = method.params
    if method.kind != "w4a4" or p.get("weights") != "rtn" or p.get("w_clip") != "mse" or p["w_bits"] >= 16:
        return None
    return f"plain-w{p['w_bits']}-mse"


def load_clip_scales(path, with_hash: bool = False):
    """``{linear name: scale (out, 1)}`` of a ``gptq_weights`` file (see :func:`clip_scales_key`), verified
    against its recorded sha256 like :func:`load_gptq`."""
    from lpbench.integrity import load_checked

    blob, digest = load_checked(path, with_hash=True)
    scales = {n: v["scale"] for n, v in blob["gptq"].items()}
    return (scales, digest) if with_hash else scales


@torch.no_grad()
def compute_gptq(method, model, arch, stats, windows, log=None, profile: dict | None = None) -> dict:
    """The method's transform (its own calibration — SmoothQuant's scales — and its seed — QuaRot's R1),
    then true-sequential GPTQ on the transformed FP model (online Hadamards as QuantLinear input
    transforms, no activation quantization). ``profile``: CPU-s by phase (lpbench.gptq.sequential_gptq).
    Returns ``{"gptq": packed weights, "time_s": seconds}``."""
    t0 = time.perf_counter()
    art = method.calibrate(model, arch, stats, windows)
    _, transforms = method.transform(model, arch, art)
    quantize_block_linears(model, arch, 16, lambda role: None, transforms)
    packed = sequential_gptq(model, arch, windows, bits=method.params["w_bits"], clip=method.params["w_clip"],
                             act_order=bool(method.params.get("act_order")), log=log, profile=profile)
    return {"gptq": packed, "time_s": time.perf_counter() - t0}


def load_gptq(path, with_hash: bool = False):
    """The dequantized GPTQ weights of a ``gptq_weights`` file, verified against its recorded sha256
    (:func:`lpbench.integrity.load_checked`); ``with_hash``: ``(weights, sha256)``."""
    from lpbench.integrity import load_checked

    blob, digest = load_checked(path, with_hash=True)
    weights = dequantize(blob["gptq"])
    return (weights, digest) if with_hash else weights


@register
class PlainW4A4(W4A4Base):
    """``w4a4``: no transform, per-token activations, RTN (+clip) or GPTQ per-channel weights — the official
    run script's "RTN" (``--w_rtn --w_clip``) and "GPTQ" (``--w_clip``) lines."""

    kind = "w4a4"

    def transform(self, model, arch, artifact):
        spec = act_spec(self.params["a_bits"], self.params["clip_ratio"])
        return (lambda role: spec), None

    def apply(self, model, arch, artifact):
        act_quant_for, transforms = self.transform(model, arch, artifact)
        return self.finish(model, arch, artifact, act_quant_for, transforms)

    def ops_per_token(self, dims):
        return self.merge(self.plain_ops(dims), self.kv_ops(dims))


__all__ = ["gptq_key", "clip_scales_key", "compute_gptq", "load_gptq", "load_clip_scales", "PlainW4A4"]
