"""Fold UN (or token-BatchNorm) into the linear layer that follows it (pre-norm blocks).

At inference a UN is the per-channel affine y = s * x + t with s = gamma / sqrt(running_var + eps),
t = beta (BN: t = beta - running_mean * s). For the next linear L(y) = W y + b:

    W' = W diag(s),   b' = W t + b,

and the norm is replaced by the identity. Every norm of our models feeds only linear layers (QKV; MLP
input; head), so every one folds. A norm cannot fold where its output also feeds something that is not
a linear map of it alone: a post-norm block (the normalized value is the residual stream), or a head
tied to the embedding (folding would change the embedding); our models are pre-norm with an untied
head. LayerNorm cannot fold: its statistics depend on the token at run time.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


@torch.no_grad()
def fold_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (in eval mode) with every foldable norm folded into its following linears."""
    out = copy.deepcopy(model).eval()
    for owner, name, linears in out.norm_linear_pairs():
        norm = getattr(owner, name)
        if not hasattr(norm, "scale_shift"):
            raise TypeError(f"{type(norm).__name__} has no fixed inference statistics and cannot fold")
        scale, shift = norm.scale_shift()
        for lin in linears:
            w = lin.weight
            bias = lin.bias if lin.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
            new_b = w @ shift + bias
            lin.weight.copy_(w * scale)
            if lin.bias is None:
                lin.bias = nn.Parameter(new_b)
            else:
                lin.bias.copy_(new_b)
        setattr(owner, name, nn.Identity())
    return out
