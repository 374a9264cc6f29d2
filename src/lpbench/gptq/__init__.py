"""GPTQ (Frantar et al. 2023) weight quantization, as the official RRS / QuaRot code runs it, on CPU.

Reading of ``Coco58323/Rotated_Runtime_Smooth`` ``src/gptq_utils.py`` (a copy of ``spcl/QuaRot``
``fake_quant/gptq_utils.py``) implemented here — written for this suite, not copied.

* **True-sequential** (``gptq_fwrd``), the default: layer by layer, the inputs of layer ``i`` are the
  outputs of the already quantized layers ``< i`` (weights only; LM head and embeddings stay FP), and inside
  a layer ``[k, v, q] → [o] → [up, gate] → [down]`` (``[fc1] → [fc2]`` for a non-gated MLP), each group's
  Hessian taken with the earlier groups of the same layer already quantized. ``true_sequential=False`` is
  the original GPTQ paper's order (every Hessian of a layer from its FP forward).
* The calibration windows go through a block as one batch (chunks of at most ``max_tokens`` tokens).
* What differs from the official float32 computation is only the order of floating-point sums (batched
  GEMMs, sub-block updates, the factorization): every GPTQ set differs from the one-window-at-a-time code in
  the last bits (a code can flip where a weight sits on a rounding boundary); the stacked runs and the
  one-pass / per-group-pass choice are bit-identical to the separate / per-group form (tested).

Calibration: the suite's shared calibration windows (``calibration.n_windows × seqlen`` tokens of the
calibration novels; official: 128 × 2048 tokens of WikiText-2 — CPU budget, stated in the README).

The reading step by step (Hessian, scales, dampening, lazy batch updates, act-order) and how it runs on a
CPU: docs/papers/rrs.md, sections "GPTQ" and "GPTQ as implemented (lpbench.gptq)".
"""
from lpbench.gptq.core import (SUB_BLOCK, SYRK_BLOCK, Hessian, dequantize, gptq_quantize, inverse_cholesky_upper,
                               layer_error, weight_scale)
from lpbench.gptq.sequential import (MAX_TOKENS, SHARED_INPUT, capture_layer_inputs, sequential_groups,
                                     sequential_gptq)

__all__ = ["gptq_quantize", "Hessian", "sequential_gptq", "dequantize", "layer_error", "weight_scale",
           "sequential_groups", "capture_layer_inputs", "inverse_cholesky_upper", "MAX_TOKENS", "SHARED_INPUT",
           "SUB_BLOCK", "SYRK_BLOCK"]
