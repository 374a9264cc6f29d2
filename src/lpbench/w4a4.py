"""Shared W4A4 machinery of the RRS reproduction (issue 3): weight quantizers, per-linear activation
quantizers, and KV-cache quantization through a patched attention function.

Used by the ``smoothquant``, ``quarot``, ``rs`` and ``rrs`` method kinds so that they differ only in the
transform they apply (smoothing, rotation, runtime smoothing) and never in how they quantize.

Weights
-------
``weight_quant(W, bits, clip)``: symmetric per-output-channel INT-b, as the official RRS/QuaRot code
(``WeightQuantizer(perchannel=True, sym=True)``). ``clip="none"``: scale = max|w|/qmax (identical to the
suite's ``rtn`` kind). ``clip="mse"``: QuaRot/GPTQ's ``--w_clip`` search: shrink the range by
``p = 1 - i/100`` for ``i < 80`` and keep, per row, the ``p`` minimizing ``Σ|Q(w) - w|^2.4``.
``weights: gptq`` (see :mod:`lpbench.methods.gptq`) is GPTQ with the same grid.

Activations
-----------
Symmetric per-token INT-b of every block linear's input (``a_clip_ratio`` 1.0, the official default),
optionally after an ``input_transform`` (online Hadamard) and/or with runtime smoothing (``rs``).
The LM head and embeddings stay in full precision.

KV cache (``kv_bits < 16``)
---------------------------
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

import math

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.quant import QuantLinear, QuantSpec, fake_quant, replace_module
from lpbench.rotation import hadamard_matrix

WEIGHT_QUANTIZERS = ("rtn", "gptq")


# ---- weights -------------------------------------------------------------------------------------------
def mse_clip_scale(w: torch.Tensor, bits: int, grid: int = 100, maxshrink: float = 0.8,
                   norm: float = 2.4) -> torch.Tensor:
    """Per-row scale (rows, 1) of symmetric INT-b minimizing Σ|Q(w)-w|^norm over shrink factors p."""
    qmax = 2 ** (bits - 1) - 1
    w = w.float()
    absmax = w.abs().amax(1, keepdim=True).clamp(min=1e-5)
    best = torch.full_like(absmax, float("inf"))
    scale = absmax / qmax
    for i in range(int(maxshrink * grid)):
        s = (1 - i / grid) * absmax / qmax
        err = (torch.clamp(torch.round(w / s), -qmax - 1, qmax) * s - w).abs_().pow_(norm).sum(1, keepdim=True)
        better = err < best
        best = torch.where(better, err, best)
        scale = torch.where(better, s, scale)
    return scale


def weight_quant(w: torch.Tensor, bits: int, clip: str = "none") -> torch.Tensor:
    """Fake-quantized copy of a weight (out, in): symmetric per output channel, INT-``bits``."""
    if bits >= 16:
        return w.detach().clone()
    if clip == "none":
        return fake_quant(w.detach(), QuantSpec(bits=bits, granularity="per_row"))
    if clip == "mse":
        qmax = 2 ** (bits - 1) - 1
        s = mse_clip_scale(w.detach(), bits)
        return (torch.clamp(torch.round(w.detach().float() / s), -qmax - 1, qmax) * s).to(w.dtype)
    raise ValueError(f"unknown weight clip '{clip}'; known: 'none', 'mse'")


# ---- activations -----------------------------------------------------------------------------------------
def act_spec(bits: int, clip_ratio: float = 1.0) -> QuantSpec | None:
    """Symmetric per-token activation quantizer, or None for ``bits >= 16``."""
    return None if bits >= 16 else QuantSpec(bits=bits, granularity="per_row", clip_ratio=clip_ratio)


@torch.no_grad()
def quantize_block_linears(model: nn.Module, arch: ArchSpec, w_bits: int, act_quant_for,
                           transforms: dict[str, nn.Module] | None = None, w_clip: str = "none",
                           weights: dict[str, torch.Tensor] | None = None) -> None:
    """Replace every block linear by a :class:`QuantLinear`.

    ``act_quant_for(role)`` gives the activation quantizer of a linear by its role (q, k, v, o, gate, up,
    down, fc1, fc2). ``transforms[full name]`` is an online input transform (already folded into the
    weight). ``weights[full name]``, when given, is the already quantized weight (GPTQ)."""
    transforms = transforms or {}
    roles = {rel: role for role, rel in arch.block_linears().items()}
    for name in arch.linear_names(model):
        lin = get_submodule(model, name)
        role = roles[name.split(".", len(arch.layers.split(".")) + 1)[-1]]
        wq = weights[name] if weights is not None and name in weights else weight_quant(lin.weight.data, w_bits, w_clip)
        replace_module(model, name, QuantLinear(lin, wq, act_quant=act_quant_for(role),
                                                input_transform=transforms.get(name)))


# ---- KV cache ------------------------------------------------------------------------------------------------
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


# ---- cost helpers -----------------------------------------------------------------------------------------------
def hadamard_ops(n: int) -> tuple[float, float]:
    """(adds, mults) per vector of length n for a fast Hadamard transform n = K·2^k: a Walsh-Hadamard
    butterfly on the 2^k factor (n·k adds) and a dense K×K product on the K factor (n·K mult-adds)."""
    k2 = n & -n                       # largest power of two dividing n
    K = n // k2
    adds = n * math.log2(k2) + (n * (K - 1) if K > 1 else 0)
    mults = n * K if K > 1 else 0.0
    return float(adds), float(mults + n)   # + n: the 1/sqrt(n) normalization (or sign flips), one mult each
