"""GPTQ (Frantar et al. 2023) weight quantization, as the official RRS / QuaRot code runs it, on CPU.

Reading of ``Coco58323/Rotated_Runtime_Smooth`` ``src/gptq_utils.py`` (a copy of ``spcl/QuaRot``
``fake_quant/gptq_utils.py``) implemented here — written for this suite, not copied: the Hessian of each
linear's input as the weight sees it (after the online Hadamard), per-output-channel scales found once on
the unmodified weight (with the ``w_clip`` MSE search when ``clip='mse'``) and kept fixed, dead inputs and
1 % dampening, lazy batch updates in blocks of 128 columns, optional act-order, and layer-by-layer sequential
quantization (LM head and embeddings stay FP). Deviation for the CPU budget: the pipeline default is
``true_sequential=False`` (2 passes per layer instead of the official order's 5; ``True`` is the official
order). Calibration: the suite's shared calibration windows.

Each step with the official option it mirrors, and the calibration budget: docs/papers/rrs.md ("GPTQ").
"""
from __future__ import annotations

import time

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.quant import mse_clip_scale

_F64 = torch.float64


def weight_scale(w: torch.Tensor, bits: int, clip: str = "mse") -> torch.Tensor:
    """Per-output-channel symmetric scale (rows, 1), absmax/qmax or the MSE clip search."""
    qmax = 2 ** (bits - 1) - 1
    if clip == "mse":
        return mse_clip_scale(w, bits).to(w.dtype)
    if clip == "none":
        return (w.abs().amax(1, keepdim=True) / qmax).clamp(min=1e-8)   # all-zero row: any scale, codes 0
    raise ValueError(f"unknown weight clip '{clip}'; known: 'none', 'mse'")


def _q(w: torch.Tensor, s: torch.Tensor, qmax: int) -> torch.Tensor:
    return torch.clamp(torch.round(w / s), -qmax - 1, qmax) * s


class Hessian:
    """Running ``2/n Σ x xᵀ`` of a linear's inputs, float32 as the official ``add_batch`` (float64 for tests)."""

    def __init__(self, columns: int, dtype: torch.dtype = torch.float32):
        self.H = torch.zeros(columns, columns, dtype=dtype)
        self.n = 0

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(self.H.dtype)
        m = x.shape[0]
        self.H.mul_(self.n / (self.n + m))
        self.n += m
        self.H.addmm_(x.T, x, alpha=2.0 / self.n)


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, H: torch.Tensor, bits: int = 4, clip: str = "mse", blocksize: int = 128,
                  percdamp: float = 0.01, act_order: bool = False, scale: torch.Tensor | None = None,
                  return_codes: bool = False):
    """GPTQ-quantized copy of ``w`` (out, in) for the input Hessian ``H`` (in, in); see docs/papers/rrs.md.

    Computed in float32 as the reference implementations (``dtype`` of ``w`` if float64, for tests).
    ``return_codes``: also return (integer codes as int8, scale (out, 1))."""
    dtype = w.dtype if w.dtype == _F64 else torch.float32
    W = w.detach().to(dtype).clone()
    H = H.detach().to(dtype).clone()
    cols = W.shape[1]
    qmax = 2 ** (bits - 1) - 1
    s = (weight_scale(W, bits, clip) if scale is None else scale.to(dtype))
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    idx = torch.arange(cols)
    H[idx, idx] += percdamp * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = W1[:, i]
            q = _q(col.unsqueeze(1), s, qmax).squeeze(1)
            Q[:, i1 + i] = q
            err = (col - q) / Hinv1[i, i]
            W1[:, i:].sub_(err.unsqueeze(1) * Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i2:].sub_(Err1 @ Hinv[i1:i2, i2:])
    if perm is not None:
        Q = Q[:, torch.argsort(perm)]
    Q = Q.to(w.dtype)
    if return_codes:
        codes = torch.round(Q.to(dtype) / s).clamp(-qmax - 1, qmax).to(torch.int8)
        return Q, codes, s.to(torch.float32)
    return Q


def layer_error(w: torch.Tensor, q: torch.Tensor, H: torch.Tensor) -> float:
    """Output error of a quantized layer on the calibration inputs: ``tr((W-Q) H (W-Q)ᵀ)/2 = mean ‖(W-Q)x‖²``."""
    d = (w - q).to(_F64)
    return float(torch.einsum("ij,jk,ik->", d, H.to(_F64), d) / 2)


# ---- sequential, whole model ---------------------------------------------------------------------------------
def sequential_groups(arch: ArchSpec) -> list[list[str]]:
    """True-sequential order of the block linears' roles (official ``sequential`` list)."""
    if arch.mlp_kind == "gated":
        return [["k", "v", "q"], ["o"], ["up", "gate"], ["down"]]
    return [["k", "v", "q"], ["o"], ["fc1"], ["fc2"]]


#: linears that read the same input tensor: one Hessian serves them all (the official code computes one per
#: linear; the values are identical)
SHARED_INPUT = (("k", "v", "q"), ("up", "gate"))


def _linear_rel(arch: ArchSpec) -> dict[str, str]:
    return {**arch.attn, **arch.mlp}


@torch.no_grad()
def capture_layer_inputs(model: nn.Module, arch: ArchSpec, windows: torch.Tensor):
    """One FP forward per window: the first block's input hidden states and every block's keyword
    arguments (position embeddings, masks: independent of the hidden states, so reused for the
    quantized pass)."""
    blocks = arch.blocks(model)
    inps, kwargs = [], [[] for _ in blocks]
    handles = []

    def rec(j):
        def hook(mod, args, kw):
            kwargs[j].append({k: v for k, v in kw.items() if k != "hidden_states"})
            if j == 0:
                inps.append((args[0] if args else kw["hidden_states"]).detach().clone())
        return hook

    class _Stop(Exception):
        pass

    def stop(mod, args, out):
        raise _Stop                                    # nothing after the last block is needed (LM head)

    for j, b in enumerate(blocks):
        handles.append(b.register_forward_pre_hook(rec(j), with_kwargs=True))
    handles.append(blocks[-1].register_forward_hook(stop))
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    try:
        for w in windows:
            try:
                model(w.reshape(1, -1), use_cache=False)
            except _Stop:
                pass
    finally:
        for h in handles:
            h.remove()
        if use_cache is not None:
            model.config.use_cache = use_cache
    return inps, kwargs


def _block_out(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def sequential_gptq(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, bits: int = 4, clip: str = "mse",
                    blocksize: int = 128, percdamp: float = 0.01, act_order: bool = False,
                    true_sequential: bool = False, log=None) -> dict:
    """GPTQ every block linear of ``model`` in place, layer by layer (docs/papers/rrs.md).

    The block linears may be :class:`lpbench.quant.QuantLinear` with an ``input_transform`` (online
    Hadamard): the Hessian is then taken on the transformed input, as the weight sees it. Returns
    ``{full linear name: {"codes": int8 (out, in), "scale": float32 (out, 1)}}``."""
    t0 = time.perf_counter()
    inps, kwargs = capture_layer_inputs(model, arch, windows)
    rel = _linear_rel(arch)
    out: dict[str, dict] = {}
    for i, block in enumerate(arch.blocks(model)):
        groups = sequential_groups(arch) if true_sequential else [sum(sequential_groups(arch), [])]
        for group in groups:
            lins = {r: get_submodule(block, rel[r]) for r in group if r in rel}
            owner = {r: next((s[0] for s in SHARED_INPUT if r in s and s[0] in lins), r) for r in lins}
            hs = {r: Hessian(lins[r].in_features) for r in set(owner.values())}
            handles = []
            for r in hs:
                lin = lins[r]

                def hook(mod, args, h=hs[r]):
                    x = args[0]
                    tf = getattr(mod, "input_transform", None)
                    h.add(tf(x) if tf is not None else x)
                handles.append(lin.register_forward_pre_hook(hook))
            for x, kw in zip(inps, kwargs[i]):
                block(x, **kw)
            for h in handles:
                h.remove()
            for r, lin in lins.items():
                q, codes, s = gptq_quantize(lin.weight.data, hs[owner[r]].H, bits, clip, blocksize, percdamp,
                                            act_order, return_codes=True)
                lin.weight.data.copy_(q)
                out[f"{arch.layers}.{i}.{rel[r]}"] = {"codes": codes, "scale": s}
        inps = [_block_out(block(x, **kw)).detach() for x, kw in zip(inps, kwargs[i])]
        if log is not None:
            log.info("gptq: layer %d done (%.1f s)", i, time.perf_counter() - t0)
    return out


def dequantize(packed: dict) -> dict[str, torch.Tensor]:
    """``{name: {"codes", "scale"}}`` → ``{name: fake-quantized float32 weight}``."""
    return {n: v["codes"].to(torch.float32) * v["scale"] for n, v in packed.items()}


__all__ = ["gptq_quantize", "Hessian", "sequential_gptq", "dequantize", "layer_error", "weight_scale",
           "sequential_groups", "capture_layer_inputs"]
