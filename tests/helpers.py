"""Tiny deterministic models of each registry family, built in code (no download)."""
from __future__ import annotations

import torch
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

TINY = {
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128),
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128),
    "gemma3": dict(model_type="gemma3_text", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=128,
                   sliding_window=32),
    "opt": dict(model_type="opt", hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=128, word_embed_proj_dim=64),
    "bert": dict(model_type="bert", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=128),
}


def tiny_model(family: str, seed: int = 0, vocab: int = 101):
    fields = dict(TINY[family])
    model_type = fields.pop("model_type")
    cfg = AutoConfig.for_model(model_type, vocab_size=vocab, **fields)
    torch.manual_seed(seed)
    cls = AutoModel if family == "bert" else AutoModelForCausalLM
    model = cls.from_config(cfg, dtype=torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() and p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model
