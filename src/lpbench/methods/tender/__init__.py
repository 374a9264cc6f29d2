"""``tender``: decomposed activation quantization with power-of-two-apart group scales (Tender, ISCA 2024).

Own implementation, written after reading the official code ``snu-comparch/Tender``. The algorithm as
verified in that code, the calibration procedure, the "all" scope and the deliberate differences from the
official setup are in docs/papers/tender.md.

Modules: :mod:`~lpbench.methods.tender.groups` (G per model, measured non-empty groups),
:mod:`~lpbench.methods.tender.collector` (calibration statistics), :mod:`~lpbench.methods.tender.quantizers`
(input quantizer, quantized linear, input sites), :mod:`~lpbench.methods.tender.attention` (scope "all"),
:mod:`~lpbench.methods.tender.method` (the registered :class:`Tender`: calibrate, apply, op counts),
:mod:`~lpbench.methods.tender.exactness` (TENDER-2 on real layers). The decomposition and the integer datapath
that executes it are :mod:`lpbench.accel.tender`.
"""
from lpbench.methods.tender.attention import ATTN_IMPL, TenderAttention, tender_attention_forward
from lpbench.methods.tender.groups import artifact_nonempty_groups, resolve_groups
from lpbench.methods.tender.method import Tender
from lpbench.methods.tender.quantizers import TenderActQuant, TenderLinear

__all__ = ["ATTN_IMPL", "Tender", "TenderActQuant", "TenderAttention", "TenderLinear", "artifact_nonempty_groups",
           "resolve_groups", "tender_attention_forward"]
