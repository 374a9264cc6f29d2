"""``rtn``: round-to-nearest weight and activation quantization (the W8A8 / W4A8 / W4A4 baseline).

Weights: symmetric per-output-channel (``per_row`` of W[out, in]) RTN, quantized once at apply time.
Activations: symmetric per-token (``per_row`` of X[..., tokens, in]) dynamic quantization at runtime, the
input of every linear inside the transformer blocks (q/k/v/o, gate/up/down or fc1/fc2). The LM head and
embeddings stay in full precision, as in QuaRot, RRS and Tender. KV cache is not quantized (KV16).
``a_bits: 16`` (or more) means activations are not quantized (weight-only). ``clip_ratio`` applies to
activations (QuaRot's ``a_clip_ratio``); ``w_clip_ratio`` to weights.

Granularity (the Tender paper's Table 1 study, names of :mod:`lpbench.quant`): ``a_granularity``
``per_row`` (default: one dynamic scale per token), ``per_tensor`` (one dynamic scale for the whole input
of the call, i.e. one sequence at batch size 1) or ``per_column`` (one dynamic scale per input channel over
the call's tokens — not realizable in an integer GEMM, whose reduction runs over channels: an accuracy
reference only); ``w_granularity`` ``per_row`` (default: per output channel) or ``per_tensor``.
"""
from __future__ import annotations

from lpbench.archs import get_submodule
from lpbench.methods import BITS, Choice, Method, Real, register
from lpbench.quant import QuantLinear, QuantSpec, fake_quant, replace_module


def int_op(bits: int) -> str:
    """Cost-table op family for a b-bit integer MAC: Horowitz gives INT8 and INT32; narrower integers
    are charged as INT8 (an upper bound; stated in the hardware-cost table)."""
    return "int8" if bits <= 8 else "int32"


@register
class RTN(Method):
    kind = "rtn"
    defaults = {"w_bits": 8, "a_bits": 8, "clip_ratio": 1.0, "w_clip_ratio": 1.0,
                "a_granularity": "per_row", "w_granularity": "per_row"}
    spec = {"w_bits": BITS, "a_bits": BITS, "clip_ratio": Real(0, 1, open_lo=True),
            "w_clip_ratio": Real(0, 1, open_lo=True),
            "a_granularity": Choice("per_row", "per_tensor", "per_column"),
            "w_granularity": Choice("per_row", "per_tensor")}

    def weight_spec(self) -> QuantSpec:
        return QuantSpec(bits=self.params["w_bits"], granularity=self.params["w_granularity"],
                         clip_ratio=self.params["w_clip_ratio"])

    def act_spec(self) -> QuantSpec | None:
        if self.params["a_bits"] >= 16:
            return None
        return QuantSpec(bits=self.params["a_bits"], granularity=self.params["a_granularity"],
                         clip_ratio=self.params["clip_ratio"])

    def apply(self, model, arch, artifact):
        wspec, aspec = self.weight_spec(), self.act_spec()
        for name in arch.linear_names(model):
            lin = get_submodule(model, name)
            replace_module(model, name, QuantLinear(lin, fake_quant(lin.weight.data, wspec), act_quant=aspec))
        return model

    def ops_per_token(self, dims):
        macs = dims.gemm_macs
        op = int_op(max(self.params["w_bits"], min(self.params["a_bits"], 16)))
        # runtime per-token quantization of each distinct linear input (q/k/v share one, gate/up share
        # one): one |x| compare (charged as an FP32 add) and one scale multiply per element; then one
        # dequantization multiply per GEMM output element.
        d, L = dims, dims.layers
        n_in = L * (2 * d.hidden + d.heads * d.head_dim + d.intermediate)
        n_out = L * ((d.heads + 2 * d.kv_heads) * d.head_dim + 2 * d.hidden + (d.mlp_matrices - 1) * d.intermediate)
        return {f"{op}_mult": macs, "int32_add": macs, "fp32_add": float(n_in),
                "fp32_mult": float(n_in + n_out)}
