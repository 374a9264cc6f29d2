"""GPTQ (Frantar et al. 2023) weight quantization, as the official RRS / QuaRot code runs it, on CPU.

Reading of ``Coco58323/Rotated_Runtime_Smooth`` ``src/gptq_utils.py`` (a copy of ``spcl/QuaRot``
``fake_quant/gptq_utils.py``) implemented here — written for this suite, not copied:

* **Hessian** ``H = 2/n Σ x xᵀ`` over every calibration token of the linear's input *as the weight sees it*
  (after the online Hadamard when the method has one: the official hooks sit on the ``nn.Linear`` inside
  ``ActQuantWrapper``, i.e. after the online rotation, with activation quantizers still at 16 bits).
* **Scales first**: the per-output-channel symmetric scale is found once on the *unmodified* weight (with
  the ``w_clip`` MSE search of :func:`lpbench.quant.mse_clip_scale` when ``clip='mse'``, as ``--w_clip``),
  then kept fixed while GPTQ quantizes column by column (``quantizer.find_params(W)`` before the loop).
* **Dead inputs** (``H_jj = 0``): ``H_jj ← 1``, ``W[:, j] ← 0``. **Dampening** ``λ = 0.01·mean diag(H)``
  (``--percdamp .01``). ``Hinv = chol(H⁻¹)ᵀ`` (upper Cholesky factor of the inverse).
* **Lazy batch updates** in blocks of 128 columns (``blocksize=128``), error ``(w - q)/Hinv_jj`` propagated
  to the rest of the block, then to the later columns once per block (here one level further down as
  well: rank-1 updates inside sub-blocks of 16 columns, one GEMM per sub-block for the rest of its block).
  **act-order** (``--act_order``, off by default as in the official script): columns in decreasing
  ``diag(H)``, scales unchanged.
* **True-sequential** (``gptq_fwrd``), the default: layer by layer, the inputs of layer ``i`` are the
  outputs of the already quantized layers ``< i`` (weights only; LM head and embeddings stay FP), and inside
  a layer ``[k, v, q] → [o] → [up, gate] → [down]`` (``[fc1] → [fc2]`` for a non-gated MLP), each group's
  Hessian taken with the earlier groups of the same layer already quantized. ``true_sequential=False`` is
  the original GPTQ paper's order (every Hessian of a layer from its FP forward). (Until 2026-12 the
  pipeline ran ``true_sequential=False``: every GPTQ weight set, and every row reading one, changed then.)

How it runs on a CPU (the same algorithm, fewer passes; see ``benchmarks/gptq_time.py`` for the costs):

* The calibration windows go through a block as one batch (chunks of at most ``max_tokens`` tokens).
* **One pass per layer**: a group's Hessian needs the block's forward only up to that group's input, and
  that input is the same whether the later groups are quantized or not. So when the whole calibration set
  is one chunk, a tap on the group's linears takes the Hessian from the input as it arrives, quantizes the
  group right there, and lets the pass go on with the quantized weights: one block forward per layer gives
  every group's Hessian and the layer's output (the official code runs the layer 5 times). With several
  chunks, each group gets its own pass over the chunks that stops (an exception from the tap, as
  :func:`capture_layer_inputs` stops the model) once its input is seen, then one full pass makes the
  outputs: the same values up to float summation order.
* Linears that read the same input (``k, v, q`` and ``up, gate``) share one Hessian and one GPTQ run on their
  stacked rows (GPTQ's rows are independent given ``H``): the same values as separate runs.
* No FP pass of the whole model to collect the blocks' arguments: :func:`capture_layer_inputs` swaps the
  blocks for stubs that record them.
* The Hessian accumulates one triangle (blocks of columns), and ``chol(H⁻¹)ᵀ`` comes from one Cholesky of
  the reversed H and one triangular inverse (:func:`inverse_cholesky_upper`): the same matrices as the
  official three factorizations, half the arithmetic.
* What differs from the official float32 computation is only the order of floating-point sums (batched
  GEMMs, sub-block updates, the factorization): every GPTQ set differs from the one-window-at-a-time code in
  the last bits (a code can flip where a weight sits on a rounding boundary); the stacked runs and the
  one-pass / per-group-pass choice are bit-identical to the separate / per-group form (tested).

Calibration: the suite's shared calibration windows (``calibration.n_windows × seqlen`` tokens of the
calibration novels; official: 128 × 2048 tokens of WikiText-2 — CPU budget, stated in the README).
"""
from lpbench.gptq.core import (SUB_BLOCK, SYRK_BLOCK, Hessian, dequantize, gptq_quantize, inverse_cholesky_upper,
                               layer_error, weight_scale)
from lpbench.gptq.sequential import (MAX_TOKENS, SHARED_INPUT, capture_layer_inputs, sequential_groups,
                                     sequential_gptq)

__all__ = ["gptq_quantize", "Hessian", "sequential_gptq", "dequantize", "layer_error", "weight_scale",
           "sequential_groups", "capture_layer_inputs", "inverse_cholesky_upper", "MAX_TOKENS", "SHARED_INPUT",
           "SUB_BLOCK", "SYRK_BLOCK"]
