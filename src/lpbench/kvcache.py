"""KV-cache quantization through a patched attention function (the RRS/QuaRot KV4 rows).

Reading of the official code (``rotation_utils.QKRotationWrapper`` + ``ActQuantWrapper.out_quantizer``
of ``Coco58323/Rotated_Runtime_Smooth``, inherited from QuaRot), reproduced here:

* **K**: after RoPE, queries and keys are both multiplied by a Hadamard of order ``head_dim`` (exact for
  ``q·k``), then K is quantized per (token, head) — one scale per ``head_dim`` values. The official code
  only allows ``k_groupsize ∈ {-1, head_dim}``; its run script's "``--k_groupsize 128``" is LLaMA's
  ``head_dim``. SmolLM2 has head_dim 64, Gemma-3 256: we group by head_dim.
* **V**: quantized per token over all KV heads (``v_groupsize = -1``, the official default) — the
  ``v_proj`` output quantizer.
* **Symmetry**: the RRS run script passes neither ``--k_asym`` nor ``--v_asym``, so its KV4 is
  *symmetric* (``kv_asym: false``, our default); QuaRot's own README uses asymmetric KV
  (``kv_asym: true`` selects it: scale = (max-min)/15 with zero point, as :mod:`lpbench.quant`).
* No KV quantization is applied to queries; attention itself and softmax stay in FP32.

Mechanism: transformers' attention modules call ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``
with the post-RoPE ``(query, key, value)``; :func:`attach_kv_quant` registers a wrapper implementation
(``lpbench_kvq+<base>``, with the base implementation's mask function) that quantizes K/V of every
attention module carrying a :class:`KVQuant` attribute and then calls the base implementation. Modules
without one (and every other model in the process) are untouched.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.quant import QuantSpec, fake_quant
from lpbench.rotation import hadamard_matrix


class KVQuant(nn.Module):
    """Fake quantization of (query, key, value) as they enter attention, shapes (B, heads, T, head_dim).

    Keys: Hadamard of order head_dim on q and k (``k_hadamard``), then INT-b per (token, head). Values:
    INT-b per token over all KV heads. ``bits >= 16`` leaves everything untouched."""

    def __init__(self, bits: int, head_dim: int, asym: bool = False, clip_ratio: float = 1.0,
                 k_hadamard: bool = True):
        super().__init__()
        self.bits, self.head_dim, self.asym, self.k_hadamard = bits, head_dim, asym, k_hadamard
        self.spec = QuantSpec(bits=bits, granularity="per_row", symmetric=not asym, clip_ratio=clip_ratio)
        h = hadamard_matrix(head_dim) if k_hadamard else None
        self.register_buffer("had", None if h is None else h.float(), persistent=False)

    def quant_k(self, k: torch.Tensor) -> torch.Tensor:
        return fake_quant(k, self.spec)          # last dim = head_dim: one scale per (b, head, token)

    def quant_v(self, v: torch.Tensor) -> torch.Tensor:
        b, h, t, d = v.shape
        flat = v.transpose(1, 2).reshape(b, t, h * d)   # per token over all KV heads
        return fake_quant(flat, self.spec).reshape(b, t, h, d).transpose(1, 2)

    def forward(self, q, k, v):
        if self.had is not None:
            had = self.had.to(q.dtype)
            q, k = q @ had, k @ had
        return q, self.quant_k(k), self.quant_v(v)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, head_dim={self.head_dim}, asym={self.asym}, k_hadamard={self.k_hadamard}"


def _kv_wrapper(base_name: str):
    def attention(module, query, key, value, attention_mask, **kwargs):
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        kvq = getattr(module, "lpbench_kvq", None)
        if kvq is not None:
            query, key, value = kvq(query, key, value)
        if base_name == "eager":
            fn = _eager_for(module)
        else:
            fn = ALL_ATTENTION_FUNCTIONS[base_name]
        return fn(module, query, key, value, attention_mask, **kwargs)
    return attention


def _eager_for(module):
    import importlib
    mod = importlib.import_module(type(module).__module__)
    return getattr(mod, "eager_attention_forward")


def attach_kv_quant(model: nn.Module, arch: ArchSpec, bits: int, asym: bool = False,
                    k_hadamard: bool = True) -> None:
    """Quantize the KV cache of every attention module of ``model`` (see the module docstring)."""
    if bits >= 16:
        return
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    cfg = model.config
    base = cfg._attn_implementation or "eager"
    if base.startswith("lpbench_kvq+"):
        base = base.split("+", 1)[1]
    if base not in ("sdpa", "eager"):
        raise NotImplementedError(f"KV quantization wraps 'sdpa' or 'eager' attention, not '{base}'")
    name = f"lpbench_kvq+{base}"
    if name not in ALL_ATTENTION_FUNCTIONS:
        ALL_ATTENTION_FUNCTIONS.register(name, _kv_wrapper(base))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    for block in arch.blocks(model):
        attn = get_submodule(block, arch.attn["q"].rsplit(".", 1)[0])
        head_dim = getattr(attn, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        if k_hadamard and head_dim & (head_dim - 1):
            raise ValueError(f"K Hadamard needs a power-of-two head_dim (as QuaRot), got {head_dim}")
        attn.lpbench_kvq = KVQuant(bits, head_dim, asym=asym, k_hadamard=k_hadamard)
    configs = {id(cfg): cfg}
    if hasattr(cfg, "get_text_config"):
        configs[id(cfg.get_text_config())] = cfg.get_text_config()
    for c in configs.values():
        c._attn_implementation = name
