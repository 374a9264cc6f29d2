"""Tender scope "all": quantized Q/K/V and softmax probabilities through a registered transformers
attention function (docs/papers/tender.md, '"all" scope')."""
from __future__ import annotations

import torch
import torch.nn as nn

from lpbench.accel.tender import SCALE_FLOOR, chunk_rows, decompose, take_positions, unchunk_rows
from lpbench.methods.tender.collector import Collector, fold_stat

ATTN_IMPL = "lpbench_tender"


def _sym_fake(t: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    scale = scale.clamp(min=SCALE_FLOOR)
    return torch.round(t / scale).clamp(-(qmax + 1), qmax) * scale


class TenderAttention(nn.Module):
    """Tender(all) attention state of one attention module (docs/papers/tender.md, "all" scope)."""

    def __init__(self, bits: int, groups: int, chunk: int, scheme: str):
        super().__init__()
        self.bits, self.groups, self.chunk, self.scheme = bits, groups, chunk, scheme
        for name in ("q_bias", "k_bias", "q_tmax", "q_group", "s_tmax", "s_group", "k_scale", "v_scale"):
            self.register_buffer(name, None)
        self.collector: Collector | None = None

    def forward(self, query, key, value, attention_mask, scaling):
        dtype = query.dtype
        bits, G, chunk = self.bits, self.groups, self.chunk
        qmax = 2 ** (bits - 1) - 1
        q = query.float() * scaling
        k, v = key.float(), value.float()
        T, S = q.shape[-2], k.shape[-2]
        col = self.collector
        # keys: channel bias over all key tokens, then per-token symmetric
        kb = self.k_bias if self.k_bias is not None else (k.amax(-2, keepdim=True) + k.amin(-2, keepdim=True)) / 2
        kc = k - kb
        if self.k_scale is not None:
            ks = take_positions(self.k_scale, S, -2)
        else:
            ks = kc.abs().amax(-1, keepdim=True) / qmax
        khat = _sym_fake(kc, ks, bits)
        # queries: Tender decomposition with channel bias
        qp = decompose(q, bits, G, chunk, self.q_bias, self.scheme,
                        False, self.q_tmax, self.q_group)
        qc, _ = chunk_rows(q, chunk)
        kT = khat.transpose(-1, -2).unsqueeze(-3)                    # (B,H,1,d,S)
        scores = qp.deq @ kT
        qb, kbT = qp.bias, kb.transpose(-1, -2).unsqueeze(-3)      # (...,n,1,d), (B|1,H,1,d,1)
        scores = scores + qb @ k.transpose(-1, -2).unsqueeze(-3) + qc @ kbT - qb @ kbT
        scores = unchunk_rows(scores, T)
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                attention_mask = torch.zeros_like(attention_mask, dtype=scores.dtype).masked_fill(
                    ~attention_mask, torch.finfo(scores.dtype).min)
            scores = scores + attention_mask[..., :S].float()
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        # probabilities: unsigned decomposition, grouped along key positions, no bias
        s_group = None
        if self.s_group is not None:
            s_group = self.s_group[..., :S] if self.s_group.shape[-1] >= S else torch.cat(
                [self.s_group, self.s_group[..., -1:].expand(*self.s_group.shape[:-1], S - self.s_group.shape[-1])], -1)
        pp = decompose(probs, bits, G, chunk, False, self.scheme, True, self.s_tmax, s_group)
        phat = unchunk_rows(pp.deq, T)
        vs = self.v_scale if self.v_scale is not None else v.abs().amax(-2, keepdim=True) / qmax
        vhat = _sym_fake(v, vs, bits)
        out = phat @ vhat
        if col is not None:
            if self.k_bias is None:
                col.add_mean("k_bias", fold_stat(kb, 2, 1))
            if self.q_bias is None:
                col.add_mean("q_bias", fold_stat(qp.bias.squeeze(-2), 2, 1))
            if qp.cmax is not None:
                col.add_max("q_tmax", fold_stat(qp.tmax, 1, 1))
                col.add_max("q_cmax", fold_stat(qp.cmax, 2, 1))
            if pp.cmax is not None:
                col.add_max("s_tmax", fold_stat(pp.tmax, 1, 1))
                col.add_max("s_cmax", fold_stat(pp.cmax, 2, 1))
            if self.k_scale is None:
                col.add_max("k_scale", fold_stat(ks, 2, 1))
            if self.v_scale is None:
                col.add_max("v_scale", fold_stat(vs, 2, 1))
        return out.transpose(1, 2).contiguous().to(dtype), probs.to(dtype)


def _repeat_kv(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return t
    b, h, s, d = t.shape
    return t[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def tender_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention-interface function ("lpbench_tender"): Tender(all) when the module carries
    a :class:`TenderAttention` state, plain eager attention otherwise."""
    n_rep = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, n_rep), _repeat_kv(value, n_rep)
    scaling = 1.0 if scaling is None else scaling
    state = getattr(module, "tender_attn", None)
    if state is not None:
        return state(query, key, value, attention_mask, scaling)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask[..., : key.shape[-2]]
    w = torch.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


ALL_FAMILIES = ("llama", "qwen2", "opt")


def register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask
    AttentionInterface.register(ATTN_IMPL, tender_attention_forward)
    AttentionMaskInterface.register(ATTN_IMPL, eager_mask)


def set_attn_impl(model: nn.Module, impl: str) -> None:
    try:
        model.set_attn_implementation(impl)
    except Exception:                                          # older/newer API: set the config directly
        model.config._attn_implementation = impl
    if model.config._attn_implementation != impl:
        model.config._attn_implementation = impl
