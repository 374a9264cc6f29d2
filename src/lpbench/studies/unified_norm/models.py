"""Two small pre-norm transformers whose norms are all swappable: a ViT for 28x28 images and a causal
byte-level LM. Every norm sits directly before a linear layer (attention QKV, MLP input, head), so a
UN/BN norm folds into it at inference (:mod:`.fold`). The LM head is *not* tied to the embedding, so the
final norm can fold into it without touching the embedding.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import make_norm


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, causal: bool):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not a multiple of heads {heads}")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, norm: dict, causal: bool):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = make_norm(norm, dim)
        self.attn = Attention(dim, heads, causal)
        self.norm2 = make_norm(norm, dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    def norm_linear_pairs(self):
        return [(self, "norm1", [self.attn.qkv]), (self, "norm2", [self.fc1])]


class ViT(nn.Module):
    """Patch embedding (non-overlapping p x p patches, linear), learned positions, a class token,
    pre-norm blocks, final norm, linear head on the class token."""

    def __init__(self, norm: dict, image: int = 28, patch: int = 7, channels: int = 1, classes: int = 10,
                 dim: int = 64, depth: int = 2, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        if image % patch:
            raise ValueError(f"image size {image} is not a multiple of patch {patch}")
        self.patch = patch
        n = (image // patch) ** 2
        self.embed = nn.Linear(channels * patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, norm, causal=False) for _ in range(depth))
        self.norm = make_norm(norm, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, img):  # (B, C, H, W) float
        b, c, h, w = img.shape
        p = self.patch
        x = img.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        x = torch.cat([self.cls.expand(b, -1, -1), self.embed(x)], dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        # the final norm runs on every token (its statistics are over all tokens, as in the blocks);
        # only the class token reaches the head
        return self.head(self.norm(x)[:, 0])

    def norm_linear_pairs(self):
        pairs = [p for blk in self.blocks for p in blk.norm_linear_pairs()]
        return pairs + [(self, "norm", [self.head])]


class CausalLM(nn.Module):
    """Byte-level causal LM: token + learned position embeddings, pre-norm blocks, final norm, untied head."""

    def __init__(self, norm: dict, vocab: int = 256, seqlen: int = 128, dim: int = 64, depth: int = 2,
                 heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(1, seqlen, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, norm, causal=True) for _ in range(depth))
        self.norm = make_norm(norm, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):  # (B, N) int64 -> logits (B, N, V)
        x = self.tok(ids) + self.pos[:, : ids.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))

    def norm_linear_pairs(self):
        pairs = [p for blk in self.blocks for p in blk.norm_linear_pairs()]
        return pairs + [(self, "norm", [self.head])]


def build(task_kind: str, norm: dict, arch: dict) -> nn.Module:
    if task_kind == "vision":
        return ViT(norm, **arch)
    if task_kind == "lm":
        return CausalLM(norm, **arch)
    raise ValueError(f"unknown task kind '{task_kind}'; known: vision, lm")
