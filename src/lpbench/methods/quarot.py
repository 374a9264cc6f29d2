"""``quarot``: QuaRot rotation (Ashkboos et al. 2024) + RTN W4A4, the rotation half of RRS.

Implements the reading of the official code (``spcl/QuaRot`` and its copy in
``Coco58323/Rotated_Runtime_Smooth``): norm fusion, the random-Hadamard residual rotation R1
(:func:`lpbench.rotation.rotate_model`), the V/O head rotation, online Hadamards before down_proj and
o_proj (folded into the consuming weight, so the FP model is unchanged), then RTN (or GPTQ) INT4 weights,
per-token INT4 inputs of every block linear, LM head in full precision, KV16 or KV4
(:mod:`lpbench.kvcache`). SmolLM2's 9 heads have no Hadamard of order 9, so a full Hadamard of order
heads·head_dim runs online before o_proj instead.

Online Hadamards are deterministic (``get_hadK`` matrices, as the official ``matmul_hadU_cuda``): a full
one before down_proj; before o_proj one of order ``num_heads`` across the heads, so with the offline per-head
V/O fold the o_proj input sees ``H_heads ⊗ H_head_dim`` (SmolLM2's 9 heads: a full-width extension).

Sandwich norms (Gemma-3): ``sandwich_rotation: online`` (the default for that family) rotates online after
each pre-norm, gain included, and leaves the residual stream unrotated; ``refuse`` raises. ``seed`` drives
every random choice (the signs of R1, hence the method's GPTQ set); None = the config's ``seed``. Replicates
over the method's own randomness are config entries that differ only in ``seed``.

Each step, why Gemma-3 is rotated after the gain, and the seed: docs/papers/rrs.md.
"""
from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.kvcache import attach_kv_quant
from lpbench.methods import BITS, Bool, Choice, Int, Method, Real, register
from lpbench.methods.rtn import RTN, int_op
from lpbench.quant import act_spec, quantize_block_linears, replace_module
from lpbench.rotation import (OnlineHadamard, fold_online_rotation, fuse_norms, hadamard_matrix, hadamard_ops,
                              has_hadamard, rotate_model, rotation_matrix)

_F64 = torch.float64


# ---- rotation -----------------------------------------------------------------------------------------------
class PostNormRotation(nn.Module):
    """A norm followed by an online rotation of its output: ``x ↦ norm(x)·Q`` (sandwich-norm variant)."""

    def __init__(self, norm: nn.Module, rotation: OnlineHadamard):
        super().__init__()
        self.norm, self.rotation = norm, rotation

    def forward(self, x):
        return self.rotation(self.norm(x))


@torch.no_grad()
def _rotate_sandwich(model: nn.Module, arch: ArchSpec, seed: int, skip: Collection[nn.Module] = ()) -> None:
    """Exact rotation of a sandwich-norm (Gemma-3) model: an online Hadamard ``Q`` after each pre-norm
    (on ``x̂ ⊙ γ``, the gain kept in the norm) and ``W ← W·Q`` for the linears it feeds (not those in
    ``skip``, whose weight is replaced afterwards); the residual stream, embeddings, post-norms and LM head
    are untouched. Every pre-norm's ``Q`` is the same matrix (order hidden, ``seed``): built once."""
    if arch.norm_kind != "rmsnorm":
        raise NotImplementedError(f"{arch.family}: sandwich rotation needs RMSNorm")
    d = get_submodule(model, arch.embed).weight.shape[1]
    mlp_in = ["gate", "up"] if arch.mlp_kind == "gated" else ["fc1"]
    q64 = OnlineHadamard(d, seed=seed).matrix()
    for block in arch.blocks(model):
        for norm_role, roles in (("attn_in", [arch.attn[r] for r in "qkv"]),
                                 ("mlp_in", [arch.mlp[r] for r in mlp_in])):
            rot = OnlineHadamard(d, seed=seed)
            for rel in roles:
                lin = get_submodule(block, rel)
                if lin not in skip:
                    lin.weight.copy_(lin.weight.to(_F64) @ q64)
            rel = arch.norms[norm_role]
            replace_module(block, rel, PostNormRotation(get_submodule(block, rel), rot))


@torch.no_grad()
def _rotate_ov(block: nn.Module, arch: ArchSpec, h: torch.Tensor, skip: Collection[nn.Module] = ()) -> None:
    """Fold the Hadamard ``h`` of order head_dim into every head of v_proj's output, undone in o_proj's
    weight (a weight in ``skip``, replaced afterwards, is left; v's bias is always rotated)."""
    head_dim = h.shape[0]
    v, o = get_submodule(block, arch.attn["v"]), get_submodule(block, arch.attn["o"])
    if v not in skip:
        wv = v.weight.to(_F64).reshape(-1, head_dim, v.in_features)        # (kv_heads, hd, in)
        v.weight.copy_(torch.einsum("ji,hjk->hik", h, wv).reshape(v.weight.shape))
    if v.bias is not None:
        v.bias.copy_((v.bias.to(_F64).reshape(-1, head_dim) @ h).reshape(-1))
    if o not in skip:
        wo = o.weight.to(_F64).reshape(o.out_features, -1, head_dim)        # (out, heads, hd)
        o.weight.copy_((wo @ h).reshape(o.weight.shape))


def head_dim_of(model: nn.Module) -> int:
    cfg = model.config
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def o_proj_transform(heads: int, head_dim: int) -> OnlineHadamard:
    """The online transform before o_proj (after the per-head ``H_head_dim`` fold of :func:`_rotate_ov`):
    QuaRot's ``H_heads`` across the heads where a Hadamard of order ``heads`` exists, else (extension) a
    full-width Hadamard of order ``heads·head_dim``. Deterministic."""
    if has_hadamard(heads):
        return OnlineHadamard(heads * head_dim, head_dim=head_dim, across_heads=True)
    return OnlineHadamard(heads * head_dim)


def down_proj_transform(intermediate: int) -> OnlineHadamard:
    """QuaRot's online full Hadamard before down_proj (order ``intermediate``, deterministic)."""
    return OnlineHadamard(intermediate)


@torch.no_grad()
def quarot_rotate(model: nn.Module, arch: ArchSpec, seed: int, kind: str = "hadamard",
                  sandwich: str = "online", skip: Collection[str] = ()) -> dict[str, nn.Module]:
    """Rotate ``model`` in place as QuaRot does (see docs/papers/rrs.md) and return the online input
    transforms ``{full linear name: OnlineHadamard}`` (already folded into those linears' weights).

    ``skip``: full names of block linears whose weight is replaced right after (by GPTQ weights computed in
    this rotation, :meth:`W4A4Base.replaced_linears`): their weight is not rotated (it would never be read),
    everything else — biases, norms, embedding, LM head, the other weights — is as without ``skip``."""
    skip_mods = {get_submodule(model, name) for name in skip}
    if arch.placement == "sandwich":
        if sandwich != "online":
            raise NotImplementedError(
                f"{arch.family} has sandwich norms: rotation is exact only with online post-norm rotations "
                "(sandwich_rotation: online); refused as configured")
        _rotate_sandwich(model, arch, seed, skip_mods)
    else:
        fuse_norms(model, arch)                   # raises for LayerNorm / post-norm families
        d = get_submodule(model, arch.embed).weight.shape[1]
        rotate_model(model, arch, rotation_matrix(d, kind, seed), skip=skip_mods)
    hd = head_dim_of(model)
    h_head = hadamard_matrix(hd)
    transforms = {}
    down_role = "down" if arch.mlp_kind == "gated" else "fc2"
    for i, block in enumerate(arch.blocks(model)):
        _rotate_ov(block, arch, h_head, skip_mods)
        o = get_submodule(block, arch.attn["o"])
        down = get_submodule(block, arch.mlp[down_role])
        for lin, rel, rot in ((o, arch.attn["o"], o_proj_transform(o.in_features // hd, hd)),
                              (down, arch.mlp[down_role], down_proj_transform(down.in_features))):
            if lin not in skip_mods:
                fold_online_rotation(lin, rot)
            transforms[f"{arch.layers}.{i}.{rel}"] = rot
    return transforms


def method_seed(params: dict) -> int:
    """The method's seed: ``seed`` if set, else the seed torch was seeded with (the config's ``seed`` in
    every pipeline job, which also writes it into the entry)."""
    return int(params["seed"]) if params.get("seed") is not None else int(torch.initial_seed())


def rotation_ops(dims, sandwich: bool) -> tuple[float, float]:
    """(adds, mults) per token of the online Hadamards: before o_proj (order heads across the heads, once
    per head_dim position; order heads·head_dim where no Hadamard of order heads exists), before down_proj
    (order intermediate), and for sandwich norms two of order hidden after the pre-norms."""
    if has_hadamard(dims.heads):
        a_o, m_o = (dims.head_dim * v for v in hadamard_ops(dims.heads))
    else:
        a_o, m_o = hadamard_ops(dims.heads * dims.head_dim)
    a_d, m_d = hadamard_ops(dims.intermediate)
    adds, mults = a_o + a_d, m_o + m_d
    if sandwich:
        a_h, m_h = hadamard_ops(dims.hidden)
        adds, mults = adds + 2 * a_h, mults + 2 * m_h
    return dims.layers * adds, dims.layers * mults


class W4A4Base(Method):
    """Parameters shared by the RRS-paper methods (see :mod:`lpbench.quant` and :mod:`lpbench.kvcache`)."""

    defaults = {"w_bits": 4, "a_bits": 4, "clip_ratio": 1.0, "w_clip": "none", "weights": "rtn",
                "act_order": False, "kv_bits": 16, "kv_asym": False}
    spec = {"w_bits": BITS, "a_bits": BITS, "clip_ratio": Real(0, 1, open_lo=True), "w_clip": Choice("none", "mse"),
            "weights": Choice("rtn", "gptq"), "act_order": Bool, "kv_bits": BITS, "kv_asym": Bool}
    #: float format of the method's runtime scale/rotation arithmetic in the op counts (QuaRot's and
    #: RRS's CUDA kernels dequantize and rescale in FP16)
    scale_fmt = "fp16"

    def replaced_linears(self, model, arch, artifact) -> frozenset[str]:
        """Full names of the block linears whose weight :meth:`finish` replaces by the artifact's GPTQ weight
        (computed in the method's own transform): a rotation need not rewrite those weights."""
        weights = artifact.get("gptq_weights") if self.params["weights"] == "gptq" else None
        return frozenset(n for n in arch.linear_names(model) if n in weights) if weights else frozenset()

    def finish(self, model, arch, artifact, act_quant_for, transforms=None):
        """Quantize weights (RTN or the artifact's GPTQ weights) and activations, attach KV quantization."""
        weights = artifact.get("gptq_weights") if self.params["weights"] == "gptq" else None
        if self.params["weights"] == "gptq" and weights is None:
            raise ValueError(f"method '{self.name}': weights: gptq but no GPTQ weights were given (the "
                             "gptq_weights rule computes them: lpbench.methods.gptq)")
        quantize_block_linears(model, arch, self.params["w_bits"], act_quant_for, transforms,
                               w_clip=self.params["w_clip"], weights=weights,
                               clip_scales=artifact.get("clip_scales"))
        attach_kv_quant(model, arch, self.params["kv_bits"], asym=self.params["kv_asym"])
        return model

    def plain_ops(self, dims) -> dict[str, float]:
        """Per-token ops of plain W4A4 (the suite's RTN accounting), the base every variant adds to."""
        return RTN(w_bits=self.params["w_bits"], a_bits=self.params["a_bits"]).ops_per_token(dims)

    def kv_ops(self, dims) -> dict[str, float]:
        """K Hadamard (q and k) and K/V quantization per token when the KV cache is quantized."""
        if self.params["kv_bits"] >= 16:
            return {}
        a, m = hadamard_ops(dims.head_dim)
        n_q, n_kv = dims.heads, dims.kv_heads
        f = self.scale_fmt
        return {f"{f}_add": dims.layers * (a * (n_q + n_kv) + 2 * n_kv * dims.head_dim),
                f"{f}_mult": dims.layers * (m * (n_q + n_kv) + 2 * n_kv * dims.head_dim)}

    @staticmethod
    def merge(*parts: dict[str, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for p in parts:
            for k, v in p.items():
                out[k] = out.get(k, 0.0) + float(v)
        return out


@register
class QuaRot(W4A4Base):
    kind = "quarot"
    defaults = {**W4A4Base.defaults, "rotation": "hadamard", "seed": None, "sandwich_rotation": "online"}
    spec = {**W4A4Base.spec, "seed": Int(0, none=True), "rotation": Choice("hadamard", "orthogonal"),
            "sandwich_rotation": Choice("online", "refuse")}

    def transform(self, model, arch, artifact, skip=()):
        """Rotate (R1 from the method's seed); return (act_quant_for, transforms). ``skip``: block linears
        whose weight is replaced afterwards (:func:`quarot_rotate`)."""
        transforms = quarot_rotate(model, arch, method_seed(self.params), self.params["rotation"],
                                   self.params["sandwich_rotation"], skip=skip)
        spec = act_spec(self.params["a_bits"], self.params["clip_ratio"])
        return (lambda role: spec), transforms

    def apply(self, model, arch, artifact):
        skip = self.replaced_linears(model, arch, artifact)
        act_quant_for, transforms = self.transform(model, arch, artifact, skip=skip)
        return self.finish(model, arch, artifact, act_quant_for, transforms)

    def extra_ops(self, dims, sandwich: bool = False) -> dict[str, float]:
        adds, mults = rotation_ops(dims, sandwich)
        f = self.scale_fmt
        return self.merge({f"{f}_add": adds, f"{f}_mult": mults}, self.kv_ops(dims))

    def ops_per_token(self, dims):
        return self.merge(self.plain_ops(dims), self.extra_ops(dims))


__all__ = ["QuaRot", "W4A4Base", "quarot_rotate", "PostNormRotation", "rotation_ops", "int_op", "method_seed",
           "o_proj_transform", "down_proj_transform"]
