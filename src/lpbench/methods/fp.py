"""Floating-point baselines: ``fp32`` (the reference), ``fp16`` and ``bf16``.

``fp16`` / ``bf16`` cast every weight and run the whole forward pass in that dtype (torch's CPU kernels;
note that PyTorch's CPU reductions — norms, softmax — accumulate half-precision inputs in FP32, so this
is "weights and activations stored in 16 bits", not an emulation of a 16-bit accumulator; the SLaNC
and IterL2Norm modules emulate accumulation explicitly). Logits are compared in FP32.
"""
from __future__ import annotations

import torch

from lpbench.methods import Method, register


@register
class FP32(Method):
    kind = "fp32"

    def ops_per_token(self, dims):
        macs = dims.gemm_macs
        return {"fp32_mult": macs, "fp32_add": macs}


class _Half(Method):
    dtype: torch.dtype
    op: str

    def apply(self, model, arch, artifact):
        return model.to(self.dtype)

    @property
    def eval_dtype(self):
        return self.dtype

    def ops_per_token(self, dims):
        macs = dims.gemm_macs
        return {f"{self.op}_mult": macs, f"{self.op}_add": macs}


@register
class FP16(_Half):
    kind = "fp16"
    dtype = torch.float16
    op = "fp16"


@register
class BF16(_Half):
    """bfloat16; energy uses the FP16 constants (Horowitz gives no BF16 numbers; same 16-bit datapath class)."""
    kind = "bf16"
    dtype = torch.bfloat16
    op = "fp16"
