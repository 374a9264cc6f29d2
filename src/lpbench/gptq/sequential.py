"""True-sequential GPTQ of a whole model, one batched pass per layer (see :mod:`lpbench.gptq`)."""
from __future__ import annotations

import time
from contextlib import contextmanager

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule
from lpbench.gptq.core import Hessian, gptq_quantize, weight_scale

_F64 = torch.float64


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


#: largest batch (windows × seqlen tokens) a block runs at once: the default calibration set (16 × 512) is one
MAX_TOKENS = 16384


class _Stop(Exception):
    """Ends a forward pass early, from a hook or a stub: nothing after that point is needed."""


class _Stub(nn.Module):
    """Stands in for block ``j`` while :func:`capture_layer_inputs` runs: records its arguments, returns its
    input unchanged (the values after block 0 are not used), and the last one stops the model."""

    def __init__(self, j: int, last: bool, rec: dict):
        super().__init__()
        self.j, self.last, self.rec = j, last, rec

    def forward(self, *args, **kw):
        if len(args) > 1:
            raise TypeError("capture_layer_inputs: blocks called with extra positional arguments")
        hs = args[0] if args else kw["hidden_states"]
        self.rec["kwargs"].append({k: v for k, v in kw.items() if k != "hidden_states"})
        if self.j == 0:
            self.rec["inp"] = hs.detach().clone()
        if self.last:
            raise _Stop
        return hs


@torch.no_grad()
def capture_layer_inputs(model: nn.Module, arch: ArchSpec, windows: torch.Tensor,
                         max_tokens: int = MAX_TOKENS) -> list[tuple[torch.Tensor, list[dict]]]:
    """Per chunk of windows (a batch of at most ``max_tokens`` tokens): the first block's input and every
    block's keyword arguments (position embeddings, masks — built by the model for that batch, independent
    of the hidden states, so reused by every later pass). The blocks are stubs during the pass: only the
    embedding computes anything."""
    layers = get_submodule(model, arch.layers)
    blocks = list(layers)
    per = max(1, max_tokens // windows.shape[-1])
    use_cache = getattr(model.config, "use_cache", None)
    model.config.use_cache = False
    out = []
    try:
        for i in range(0, windows.shape[0], per):
            rec = {"kwargs": []}
            for j in range(len(blocks)):
                layers[j] = _Stub(j, j == len(blocks) - 1, rec)
            try:
                model(windows[i: i + per], use_cache=False)
            except _Stop:
                pass
            out.append((rec["inp"], rec["kwargs"]))
    finally:
        for j, b in enumerate(blocks):
            layers[j] = b
        if use_cache is not None:
            model.config.use_cache = use_cache
    return out


def _block_out(out):
    return out[0] if isinstance(out, (tuple, list)) else out


class _Seen(nn.Module):
    """A :class:`~lpbench.quant.QuantLinear` input transform that also hands the transformed input (what the
    weight sees) to ``fn`` before the linear runs."""

    def __init__(self, transform, fn):
        super().__init__()
        self.transform, self.fn = transform, fn

    def forward(self, x):
        y = self.transform(x) if self.transform is not None else x
        self.fn(y)
        return y


def _tap(lin: nn.Module, fn):
    """Call ``fn(x)`` with the input ``lin``'s weight sees, before ``lin`` reads its weight; returns an undo."""
    if not hasattr(lin, "input_transform"):                                  # a plain nn.Linear
        return lin.register_forward_pre_hook(lambda mod, args: fn(args[0])).remove
    tf = lin.input_transform
    lin.input_transform = _Seen(tf, fn)
    return lambda: setattr(lin, "input_transform", tf)


def _input_sets(group: list[str], present) -> list[tuple[str, ...]]:
    """The group's linears that exist, as tuples of roles reading one input (one Hessian each)."""
    roles = [r for r in group if r in present]
    sets = [tuple(r for r in s if r in roles) for s in SHARED_INPUT]
    sets = [s for s in sets if s]
    return sets + [(r,) for r in roles if not any(r in s for s in sets)]


class _Timer:
    """Process-CPU seconds by phase, exclusive of nested phases (for ``benchmarks/gptq_time.py``)."""

    def __init__(self, into: dict | None):
        self.d, self.stack = into, []

    @contextmanager
    def __call__(self, phase: str):
        if self.d is None:
            yield
            return
        t0 = time.process_time()
        self.stack.append(0.0)
        try:
            yield
        finally:
            spent, inner = time.process_time() - t0, self.stack.pop()
            self.d[phase] = self.d.get(phase, 0.0) + spent - inner
            if self.stack:
                self.stack[-1] += spent


def _hessian_of(x: torch.Tensor) -> "Hessian":
    return Hessian(x.shape[-1], torch.float64 if x.dtype == _F64 else torch.float32)


@torch.no_grad()
def sequential_gptq(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, bits: int = 4, clip: str = "mse",
                    blocksize: int = 128, percdamp: float = 0.01, act_order: bool = False,
                    true_sequential: bool = True, max_tokens: int = MAX_TOKENS, one_pass: bool | None = None,
                    log=None, profile: dict | None = None) -> dict:
    """GPTQ every block linear of ``model`` in place, layer by layer (module docstring).

    The block linears may be :class:`lpbench.quant.QuantLinear` with an ``input_transform`` (online
    Hadamard): the Hessian is then taken on the transformed input, as the weight sees it. ``one_pass``
    (default: when true-sequential and the windows fit one chunk) quantizes each group inside the layer's
    single pass; False forces one early-stopped pass per group (tests). ``profile``: a dict that collects
    process-CPU seconds per phase. Returns ``{full linear name: {"codes": int8 (out, in), "scale": float32
    (out, 1)}}``."""
    t0, timer = time.perf_counter(), _Timer(profile)
    with timer("capture"):
        chunks = capture_layer_inputs(model, arch, windows, max_tokens)
    one = (len(chunks) == 1 if one_pass is None else one_pass) and true_sequential
    rel = _linear_rel(arch)
    groups = sequential_groups(arch) if true_sequential else [sum(sequential_groups(arch), [])]
    out: dict[str, dict] = {}
    xs = [x for x, _ in chunks]
    for i, block in enumerate(arch.blocks(model)):
        kws = [kw[i] for _, kw in chunks]
        lins = {r: get_submodule(block, rel[r]) for r in rel}
        plan = [_input_sets(g, lins) for g in groups]

        def quantize(roles, H):
            with timer("clip"):
                scales = [weight_scale(lins[r].weight.data, bits, clip) for r in roles]
            with timer("gptq"):
                q, codes, s = gptq_quantize(torch.cat([lins[r].weight.data for r in roles]), H, bits, clip,
                                            blocksize, percdamp, act_order, scale=torch.cat(scales),
                                            return_codes=True)
            row = 0
            for r in roles:
                n = lins[r].out_features
                lins[r].weight.data.copy_(q[row: row + n])
                out[f"{arch.layers}.{i}.{rel[r]}"] = {"codes": codes[row: row + n].clone(),
                                                      "scale": s[row: row + n].clone()}
                row += n

        undo, missing = [], []
        try:
            if one:
                done = set()
                for sets in plan:
                    for roles in sets:
                        def seen(x, roles=roles):
                            if roles not in done:             # the first of the set to run: all share x
                                done.add(roles)
                                with timer("hessian"):
                                    h = _hessian_of(x)
                                    h.add(x)
                                quantize(roles, h.H)
                        undo += [_tap(lins[r], seen) for r in roles]
                with timer("block"):
                    xs = [_block_out(block(x, **kw)).detach() for x, kw in zip(xs, kws)]
                missing = [roles for sets in plan for roles in sets if roles not in done]
            else:
                for sets in plan:
                    hs, fired = {roles: None for roles in sets}, set()
                    for roles in sets:
                        def seen(x, roles=roles):
                            if roles in fired:
                                return
                            fired.add(roles)
                            with timer("hessian"):
                                if hs[roles] is None:
                                    hs[roles] = _hessian_of(x)
                                hs[roles].add(x)
                            if len(fired) == len(sets):
                                raise _Stop
                        undo += [_tap(lins[r], seen) for r in roles]
                    for x, kw in zip(xs, kws):
                        fired.clear()
                        try:
                            with timer("block"):
                                block(x, **kw)
                        except _Stop:
                            pass
                    while undo:
                        undo.pop()()
                    missing = [roles for roles in sets if hs[roles] is None]
                    if missing:
                        break
                    for roles in sets:
                        quantize(roles, hs[roles].H)
                with timer("block"):
                    xs = [_block_out(block(x, **kw)).detach() for x, kw in zip(xs, kws)]
        finally:
            while undo:
                undo.pop()()
        if missing:
            raise RuntimeError(f"gptq: layer {i}: the forward pass never called {missing} (not quantized)")
        if log is not None:
            log.info("gptq: layer %d done (%.1f s)", i, time.perf_counter() - t0)
    return out
