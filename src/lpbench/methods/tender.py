"""``tender``: decomposed activation quantization with power-of-two-apart group scales (Tender, ISCA 2024).

Own implementation, written after reading the official code ``snu-comparch/Tender`` (files named below).
Every behaviour listed here was checked in that code; where this module deliberately differs, it says so.

Algorithm (one linear-layer input X of shape (..., tokens, channels))
----------------------------------------------------------------------
Verified in ``models/modeling_llama_tender.py`` and ``models/modeling_opt_tender.py`` (identical blocks
for q/k/v, o, gate/up, down, fc1, fc2):

1. **Row chunking.** Rows are split into chunks of ``chunk`` (256) tokens; the last chunk is zero-padded
   (``torch.cat((hidden_states, padding))``) *before* any statistic is taken, so the padding rows take
   part in the channel bias, TMax and CMax of the last chunk. We do the same (a length that is not a
   multiple of the chunk therefore gives exactly what processing the chunks separately gives).
   The official code flattens batch×tokens into rows; we chunk the token axis of each leading index,
   which is identical for batch size 1 (the official evaluation, and the suite's default) and keeps chunk
   positions meaningful for calibrated per-position statistics. Some families flatten batch×tokens
   themselves before a linear (OPT's MLP hands fc1/fc2 a 2-D (B·T, C) tensor); :meth:`Tender.apply`
   installs a forward pre-hook on the model that records the batch size, and :class:`TenderLinear`
   views such a 2-D input as (B, T, C) again, so every batch size gives exactly the per-sequence result
   (tested: batch 2 equals two batch-1 runs).
2. **Channel bias.** b[j] = (max_t X[t, j] + min_t X[t, j]) / 2 per chunk (runtime), or the calibrated
   bias stored per chunk position (``h_ch_bias[:chunks]``). X' = X − b. The bias is **not** added back to
   the input: the official code adds ``b @ W.T`` after the GEMM with the *unquantized* weight
   (``gate_ch_bias = torch.matmul(ch_bias, gate_weight.transpose(-1,-2))`` where ``gate_weight`` is
   ``self.gate_proj.weight.data``, the FP weight), i.e. Y = X̂'·Ŵᵀ + b·Wᵀ (+ layer bias). That is *not*
   the same as (X̂' + b)·Ŵᵀ when the weight is quantized: the two differ by b·(W − Ŵ)ᵀ. :class:`TenderLinear`
   reproduces the official form; :func:`tender_decompose` returns X̂' + b (the input-side form) for use
   as a plain fake-quantizer and documents the difference.
   Sites with a bias (verified): Llama q/k/v and gate/up only (o_proj and down_proj have none);
   OPT q/k/v, out_proj and fc1; OPT fc2 (post-ReLU) has none and is quantized **unsigned**
   (``q_max = (2**self.q_bits-1)``, ``clamp(min=0, max=q_max)``).
3. **TMax / CMax** of |X'| over the chunk (tensor max and per-channel max).
4. **Thresholds** θ_i = TMax / 2^(G−1−i), i = 0..G−1. Channel j goes to group i with θ_{i−1} < CMax[j] ≤ θ_i
   (group 0: CMax ≤ θ_0) — "round-up". "Round-down" puts it in group i−1 (group 0 stays 0), so values up
   to 2× the group's range are clipped (``calibration/*/calibration.py``, ``group_index_rdn``).
5. **Scales** s_i = θ_i / q_max, q_max = 2^(b−1) − 1 (signed) or 2^b − 1 (unsigned); codes
   ``round(x / s).clamp(-(q_max+1), q_max)`` (``sym_quant``: torch.round = half to even; the scale is
   floored at 1e-9, ``torch.clamp(scale.abs(), min=1e-9)``). Every element belongs to exactly one group,
   so the official "dequantize each group and sum" equals one dequantized tensor (bit-identical in FP32).
6. **Weights**: per-output-channel symmetric absmax RTN at the same bit width (``sym_quant`` with
   ``scale = max|W| per row / q_max``) — :func:`lpbench.quant.fake_quant` with ``per_row``. Not in the
   official code: ``w_clip: mse`` takes the per-row scale from QuaRot's MSE clip search instead
   (:func:`lpbench.quant.weight_quant`), for comparisons on equal weights with baselines that use it.

Calibration (``calibration/{llama,opt}/calibration.py``, ``run_calibration.py``, ``scripts/{llama,opt}.py``)
-----------------------------------------------------------------------------------------------------------
* Calibration runs the **quantized** model (the Tender modeling file with q_bits/decomp_factor set, no
  bias or scale loaded, i.e. runtime bias, runtime TMax/CMax, round-up), one sequence at a time.
* ``get_bias``: per chunk position, the mean over samples of the runtime bias.
* ``get_scale_factor``: per chunk position, TMax = max over samples, CMax = max over samples; from them
  the *static* group index for round-up and round-down; ``select_best_scheme`` evaluates the NLL of the
  first calibration sequence with each (static TMax + group index, runtime bias, since no bias file is
  loaded in that run) and keeps the lower (``np.argmin`` → ties go to round-down).
* Evaluation (Table 2) then uses the calibrated bias **and** the static TMax and group index:
  nothing is computed from the evaluated activations at runtime; values beyond the static TMax clip.
  Both calibration scripts run the same configuration, so one pass here collects both.
We reproduce this with ``static=True`` (default). ``static=False`` calibrates only the bias and computes
TMax/CMax/groups at runtime (the official code run with ``--bias`` but without ``--scale_factor``).
``calib_windows`` limits the pass to the first N shared calibration windows (None: all of them); the
official scripts use 128 × 2048 tokens, the CPU default far fewer (see config/config.yaml).
When the evaluation needs more chunk positions than were calibrated, the last calibrated position is
repeated (the official code would fail with a shape error).

"all" scope (``quant_mha``), verified in both modeling files
---------------------------------------------------------------
Q (already scaled by 1/sqrt(d)) is chunked over query tokens per head, channel-biased and decomposed;
K gets a per-head channel bias over all key tokens and per-token (row) symmetric quantization; the
score is Q̂'·K̂'ᵀ + b_q·Kᵀ + Q·b_kᵀ − b_q·b_kᵀ (``o1/o2/o3_ch_bias``, with the unquantized Q and K);
softmax probabilities are decomposed per head over query-row chunks, grouped along key positions,
**unsigned**, no bias; V is per-channel (per head dimension) symmetric. Calibrated: q bias (mean),
k bias (mean), q/s TMax and CMax (max) and static k/v scales (max). Implemented through a registered
transformers attention function for families whose attention uses ``ALL_ATTENTION_FUNCTIONS`` without
extras (llama/mistral, qwen2, opt); other families raise ``NotImplementedError`` (gemma3 adds logit
soft-capping/scaling choices and bert is an encoder with its own attention module).
Note: the official ``scripts/llama.py`` loads the key bias under ``"k_zero_bias"`` while ``get_bias`` saves
``"k_ch_bias"``, so the official Llama "all" path with a bias file would fail; only OPT "all" is in the
paper's scripts (Table 3).

Deliberate differences: the official evaluation runs the model in FP16 (``torch_dtype=torch.float16``);
this suite runs FP32 (the quantization arithmetic is FP32 in both: ``sym_quant`` casts to FP32).
The LM head stays in full precision, as in the official default (``quant_lm_head = False``).

The decomposition (steps 1–5) and the integer datapath that executes it are in :mod:`lpbench.accel.tender`;
this module is the method: calibration, the quantized linear and attention modules, and op counts.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lpbench.accel.tender import (SCALE_FLOOR, SCHEMES, TenderParts, chunk_rows, decompose, exactness_check,
                                  take_positions, tender_group_index, unchunk_rows)
from lpbench.archs import ArchSpec, get_submodule
from lpbench.methods import BITS, Bool, Choice, Int, Method, ModelDims, register
from lpbench.quant import QuantLinear, QuantSpec, fake_quant, replace_module, weight_quant

ATTN_IMPL = "lpbench_tender"

# Group counts (decomp_factor) of the official scripts (scripts/utils.py; table_2.py uses 14 for LLaMA-1
# at both widths). Keyed by (model_type, hidden, layers, intermediate, max_position_embeddings or None).
_G_TABLE = {
    ("opt", 4096, 32, 16384, None): ("OPT-6.7B", {4: 8, 8: 4}),
    ("opt", 5120, 40, 20480, None): ("OPT-13B", {4: 8, 8: 4}),
    ("opt", 9216, 64, 36864, None): ("OPT-66B", {4: 10, 8: 8}),
    ("llama", 4096, 32, 11008, 4096): ("Llama-2-7B", {4: 14, 8: 8}),
    ("llama", 5120, 40, 13824, 4096): ("Llama-2-13B", {4: 16, 8: 14}),
    ("llama", 8192, 80, 28672, 4096): ("Llama-2-70B", {4: 20, 8: 16}),
    ("llama", 4096, 32, 11008, 2048): ("LLaMA-7B", {4: 14, 8: 14}),
    ("llama", 5120, 40, 13824, 2048): ("LLaMA-13B", {4: 14, 8: 14}),
}
# Default for models outside the table: the smallest model of the family in the paper
# (gated-MLP families → Llama-2-7B's 14/8, standard-MLP families → OPT-6.7B's 8/4).
_G_DEFAULT = {"gated": {4: 14, 8: 8}, "standard": {4: 8, 8: 4}}


def resolve_groups(bits: int, model_type: str | None = None, hidden: int | None = None,
                   layers: int | None = None, intermediate: int | None = None,
                   max_positions: int | None = None, mlp_kind: str = "gated") -> tuple[int, str]:
    """Number of groups G for a model: the official value when the model is in the paper's table,
    else the family default. Widths other than 4/8 use the INT4 column for bits <= 4, else INT8.
    Without ``max_positions`` a Llama shape matches Llama-2 first (LLaMA-1 has the same shapes).
    Returns (G, where it came from)."""
    col = 4 if bits <= 4 else 8
    for (mt, h, nl, inter, mp), (label, table) in _G_TABLE.items():
        if (mt == model_type and h == hidden and nl == layers and inter == intermediate
                and (mp is None or max_positions is None or mp == max_positions)):
            return table[col], f"official decomp_factor of {label} at INT{col}"
    return _G_DEFAULT[mlp_kind][col], f"default for {mlp_kind}-MLP families at INT{col} (model not in the paper)"


# ---------------------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------------------
def _fold_stat(t: torch.Tensor, core: int, keep: int) -> torch.Tensor:
    """Reshape (*batch, *kept(keep dims), *core(core dims)) → (B, *kept, *core)."""
    return t.reshape(-1, *t.shape[t.dim() - core - keep:])


class _Collector:
    """Running calibration statistics of one input site (sums for the mean, maxima for the rest)."""

    def __init__(self):
        self.sum: dict[str, torch.Tensor] = {}
        self.count: dict[str, int] = {}
        self.max: dict[str, torch.Tensor] = {}

    def add_mean(self, key, t):                        # t: (B, ...) → accumulate sum over B
        s = t.double().sum(0)
        if key in self.sum and self.sum[key].shape != s.shape:
            raise ValueError(f"Tender calibration: '{key}' changed shape {tuple(self.sum[key].shape)} → "
                             f"{tuple(s.shape)}; use calibration windows of one length")
        self.sum[key] = self.sum[key] + s if key in self.sum else s
        self.count[key] = self.count.get(key, 0) + t.shape[0]

    def add_max(self, key, t):
        m = t.float().amax(0)
        if key in self.max and self.max[key].shape != m.shape:
            raise ValueError(f"Tender calibration: '{key}' changed shape {tuple(self.max[key].shape)} → "
                             f"{tuple(m.shape)}; use calibration windows of one length")
        self.max[key] = torch.maximum(self.max[key], m) if key in self.max else m

    def result(self) -> dict[str, torch.Tensor]:
        out = {k: (v / self.count[k]).float() for k, v in self.sum.items()}
        out.update(self.max)
        return out


class TenderActQuant(nn.Module):
    """Tender quantizer of one linear-input site (shared by the linears that read the same tensor,
    e.g. q/k/v: the decomposition is computed once and reused — identity-cached for ``consumers`` calls).
    """

    def __init__(self, bits: int, groups: int, chunk: int, unsigned: bool, use_bias: bool, scheme: str,
                 consumers: int = 1):
        super().__init__()
        self.bits, self.groups, self.chunk = bits, groups, chunk
        self.unsigned, self.use_bias, self.scheme = unsigned, use_bias and not unsigned, scheme
        self.consumers = consumers
        self.register_buffer("bias_cal", None)           # (n_cal, C)
        self.register_buffer("tmax_cal", None)           # (n_cal,)
        self.register_buffer("group_cal", None)          # (n_cal, C)
        self.collector: _Collector | None = None
        self._cache = None

    def forward(self, x: torch.Tensor) -> TenderParts:
        if self._cache is not None and self._cache[0] is x:
            _, parts, left = self._cache
            self._cache = (x, parts, left - 1) if left > 1 else None
            return parts
        bias = self.bias_cal if self.use_bias else False      # None (not calibrated) → runtime bias
        parts = decompose(x, self.bits, self.groups, self.chunk, bias, self.scheme, self.unsigned,
                           self.tmax_cal, self.group_cal)
        if self.collector is not None:
            if parts.bias is not None and self.bias_cal is None:
                self.collector.add_mean("bias", _fold_stat(parts.bias.squeeze(-2), 2, 0))
            if parts.cmax is not None:
                self.collector.add_max("tmax", _fold_stat(parts.tmax, 1, 0))
                self.collector.add_max("cmax", _fold_stat(parts.cmax, 2, 0))
        self._cache = (x, parts, self.consumers - 1) if self.consumers > 1 else None
        return parts

    def extra_repr(self) -> str:
        mode = "static" if self.tmax_cal is not None else "runtime"
        b = "none" if not self.use_bias else ("calibrated" if self.bias_cal is not None else "runtime")
        return (f"bits={self.bits}, groups={self.groups}, chunk={self.chunk}, unsigned={self.unsigned}, "
                f"bias={b}, scales={mode}, scheme={self.scheme}")


class _BatchContext:
    """Batch size of the current model call (set by a forward pre-hook of the model, see
    :meth:`Tender.apply`), so that a linear that receives flattened (B·T, C) rows can restore (B, T, C)."""

    def __init__(self):
        self.batch = 1

    def hook(self, _module, args, kwargs):
        t = kwargs.get("input_ids")
        if t is None:
            t = args[0] if args else kwargs.get("inputs_embeds")
        self.batch = int(t.shape[0]) if isinstance(t, torch.Tensor) and t.dim() >= 2 else 1


class TenderLinear(QuantLinear):
    """Linear with RTN per-output-channel weights and a Tender input quantizer, computing the official
    Y = X̂'·Ŵᵀ + b·Wᵀ (+ layer bias) with b·Wᵀ from the unquantized weight: precomputed per calibrated
    chunk position (``bias_proj``), or computed at runtime from ``fp_weight`` for a runtime bias."""

    def __init__(self, linear: nn.Linear, weight: torch.Tensor, act: TenderActQuant,
                 fp_weight: torch.Tensor | None = None, batch_ctx: "_BatchContext | None" = None):
        super().__init__(linear, weight)
        self.act = act
        self.batch_ctx = batch_ctx
        self.register_buffer("bias_proj", None)
        self.register_buffer("fp_weight", None)
        if act.use_bias:
            if act.bias_cal is not None:
                self.bias_proj = (act.bias_cal.float() @ linear.weight.detach().float().T).to(weight.dtype)
            else:
                self.fp_weight = (fp_weight if fp_weight is not None else linear.weight).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.batch_ctx.batch if self.batch_ctx is not None else 1
        if x.dim() == 2 and b > 1 and x.shape[0] % b == 0:
            # a family that flattened batch×tokens (OPT's MLP): chunk each sequence, not the flat rows
            return self._forward(x.reshape(b, x.shape[0] // b, x.shape[1])).reshape(x.shape[0], -1)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.act(x)
        y = F.linear(parts.deq.to(self.weight.dtype), self.weight)          # (..., n, chunk, out)
        if parts.bias is not None:
            if self.bias_proj is not None:
                y = y + take_positions(self.bias_proj, y.shape[-3], -2).unsqueeze(-2)
            else:
                y = y + parts.bias.to(self.fp_weight.dtype) @ self.fp_weight.T
        y = unchunk_rows(y, parts.tokens)
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}"


def _sym_fake(t: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    qmax = 2 ** (bits - 1) - 1
    scale = scale.clamp(min=SCALE_FLOOR)
    return torch.round(t / scale).clamp(-(qmax + 1), qmax) * scale


class TenderAttention(nn.Module):
    """Tender(all) attention state of one attention module (see module docstring, "all" scope)."""

    def __init__(self, bits: int, groups: int, chunk: int, scheme: str):
        super().__init__()
        self.bits, self.groups, self.chunk, self.scheme = bits, groups, chunk, scheme
        for name in ("q_bias", "k_bias", "q_tmax", "q_group", "s_tmax", "s_group", "k_scale", "v_scale"):
            self.register_buffer(name, None)
        self.collector: _Collector | None = None

    def forward(self, query, key, value, attention_mask, scaling):
        dtype = query.dtype
        bits, G, chunk = self.bits, self.groups, self.chunk
        qmax = 2 ** (bits - 1) - 1
        q = query.float() * scaling
        k, v = key.float(), value.float()
        T, S = q.shape[-2], k.shape[-2]
        col = self.collector
        # keys: channel bias over all key tokens, then per-token symmetric
        kb = self.k_bias if self.k_bias is not None else (k.amax(-2, keepdim=True) + k.amin(-2, keepdim=True)) / 2
        kc = k - kb
        if self.k_scale is not None:
            ks = take_positions(self.k_scale, S, -2)
        else:
            ks = kc.abs().amax(-1, keepdim=True) / qmax
        khat = _sym_fake(kc, ks, bits)
        # queries: Tender decomposition with channel bias
        qp = decompose(q, bits, G, chunk, self.q_bias, self.scheme,
                        False, self.q_tmax, self.q_group)
        qc, _ = chunk_rows(q, chunk)
        kT = khat.transpose(-1, -2).unsqueeze(-3)                    # (B,H,1,d,S)
        scores = qp.deq @ kT
        qb, kbT = qp.bias, kb.transpose(-1, -2).unsqueeze(-3)      # (...,n,1,d), (B|1,H,1,d,1)
        scores = scores + qb @ k.transpose(-1, -2).unsqueeze(-3) + qc @ kbT - qb @ kbT
        scores = unchunk_rows(scores, T)
        if attention_mask is not None:
            if attention_mask.dtype == torch.bool:
                attention_mask = torch.zeros_like(attention_mask, dtype=scores.dtype).masked_fill(
                    ~attention_mask, torch.finfo(scores.dtype).min)
            scores = scores + attention_mask[..., :S].float()
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
        # probabilities: unsigned decomposition, grouped along key positions, no bias
        s_group = None
        if self.s_group is not None:
            s_group = self.s_group[..., :S] if self.s_group.shape[-1] >= S else torch.cat(
                [self.s_group, self.s_group[..., -1:].expand(*self.s_group.shape[:-1], S - self.s_group.shape[-1])], -1)
        pp = decompose(probs, bits, G, chunk, False, self.scheme, True, self.s_tmax, s_group)
        phat = unchunk_rows(pp.deq, T)
        vs = self.v_scale if self.v_scale is not None else v.abs().amax(-2, keepdim=True) / qmax
        vhat = _sym_fake(v, vs, bits)
        out = phat @ vhat
        if col is not None:
            if self.k_bias is None:
                col.add_mean("k_bias", _fold_stat(kb, 2, 1))
            if self.q_bias is None:
                col.add_mean("q_bias", _fold_stat(qp.bias.squeeze(-2), 2, 1))
            if qp.cmax is not None:
                col.add_max("q_tmax", _fold_stat(qp.tmax, 1, 1))
                col.add_max("q_cmax", _fold_stat(qp.cmax, 2, 1))
            if pp.cmax is not None:
                col.add_max("s_tmax", _fold_stat(pp.tmax, 1, 1))
                col.add_max("s_cmax", _fold_stat(pp.cmax, 2, 1))
            if self.k_scale is None:
                col.add_max("k_scale", _fold_stat(ks, 2, 1))
            if self.v_scale is None:
                col.add_max("v_scale", _fold_stat(vs, 2, 1))
        return out.transpose(1, 2).contiguous().to(dtype), probs.to(dtype)


def _repeat_kv(t: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return t
    b, h, s, d = t.shape
    return t[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def tender_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention-interface function ("lpbench_tender"): Tender(all) when the module carries
    a :class:`TenderAttention` state, plain eager attention otherwise."""
    n_rep = query.shape[1] // key.shape[1]
    key, value = _repeat_kv(key, n_rep), _repeat_kv(value, n_rep)
    scaling = 1.0 if scaling is None else scaling
    state = getattr(module, "tender_attn", None)
    if state is not None:
        return state(query, key, value, attention_mask, scaling)
    w = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        w = w + attention_mask[..., : key.shape[-2]]
    w = torch.softmax(w, dim=-1, dtype=torch.float32).to(query.dtype)
    return torch.matmul(w, value).transpose(1, 2).contiguous(), w


_ALL_FAMILIES = ("llama", "qwen2", "opt")


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask
    AttentionInterface.register(ATTN_IMPL, tender_attention_forward)
    AttentionMaskInterface.register(ATTN_IMPL, eager_mask)


def _set_attn_impl(model: nn.Module, impl: str) -> None:
    try:
        model.set_attn_implementation(impl)
    except Exception:                                          # older/newer API: set the config directly
        model.config._attn_implementation = impl
    if model.config._attn_implementation != impl:
        model.config._attn_implementation = impl


def artifact_nonempty_groups(artifact: dict, scheme: str | None = None) -> dict:
    """Non-empty channel groups per chunk of a calibrated (static) artifact: for every linear input site
    and chunk position, the number of distinct group indices of its channels. Returns mean / max / G
    (what the cost model's per-tile shift count needs); ``mean`` is None without static scales."""
    G = int(artifact["meta/groups"])
    if scheme is None:
        scheme = "round_down" if int(artifact.get("meta/scheme_round_down", torch.tensor(0))) else "round_up"
    counts = []
    for key, tmax in artifact.items():
        if key.startswith("site/") and key.endswith("/tmax"):
            gi = tender_group_index(artifact[key[: -len("tmax")] + "cmax"].float(), tmax.float(), G, scheme)
            onehot = torch.zeros(*gi.shape[:-1], G, dtype=torch.bool).scatter_(-1, gi, True)
            counts.append(onehot.sum(-1).flatten().double())
    if not counts:
        return {"groups": G, "mean": None, "max": None, "sites": 0}
    c = torch.cat(counts)
    return {"groups": G, "mean": float(c.mean()), "max": int(c.max()), "sites": len(counts)}


# ---------------------------------------------------------------------------------------------------
# the method
# ---------------------------------------------------------------------------------------------------
def _sites(arch: ArchSpec) -> list[tuple[str, tuple[str, ...]]]:
    """Input sites (linears reading the same tensor) of one block, in execution order."""
    out = [("qkv", ("q", "k", "v")), ("o", ("o",))]
    if arch.mlp_kind == "gated":
        out += [("gate_up", ("gate", "up")), ("down", ("down",))]
    else:
        out += [("fc1", ("fc1",)), ("fc2", ("fc2",))]
    return out


def _site_policy(arch: ArchSpec, model: nn.Module, label: str) -> tuple[bool, bool]:
    """(channel bias?, unsigned?) of a site, as the official code: bias on q/k/v and the MLP input
    everywhere; on o only for OPT (Llama's o_proj has none); never on down/fc2. fc2 is unsigned when
    the MLP activation is ReLU (OPT); a GELU MLP (BERT) stays signed."""
    if label in ("qkv", "gate_up", "fc1"):
        return True, False
    if label == "o":
        return arch.mlp_kind == "standard", False
    if label == "fc2":
        act = (getattr(model.config, "activation_function", None) or getattr(model.config, "hidden_act", "")) or ""
        return False, str(act).lower() == "relu"
    return False, False


def _window_nll(model: nn.Module, window: torch.Tensor) -> float:
    logits = model(window, use_cache=False).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1),
                           reduction="sum").item()


@register
class Tender(Method):
    """Tender decomposed quantization (see the module docstring for what was verified in the official code).

    Parameters: ``bits`` (activation width), ``groups`` (G; None → official per-model table, else the
    family default, see :func:`resolve_groups`), ``chunk`` (rows per chunk), ``scope`` ("linear" | "all"),
    ``scheme`` ("auto" → chosen by NLL on the first calibration window when ``static``; "round_up";
    "round_down"), ``weight_bits`` (None → ``bits``), ``static`` (True: calibrated TMax and channel groups
    as in the paper's Table 2; False: only the bias is calibrated, TMax/CMax/groups at runtime),
    ``calib_windows`` (None → every shared calibration window; N → the first N), ``w_clip`` ("none":
    absmax RTN weights, official; "mse": MSE clip-searched per-row scales, not official).
    """
    kind = "tender"
    defaults = {"bits": 8, "groups": None, "chunk": 256, "scope": "linear", "scheme": "auto",
                "weight_bits": None, "static": True, "calib_windows": None, "w_clip": "none"}
    spec = {"bits": BITS, "weight_bits": Int(2, 16, none=True), "groups": Int(1, none=True), "chunk": Int(1),
            "scope": Choice("linear", "all"), "scheme": Choice("auto", "round_up", "round_down"), "static": Bool,
            "calib_windows": Int(1, none=True), "w_clip": Choice("none", "mse")}

    def __init__(self, name: str = "", **params):
        super().__init__(name, **params)
        p, who = self.params, f"method '{self.name}' (kind tender)"
        if not isinstance(p["bits"], int) or not 2 <= p["bits"] <= 16:
            raise ValueError(f"{who}: bits must be an integer in 2..16, got {p['bits']!r}")
        if p["weight_bits"] is not None and (not isinstance(p["weight_bits"], int) or not 2 <= p["weight_bits"] <= 16):
            raise ValueError(f"{who}: weight_bits must be None or an integer in 2..16")
        if p["groups"] is not None and (not isinstance(p["groups"], int) or p["groups"] < 1):
            raise ValueError(f"{who}: groups must be None or a positive integer, got {p['groups']!r}")
        if not isinstance(p["chunk"], int) or p["chunk"] < 1:
            raise ValueError(f"{who}: chunk must be a positive integer, got {p['chunk']!r}")
        if p["scope"] not in ("linear", "all"):
            raise ValueError(f"{who}: scope must be 'linear' or 'all', got {p['scope']!r}")
        if p["calib_windows"] is not None and (not isinstance(p["calib_windows"], int) or p["calib_windows"] < 1):
            raise ValueError(f"{who}: calib_windows must be None or a positive integer, got {p['calib_windows']!r}")
        if p["scheme"] not in ("auto",) + SCHEMES:
            raise ValueError(f"{who}: scheme must be 'auto', 'round_up' or 'round_down', got {p['scheme']!r}")
        if p["w_clip"] not in ("none", "mse"):
            raise ValueError(f"{who}: w_clip must be 'none' or 'mse', got {p['w_clip']!r}")
        self.resolved_groups: int | None = None
        self.groups_source = ""
        self._wq_cache: dict = {}          # MSE-clipped weights by (name, storage): one search per job

    # ---- helpers ----------------------------------------------------------------------------------
    def _groups(self, model: nn.Module, arch: ArchSpec) -> int:
        if self.params["groups"] is not None:
            self.resolved_groups, self.groups_source = self.params["groups"], "configured"
        else:
            c = model.config
            self.resolved_groups, self.groups_source = resolve_groups(
                self.params["bits"], c.model_type, c.hidden_size, c.num_hidden_layers,
                getattr(c, "intermediate_size", None) or getattr(c, "ffn_dim", None),
                getattr(c, "max_position_embeddings", None), arch.mlp_kind)
        return self.resolved_groups

    def _check_scope(self, arch: ArchSpec) -> None:
        if self.params["scope"] == "all" and arch.family not in _ALL_FAMILIES:
            raise NotImplementedError(
                f"method '{self.name}': Tender scope 'all' (quantized Q/K/V/probabilities) is implemented "
                f"through a transformers attention function for the plain attention of {_ALL_FAMILIES}; "
                f"family '{arch.family}' is not supported ("
                + ("gemma3's attention adds soft-capping and per-layer scaling choices this function does "
                   "not reproduce" if arch.family == "gemma3" else
                   "BERT is an encoder whose attention module does not dispatch to that interface")
                + "). Use scope 'linear'.")

    def _attn_prefix(self, arch: ArchSpec) -> str:
        return arch.attn["q"].rpartition(".")[0]

    def _install(self, model, arch, G, artifact: dict, scheme: str, collect: bool):
        """Replace every block linear by a TenderLinear (and attach attention states for "all").
        Returns what :meth:`_uninstall` needs to restore the model."""
        bits, chunk = self.params["bits"], self.params["chunk"]
        wspec = QuantSpec(bits=self.params["weight_bits"] or bits, granularity="per_row")
        use_static = bool(int(artifact.get("meta/static", torch.tensor(0)))) if artifact else False
        originals, quantizers, states = {}, {}, {}
        ctx = _BatchContext()
        hook = model.register_forward_pre_hook(ctx.hook, with_kwargs=True)
        for i in range(len(arch.blocks(model))):
            prefix = f"{arch.layers}.{i}"
            for label, roles in _sites(arch):
                use_bias, unsigned = _site_policy(arch, model, label)
                site = f"{prefix}:{label}"
                q = TenderActQuant(bits, G, chunk, unsigned, use_bias, scheme, consumers=len(roles))
                if f"site/{site}/bias" in artifact and q.use_bias:
                    q.bias_cal = artifact[f"site/{site}/bias"].float()
                if use_static and f"site/{site}/tmax" in artifact:
                    q.tmax_cal = artifact[f"site/{site}/tmax"].float()
                    q.group_cal = tender_group_index(artifact[f"site/{site}/cmax"].float(), q.tmax_cal, G, scheme)
                if collect:
                    q.collector = _Collector()
                quantizers[site] = q
                for role in roles:
                    name = f"{prefix}.{arch.block_linears()[role]}"
                    lin = get_submodule(model, name)
                    w = lin.weight.detach()
                    if self.params["w_clip"] == "none":
                        wq = fake_quant(w, wspec)
                    else:
                        key = (name, w.data_ptr(), tuple(w.shape))
                        if key not in self._wq_cache:
                            self._wq_cache[key] = weight_quant(w, wspec.bits, self.params["w_clip"])
                        wq = self._wq_cache[key]
                    new = TenderLinear(lin, wq, q, fp_weight=w, batch_ctx=ctx)
                    replace_module(model, name, new)
                    originals[name] = lin
            if self.params["scope"] == "all":
                attn = get_submodule(model, f"{prefix}.{self._attn_prefix(arch)}")
                st = TenderAttention(bits, G, chunk, scheme)
                key = f"attn/{prefix}"
                for b in ("q_bias", "k_bias"):
                    if f"{key}/{b}" in artifact:
                        setattr(st, b, artifact[f"{key}/{b}"].float())
                if use_static and f"{key}/q_tmax" in artifact:
                    for s in ("q", "s"):
                        tm = artifact[f"{key}/{s}_tmax"].float()
                        setattr(st, f"{s}_tmax", tm)
                        setattr(st, f"{s}_group", tender_group_index(artifact[f"{key}/{s}_cmax"].float(), tm, G, scheme))
                    st.k_scale = artifact[f"{key}/k_scale"].float()
                    st.v_scale = artifact[f"{key}/v_scale"].float()
                if collect:
                    st.collector = _Collector()
                attn.tender_attn = st
                states[key] = (attn, st)
        prev_impl = None
        if self.params["scope"] == "all":
            _register_attention()
            prev_impl = model.config._attn_implementation
            _set_attn_impl(model, ATTN_IMPL)
        return {"originals": originals, "quantizers": quantizers, "states": states, "prev_impl": prev_impl,
                "hook": hook}

    def _uninstall(self, model, handle) -> None:
        handle["hook"].remove()
        for name, lin in handle["originals"].items():
            replace_module(model, name, lin)
        for attn, _ in handle["states"].values():
            del attn.tender_attn
        if handle["prev_impl"] is not None:
            _set_attn_impl(model, handle["prev_impl"])

    def _run(self, model, arch, windows):
        for i in range(len(windows)):
            w = windows[i: i + 1]
            model(w, use_cache=False) if arch.causal else model(w)

    # ---- interface --------------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, model: nn.Module, arch: ArchSpec, stats: dict, windows: torch.Tensor) -> dict:
        """Own pass over ``windows`` (one at a time, like the official scripts) with the model quantized in
        runtime mode (runtime bias/TMax/CMax, round-up); records per chunk position the mean channel bias
        and the max TMax/CMax of every input site (and the attention statistics for scope "all"), then
        for ``scheme='auto'`` (static mode, causal LM) picks round-up vs round-down by the NLL of the
        first window with static TMax/groups and runtime bias (``select_best_scheme``). ``stats`` is not
        used: Tender needs per-chunk-position statistics of the *quantized* model."""
        self._check_scope(arch)
        G = self._groups(model, arch)
        static = bool(self.params["static"])
        if self.params["calib_windows"] is not None:
            windows = windows[: self.params["calib_windows"]]
        art: dict[str, torch.Tensor] = {}
        handle = self._install(model, arch, G, {}, "round_up", collect=True)
        try:
            self._run(model, arch, windows)
            for site, q in handle["quantizers"].items():
                r = q.collector.result()
                q.collector = None
                if "bias" in r:
                    art[f"site/{site}/bias"] = r["bias"]
                if static:
                    art[f"site/{site}/tmax"] = r["tmax"]
                    art[f"site/{site}/cmax"] = r["cmax"]
            for key, (_, st) in handle["states"].items():
                r = st.collector.result()
                st.collector = None
                for b in ("q_bias", "k_bias"):
                    art[f"{key}/{b}"] = r[b]
                if static:
                    for k in ("q_tmax", "q_cmax", "s_tmax", "s_cmax", "k_scale", "v_scale"):
                        art[f"{key}/{k}"] = r[k]
        finally:
            self._uninstall(model, handle)

        scheme = self.params["scheme"]
        nll = {}
        if scheme == "auto":
            if static and arch.causal and len(windows):
                # official select_best_scheme: static scales + groups, runtime bias (no bias file loaded)
                no_bias = {k: v for k, v in art.items() if not k.endswith("_bias") and not k.endswith("/bias")}
                no_bias["meta/static"] = torch.tensor(1)
                for cand in ("round_down", "round_up"):
                    h = self._install(model, arch, G, no_bias, cand, collect=False)
                    try:
                        nll[cand] = _window_nll(model, windows[:1])
                    finally:
                        self._uninstall(model, h)
                scheme = "round_down" if nll["round_down"] <= nll["round_up"] else "round_up"
            else:
                scheme = "round_up"          # runtime grouping (official runtime path) or no LM loss
        art["meta/groups"] = torch.tensor(G)
        art["meta/bits"] = torch.tensor(self.params["bits"])
        art["meta/chunk"] = torch.tensor(self.params["chunk"])
        art["meta/static"] = torch.tensor(int(static))
        art["meta/calib_windows"] = torch.tensor(int(len(windows)))
        art["meta/scheme_round_down"] = torch.tensor(int(scheme == "round_down"))
        for cand, v in nll.items():
            art[f"meta/select_nll_{cand}"] = torch.tensor(v, dtype=torch.float64)
        return art

    @torch.no_grad()
    def apply(self, model: nn.Module, arch: ArchSpec, artifact: dict) -> nn.Module:
        """Replace every block linear by a :class:`TenderLinear` (RTN per-output-channel weights, Tender
        activations) using the artifact's bias / static scales / scheme; with an empty artifact everything
        is computed at runtime with round-up (or the configured scheme). Scope "all" also installs the
        Tender attention function."""
        self._check_scope(arch)
        artifact = artifact or {}
        G = self._groups(model, arch)
        if "meta/groups" in artifact and int(artifact["meta/groups"]) != G:
            raise ValueError(f"method '{self.name}': artifact was calibrated with G={int(artifact['meta/groups'])}"
                             f", configuration resolves to G={G}")
        if self.params["scheme"] in SCHEMES:                 # an explicit scheme wins
            scheme = self.params["scheme"]
        elif "meta/scheme_round_down" in artifact:            # "auto": what calibration selected
            scheme = "round_down" if int(artifact["meta/scheme_round_down"]) else "round_up"
        else:                                                 # "auto" without calibration: runtime default
            scheme = "round_up"
        if not self.params["static"]:
            artifact = {k: v for k, v in artifact.items() if k != "meta/static"}
        self.applied_scheme = scheme
        self._install(model, arch, G, artifact, scheme, collect=False)
        return model

    # ---- hardware ops -----------------------------------------------------------------------------
    def _groups_for_dims(self, dims: ModelDims) -> int:
        if self.params["groups"] is not None:
            return self.params["groups"]
        if self.resolved_groups is not None:
            return self.resolved_groups
        kind = "gated" if dims.mlp_matrices == 3 else "standard"
        return resolve_groups(self.params["bits"], "llama" if kind == "gated" else "opt", dims.hidden,
                              dims.layers, dims.intermediate, None, kind)[0]

    def ops_breakdown(self, dims: ModelDims) -> dict[str, dict]:
        """Per-token op counts, split into what any per-tensor INT linear needs and what Tender adds:
        ``{item: {"count", "op" (cost-table name), "tender_only", "note"}}``. Linear scope only (the
        attention matmuls depend on the sequence length, which ModelDims does not carry)."""
        d, L, G, chunk = dims, dims.layers, self._groups_for_dims(dims), self.params["chunk"]
        static = bool(self.params["static"])
        gated = d.mlp_matrices == 3
        q_out = (d.heads + 2 * d.kv_heads) * d.head_dim
        # (C_in, out, has_bias) per site
        sites = [(d.hidden, q_out, True), (d.heads * d.head_dim, d.hidden, not gated),
                 (d.hidden, (d.mlp_matrices - 1) * d.intermediate, True), (d.intermediate, d.hidden, False)]
        n_in = L * sum(c for c, _, _ in sites)
        n_out = L * sum(o for _, o, _ in sites)
        mac_op = "int8" if max(self.params["bits"], self.params["weight_bits"] or self.params["bits"]) <= 8 else "int32"
        out = {
            "gemm_mult": {"count": d.gemm_macs, "op": f"{mac_op}_mult", "tender_only": False,
                          "note": "integer MACs (INT4 charged as INT8)"},
            "gemm_acc": {"count": d.gemm_macs, "op": "int32_add", "tender_only": False, "note": "INT32 accumulate"},
            "input_quant": {"count": float(n_in), "op": "fp32_mult", "tender_only": False,
                            "note": "one scale multiply per input element"},
            "output_dequant": {"count": float(n_out), "op": "fp32_mult", "tender_only": False,
                               "note": "one multiply by s_w*s_min per output element"},
            "shift": {"count": float(n_out * (G - 1)), "op": "int32_add", "tender_only": True,
                      "note": f"G-1={G - 1} accumulator shifts per output (all groups non-empty: upper bound); "
                              "a shift is charged as an INT32 add (no shift energy in the cost table)"},
        }
        bias_in = L * sum(c for c, _, b in sites if b)
        bias_out = L * sum(o for _, o, b in sites if b)
        bias_macs = L * sum(c * o for c, o, b in sites if b) / chunk
        out["bias_subtract"] = {"count": float(bias_in), "op": "fp32_add", "tender_only": True,
                                "note": "X - b per biased input element"}
        out["bias_add"] = {"count": float(bias_out), "op": "fp32_add", "tender_only": True,
                           "note": "+ b.W^T per biased output element"}
        if not static:
            out["bias_gemv_mult"] = {"count": bias_macs, "op": "fp32_mult", "tender_only": True,
                                     "note": "b.W^T once per chunk (amortized per token); offline when static"}
            out["bias_gemv_add"] = {"count": bias_macs, "op": "fp32_add", "tender_only": True, "note": ""}
            out["bias_minmax"] = {"count": float(2 * bias_in), "op": "fp32_add", "tender_only": True,
                                  "note": "runtime max/min per channel for (max+min)/2"}
            out["cmax_compare"] = {"count": float(n_in), "op": "fp32_add", "tender_only": True,
                                   "note": "running |x| max per channel (CMax; TMax from CMax per chunk)"}
            out["group_compare"] = {"count": float(L * sum(c for c, _, _ in sites) * (G - 1) / chunk),
                                    "op": "fp32_add", "tender_only": True,
                                    "note": "CMax vs G-1 thresholds once per chunk (amortized per token)"}
        return out

    @torch.no_grad()
    def exactness_on_model(self, model: nn.Module, arch: ArchSpec, artifact: dict, window: torch.Tensor,
                           blocks: list[int] | None = None, acc_bits: int = 32) -> list[dict]:
        """TENDER-2 on real layers: run the unmodified ``model`` on ``window`` (1, T), capture the input of
        the first linear of every input site (q for q/k/v, o, gate for gate/up (fc1), down (fc2)) in
        ``blocks`` (default: first, middle, last) and run :func:`exactness_check` on it with this method's
        calibrated artifact (channel bias, static TMax and groups, selected scheme) and the layer's weight.
        Linear scope only (the attention matmuls are not integer-emulated)."""
        if self.params["w_clip"] != "none":
            raise NotImplementedError(f"method '{self.name}': the integer emulation uses absmax weight codes")
        artifact = artifact or {}
        G = self._groups(model, arch)
        if self.params["scheme"] in SCHEMES:
            scheme = self.params["scheme"]
        else:
            scheme = "round_down" if int(artifact.get("meta/scheme_round_down", torch.tensor(0))) else "round_up"
        static = bool(int(artifact.get("meta/static", torch.tensor(0)))) and bool(self.params["static"])
        n = len(arch.blocks(model))
        blocks = sorted(set(blocks if blocks is not None else (0, n // 2, n - 1)))
        bits, chunk, wb = self.params["bits"], self.params["chunk"], self.params["weight_bits"] or self.params["bits"]
        targets, captured, hooks = {}, {}, []
        for i in blocks:
            for label, roles in _sites(arch):
                name = f"{arch.layers}.{i}.{arch.block_linears()[roles[0]]}"
                targets[name] = (i, label, roles[0])
                hooks.append(get_submodule(model, name).register_forward_pre_hook(
                    lambda _m, args, name=name: captured.__setitem__(name, args[0].detach().float().clone())))
        try:
            model(window, use_cache=False) if arch.causal else model(window)
        finally:
            for h in hooks:
                h.remove()
        rows = []
        for name, (i, label, role) in targets.items():
            use_bias, unsigned = _site_policy(arch, model, label)
            use_bias = use_bias and not unsigned
            site = f"{arch.layers}.{i}:{label}"
            bias = (artifact.get(f"site/{site}/bias") if use_bias else False)
            tmax = gi = None
            if static and f"site/{site}/tmax" in artifact:
                tmax = artifact[f"site/{site}/tmax"].float()
                gi = tender_group_index(artifact[f"site/{site}/cmax"].float(), tmax, G, scheme)
            lin = get_submodule(model, name)
            x = captured[name]
            if x.dim() == 2:
                x = x.unsqueeze(0)
            r = exactness_check(x, lin.weight.detach().float(), bits, G, chunk,
                                None if bias is None else bias, scheme, unsigned, weight_bits=wb,
                                tmax=tmax, group_index=gi, acc_bits=acc_bits)
            rows.append({"block": i, "site": label, "linear": role, "K": lin.in_features, "N": lin.out_features,
                         "tokens": int(x.shape[-2]), "bits": bits, "weight_bits": wb, "groups": G, "scheme": scheme,
                         "static": static, "channel_bias": bias is not False, "unsigned": unsigned, **r})
        return rows

    def ops_per_token(self, dims: ModelDims) -> dict[str, float]:
        ops: dict[str, float] = {}
        for item in self.ops_breakdown(dims).values():
            ops[item["op"]] = ops.get(item["op"], 0.0) + float(item["count"])
        return ops
