"""Architecture registry: where each supported model family keeps its norms, linears, attention and MLP.

Every method asks this registry instead of hard-coding module names (the same idea as llm-compressor's
architecture mappings). A family is one :class:`ArchSpec`; adding a family is adding one entry to
``FAMILIES``. An unknown ``model_type`` fails with a message naming the known families and what an entry
has to provide.

Names are relative to one transformer block (``spec.layers`` is the dotted path to the ``ModuleList`` of
blocks). Norm *roles*:

``attn_in``   norm whose output feeds q/k/v (pre-norm) ...
``attn_out``  norm applied to the attention output (Gemma3 sandwich norm; BERT post-norm)
``mlp_in``    norm whose output feeds the MLP's first linear(s)
``mlp_out``   norm applied to the MLP output (Gemma3 sandwich norm; BERT post-norm)
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch.nn as nn


@dataclass(frozen=True)
class ArchSpec:
    family: str
    model_types: tuple[str, ...]
    layers: str                      # dotted path from the top-level model to the ModuleList of blocks
    norms: dict[str, str]            # role -> module name inside a block
    attn: dict[str, str]             # q/k/v/o -> linear name inside a block
    mlp: dict[str, str]              # gate/up/down (gated) or fc1/fc2 (standard) -> linear name
    embed: str                       # dotted path of the token embedding
    final_norm: str | None           # dotted path of the norm after the last block (None for BERT)
    lm_head: str | None              # dotted path of the LM head (None for encoders)
    norm_kind: str                   # "rmsnorm" | "layernorm"
    placement: str                   # "pre" | "sandwich" | "post"
    causal: bool = True
    extra_norms: tuple[str, ...] = field(default=())   # other norms inside a block (e.g. Gemma3 q_norm/k_norm)

    @property
    def mlp_kind(self) -> str:
        return "gated" if "gate" in self.mlp else "standard"

    # ---- navigation -------------------------------------------------------------------------------
    def blocks(self, model: nn.Module) -> list[nn.Module]:
        return list(get_submodule(model, self.layers))

    def block_linears(self) -> dict[str, str]:
        """role -> name inside a block, attention first then MLP, in execution order."""
        return {**self.attn, **self.mlp}

    def linear_names(self, model: nn.Module) -> list[str]:
        """Full names of every linear inside the transformer blocks (not embeddings, not the LM head)."""
        n = len(self.blocks(model))
        return [f"{self.layers}.{i}.{rel}" for i in range(n) for rel in self.block_linears().values()]

    def norm_names(self, model: nn.Module) -> list[str]:
        """Full names of every norm: per block (roles in order, then extra norms), then the final norm."""
        out = []
        for i in range(len(self.blocks(model))):
            out += [f"{self.layers}.{i}.{rel}" for rel in (*self.norms.values(), *self.extra_norms)]
        if self.final_norm:
            out.append(self.final_norm)
        return out

    def check(self, model: nn.Module) -> None:
        """Raise a clear error naming every module this spec expects but the model lacks."""
        missing = []
        names = [self.layers, self.embed] + [x for x in (self.final_norm, self.lm_head) if x]
        try:
            names += self.linear_names(model) + self.norm_names(model)
        except AttributeError:
            pass  # the layers path itself is missing; reported below
        for name in names:
            try:
                get_submodule(model, name)
            except AttributeError:
                missing.append(name)
        if missing:
            raise ValueError(
                f"model of type {type(model).__name__} does not match the '{self.family}' architecture "
                f"entry: missing modules {missing[:8]}{' ...' if len(missing) > 8 else ''}")


def get_submodule(model: nn.Module, dotted: str) -> nn.Module:
    mod = model
    for part in dotted.split("."):
        if not hasattr(mod, part):
            raise AttributeError(f"no submodule '{part}' in path '{dotted}'")
        mod = getattr(mod, part)
    return mod


_LLAMA_ATTN = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj"}
_GATED_MLP = {"gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}

FAMILIES: dict[str, ArchSpec] = {
    "llama": ArchSpec(
        family="llama", model_types=("llama", "mistral"), layers="model.layers",
        norms={"attn_in": "input_layernorm", "mlp_in": "post_attention_layernorm"},
        attn=_LLAMA_ATTN, mlp=_GATED_MLP, embed="model.embed_tokens", final_norm="model.norm",
        lm_head="lm_head", norm_kind="rmsnorm", placement="pre"),
    "qwen2": ArchSpec(
        family="qwen2", model_types=("qwen2",), layers="model.layers",
        norms={"attn_in": "input_layernorm", "mlp_in": "post_attention_layernorm"},
        attn=_LLAMA_ATTN, mlp=_GATED_MLP, embed="model.embed_tokens", final_norm="model.norm",
        lm_head="lm_head", norm_kind="rmsnorm", placement="pre"),
    "gemma3": ArchSpec(
        family="gemma3", model_types=("gemma3_text", "gemma3"), layers="model.layers",
        norms={"attn_in": "input_layernorm", "attn_out": "post_attention_layernorm",
               "mlp_in": "pre_feedforward_layernorm", "mlp_out": "post_feedforward_layernorm"},
        attn=_LLAMA_ATTN, mlp=_GATED_MLP, embed="model.embed_tokens", final_norm="model.norm",
        lm_head="lm_head", norm_kind="rmsnorm", placement="sandwich",
        extra_norms=("self_attn.q_norm", "self_attn.k_norm")),
    "opt": ArchSpec(
        family="opt", model_types=("opt",), layers="model.decoder.layers",
        norms={"attn_in": "self_attn_layer_norm", "mlp_in": "final_layer_norm"},
        attn={"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
              "o": "self_attn.out_proj"},
        mlp={"fc1": "fc1", "fc2": "fc2"}, embed="model.decoder.embed_tokens",
        final_norm="model.decoder.final_layer_norm", lm_head="lm_head", norm_kind="layernorm",
        placement="pre"),
    "bert": ArchSpec(
        family="bert", model_types=("bert",), layers="encoder.layer",
        norms={"attn_out": "attention.output.LayerNorm", "mlp_out": "output.LayerNorm"},
        attn={"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "o": "attention.output.dense"},
        mlp={"fc1": "intermediate.dense", "fc2": "output.dense"}, embed="embeddings.word_embeddings",
        final_norm=None, lm_head=None, norm_kind="layernorm", placement="post", causal=False),
}


def spec_for_model_type(model_type: str) -> ArchSpec:
    for spec in FAMILIES.values():
        if model_type in spec.model_types:
            return spec
    known = {name: list(s.model_types) for name, s in FAMILIES.items()}
    raise ValueError(
        f"unsupported architecture: model_type '{model_type}'. Known families (model_types): {known}. "
        "To add one, add an ArchSpec to lpbench.archs.FAMILIES naming its block list, norms (by role), "
        "attention linears q/k/v/o, MLP linears (gate/up/down or fc1/fc2), embedding, final norm and LM head.")


def activations_pass(model: nn.Module, arch: ArchSpec, ids):
    """One forward pass for passes that only read activations inside the model (calibration statistics,
    hooks on block linears and norms): a causal LM computes its logits for the last position only
    (transformers' ``logits_to_keep=1``), since the LM head is most of a small model's FLOPs (Gemma 3:
    262k x 640, 1.8x its 18 blocks) and nothing here reads it. Every activation before the head is the
    same as in a full pass; models whose forward has no ``logits_to_keep`` run in full."""
    if not arch.causal:
        return model(ids)
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        return model(ids, use_cache=False, logits_to_keep=1)
    return model(ids, use_cache=False)


def get_arch(model: nn.Module) -> ArchSpec:
    """The registry entry for a loaded transformers model, checked against the model's modules."""
    spec = spec_for_model_type(model.config.model_type)
    spec.check(model)
    return spec
