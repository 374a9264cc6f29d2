"""Tender's linear-layer path: the input quantizer of one site, the quantized linear that computes the
official Y = X̂'·Ŵᵀ + b·Wᵀ, and the input sites of a block with their bias / sign policy
(docs/papers/tender.md, steps 1–6)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lpbench.accel.tender import TenderParts, decompose, take_positions, unchunk_rows
from lpbench.archs import ArchSpec
from lpbench.methods.tender.collector import Collector, fold_stat
from lpbench.quant import QuantLinear


class TenderActQuant(nn.Module):
    """Tender quantizer of one linear-input site (shared by the linears that read the same tensor,
    e.g. q/k/v: the decomposition is computed once and reused — identity-cached for ``consumers`` calls).
    """

    def __init__(self, bits: int, groups: int, chunk: int, unsigned: bool, use_bias: bool, scheme: str,
                 consumers: int = 1):
        super().__init__()
        self.bits, self.groups, self.chunk = bits, groups, chunk
        self.unsigned, self.use_bias, self.scheme = unsigned, use_bias and not unsigned, scheme
        self.consumers = consumers
        self.register_buffer("bias_cal", None)           # (n_cal, C)
        self.register_buffer("tmax_cal", None)           # (n_cal,)
        self.register_buffer("group_cal", None)          # (n_cal, C)
        self.collector: Collector | None = None
        self._cache = None

    def forward(self, x: torch.Tensor) -> TenderParts:
        if self._cache is not None and self._cache[0] is x:
            _, parts, left = self._cache
            self._cache = (x, parts, left - 1) if left > 1 else None
            return parts
        bias = self.bias_cal if self.use_bias else False      # None (not calibrated) → runtime bias
        parts = decompose(x, self.bits, self.groups, self.chunk, bias, self.scheme, self.unsigned,
                           self.tmax_cal, self.group_cal)
        if self.collector is not None:
            if parts.bias is not None and self.bias_cal is None:
                self.collector.add_mean("bias", fold_stat(parts.bias.squeeze(-2), 2, 0))
            if parts.cmax is not None:
                self.collector.add_max("tmax", fold_stat(parts.tmax, 1, 0))
                self.collector.add_max("cmax", fold_stat(parts.cmax, 2, 0))
        self._cache = (x, parts, self.consumers - 1) if self.consumers > 1 else None
        return parts

    def extra_repr(self) -> str:
        mode = "static" if self.tmax_cal is not None else "runtime"
        b = "none" if not self.use_bias else ("calibrated" if self.bias_cal is not None else "runtime")
        return (f"bits={self.bits}, groups={self.groups}, chunk={self.chunk}, unsigned={self.unsigned}, "
                f"bias={b}, scales={mode}, scheme={self.scheme}")


class BatchContext:
    """Batch size of the current model call (set by a forward pre-hook of the model, see
    :meth:`Tender.apply`), so that a linear that receives flattened (B·T, C) rows can restore (B, T, C)."""

    def __init__(self):
        self.batch = 1

    def hook(self, _module, args, kwargs):
        t = kwargs.get("input_ids")
        if t is None:
            t = args[0] if args else kwargs.get("inputs_embeds")
        self.batch = int(t.shape[0]) if isinstance(t, torch.Tensor) and t.dim() >= 2 else 1


class TenderLinear(QuantLinear):
    """Linear with RTN per-output-channel weights and a Tender input quantizer, computing the official
    Y = X̂'·Ŵᵀ + b·Wᵀ (+ layer bias) with b·Wᵀ from the unquantized weight: precomputed per calibrated
    chunk position (``bias_proj``), or computed at runtime from ``fp_weight`` for a runtime bias."""

    def __init__(self, linear: nn.Linear, weight: torch.Tensor, act: TenderActQuant,
                 fp_weight: torch.Tensor | None = None, batch_ctx: "BatchContext | None" = None):
        super().__init__(linear, weight)
        self.act = act
        self.batch_ctx = batch_ctx
        self.register_buffer("bias_proj", None)
        self.register_buffer("fp_weight", None)
        if act.use_bias:
            if act.bias_cal is not None:
                self.bias_proj = (act.bias_cal.float() @ linear.weight.detach().float().T).to(weight.dtype)
            else:
                self.fp_weight = (fp_weight if fp_weight is not None else linear.weight).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.batch_ctx.batch if self.batch_ctx is not None else 1
        if x.dim() == 2 and b > 1 and x.shape[0] % b == 0:
            # a family that flattened batch×tokens (OPT's MLP): chunk each sequence, not the flat rows
            return self._forward(x.reshape(b, x.shape[0] // b, x.shape[1])).reshape(x.shape[0], -1)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.act(x)
        y = F.linear(parts.deq.to(self.weight.dtype), self.weight)          # (..., n, chunk, out)
        if parts.bias is not None:
            if self.bias_proj is not None:
                y = y + take_positions(self.bias_proj, y.shape[-3], -2).unsqueeze(-2)
            else:
                y = y + parts.bias.to(self.fp_weight.dtype) @ self.fp_weight.T
        y = unchunk_rows(y, parts.tokens)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}"


def input_sites(arch: ArchSpec) -> list[tuple[str, tuple[str, ...]]]:
    """Input sites (linears reading the same tensor) of one block, in execution order."""
    out = [("qkv", ("q", "k", "v")), ("o", ("o",))]
    if arch.mlp_kind == "gated":
        out += [("gate_up", ("gate", "up")), ("down", ("down",))]
    else:
        out += [("fc1", ("fc1",)), ("fc2", ("fc2",))]
    return out


def site_policy(arch: ArchSpec, model: nn.Module, label: str) -> tuple[bool, bool]:
    """(channel bias?, unsigned?) of a site, as the official code: bias on q/k/v and the MLP input
    everywhere; on o only for OPT (Llama's o_proj has none); never on down/fc2. fc2 is unsigned when
    the MLP activation is ReLU (OPT); a GELU MLP (BERT) stays signed."""
    if label in ("qkv", "gate_up", "fc1"):
        return True, False
    if label == "o":
        return arch.mlp_kind == "standard", False
    if label == "fc2":
        act = (getattr(model.config, "activation_function", None) or getattr(model.config, "hidden_act", "")) or ""
        return False, str(act).lower() == "relu"
    return False, False
