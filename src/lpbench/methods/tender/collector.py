"""Running calibration statistics of Tender's quantizers (sums for the mean, maxima for the rest)."""
from __future__ import annotations

import torch


def fold_stat(t: torch.Tensor, core: int, keep: int) -> torch.Tensor:
    """Reshape (*batch, *kept(keep dims), *core(core dims)) → (B, *kept, *core)."""
    return t.reshape(-1, *t.shape[t.dim() - core - keep:])


class Collector:
    """Running calibration statistics of one input site (sums for the mean, maxima for the rest)."""

    def __init__(self):
        self.sum: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        self.max: dict[str, torch.Tensor] = {}

    def add_mean(self, key, t):                        # t: (B, ...) → accumulate sum over B
        s = t.double().sum(0)
        if key in self.sum and self.sum[key].shape != s.shape:
            raise ValueError(f"Tender calibration: '{key}' changed shape {tuple(self.sum[key].shape)} → "
                             f"{tuple(s.shape)}; use calibration windows of one length")
        self.sum[key] = self.sum[key] + s if key in self.sum else s
        self.count[key] = self.count.get(key, 0) + t.shape[0]

    def add_max(self, key, t):
        m = t.float().amax(0)
        if key in self.max and self.max[key].shape != m.shape:
            raise ValueError(f"Tender calibration: '{key}' changed shape {tuple(self.max[key].shape)} → "
                             f"{tuple(m.shape)}; use calibration windows of one length")
        self.max[key] = torch.maximum(self.max[key], m) if key in self.max else m

    def result(self) -> dict[str, torch.Tensor]:
        out = {k: (v / self.count[k]).float() for k, v in self.sum.items()}
        out.update(self.max)
        return out
