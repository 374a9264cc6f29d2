"""Offline scale computation: one pass over the calibration windows records what every method needs.

The statistics file (``resources/calib/<model>/<corpus>.pt``) is computed once per (model, calibration
corpus) and shared by all methods. It holds, in float64 where it is a sum:

``linear[<full linear name>]``
    ``absmax`` (C,): max over all calibration tokens of |x| per input channel (SmoothQuant's act scales)
    ``absmean`` (C,): mean |x| per input channel
    ``token_absmax_max`` / ``token_absmax_median``: over tokens, of max_c |x| (spike-outlier indicators)
``norm[<full norm name>]``
    ``absmax`` (C,): max |x| per channel of the norm's input
    ``sumsq_min`` / ``sumsq_max``: range over tokens of Σ_c x² (SLaNC's FP16 overflow/underflow question)
    ``rms_max``: max over tokens of sqrt(mean_c x²)
``meta``: model id, corpus, number of windows, seqlen, seed, token count.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from tqdm import tqdm

from lpbench.archs import ArchSpec, activations_pass, get_submodule


class _Recorder:
    def __init__(self):
        self.linear: dict[str, dict] = {}
        self.norm: dict[str, dict] = {}
        self._token_absmax: dict[str, list] = {}

    def linear_hook(self, name):
        def hook(_mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            a = x.abs()
            s = self.linear.setdefault(name, {"absmax": torch.zeros(x.shape[1], dtype=torch.float64),
                                              "abssum": torch.zeros(x.shape[1], dtype=torch.float64),
                                              "tokens": 0})
            torch.maximum(s["absmax"], a.amax(0), out=s["absmax"])
            s["abssum"] += a.sum(0)
            s["tokens"] += x.shape[0]
            self._token_absmax.setdefault(name, []).append(a.amax(1).float())
        return hook

    def norm_hook(self, name):
        def hook(_mod, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            ss = (x * x).sum(1)
            s = self.norm.setdefault(name, {"absmax": torch.zeros(x.shape[1], dtype=torch.float64),
                                            "sumsq_min": float("inf"), "sumsq_max": 0.0, "rms_max": 0.0})
            torch.maximum(s["absmax"], x.abs().amax(0), out=s["absmax"])
            s["sumsq_min"] = min(s["sumsq_min"], ss.min().item())
            s["sumsq_max"] = max(s["sumsq_max"], ss.max().item())
            s["rms_max"] = max(s["rms_max"], (ss.max().item() / x.shape[1]) ** 0.5)
        return hook

    def finish(self) -> dict:
        linear = {}
        for name, s in self.linear.items():
            t = torch.cat(self._token_absmax[name])
            linear[name] = {"absmax": s["absmax"], "absmean": s["abssum"] / s["tokens"],
                            "token_absmax_max": t.max().item(), "token_absmax_median": t.median().item()}
        return {"linear": linear, "norm": self.norm}


@torch.inference_mode()
def collect_stats(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, batch_size: int = 1,
                  progress: bool = True) -> dict:
    """Run the calibration windows through ``model`` and return the statistics dict (see module doc)."""
    rec = _Recorder()
    handles = []
    for name in arch.linear_names(model):
        handles.append(get_submodule(model, name).register_forward_pre_hook(rec.linear_hook(name)))
    for name in arch.norm_names(model):
        handles.append(get_submodule(model, name).register_forward_pre_hook(rec.norm_hook(name)))
    try:
        for i in tqdm(range(0, len(windows), batch_size), desc="calibration", disable=not progress):
            activations_pass(model, arch, windows[i: i + batch_size])
    finally:
        for h in handles:
            h.remove()
    stats = rec.finish()
    stats["meta"] = {"windows": int(windows.shape[0]), "seqlen": int(windows.shape[1]),
                     "tokens": int(windows.numel())}
    return stats
