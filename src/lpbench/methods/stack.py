"""``stack``: configured methods applied to one model in list order — a norm-side method on a GEMM-side one.

Configured as ``methods: {rrs-w4a4+slanc-fp16: {method: stack, of: [rrs-w4a4, slanc-fp16]}}``: every name in
``of`` is another configured method (not a stack), and :func:`lpbench.config.expand_stacks` copies their
entries into the stack's entry before it is built, so the stack's entry is everything that defines it.
The components are applied **in list order**, each with its own artifact. Which pairs may be stacked (the
sites each kind changes, where two kinds compose, which must come first) is :mod:`lpbench.methods.sites`;
a stack that breaks it fails when it is built, i.e. in the dry run, naming both methods.

Offline artifacts: shared or recalibrated, from the math
    The stack's artifact holds one artifact per component. ``none`` / ``seed`` artifacts do not depend on
    the model and are the stand-alone method's. Tender's statistics (channel bias, TMax, CMax per chunk
    position, the rounding scheme) are of its linears' inputs, which every earlier component changes
    (e.g. SLaNC's FP16 norms round them): it is **recalibrated** on the model with the earlier components
    applied. SmoothQuant's scales and GPTQ weights come from statistics of the model without other methods,
    shared with the stand-alone method, so such a method must come first (the GPTQ set computed in RRS's
    rotation is the one RRS + SLaNC reads).
    SLaNC's scales are **shared** when SLaNC follows a rotation or a weight quantizer. Its scale for a norm
    is a prediction of ‖x‖ for the norm's input x. QuaRot's residual rotation is orthogonal (‖xQ‖ = ‖x‖),
    gain fusion moves γ from the norm's output into the next linear (the norm's input is unchanged), and the
    V/O and online Hadamards are folded exactly: every norm input of the rotated FP model has the norm it
    had (Gemma 3's online variant does not rotate the stream at all). Recomputing SLaNC on the rotated
    weights would change only the estimate, not the quantity: its per-unit independence assumption is
    basis-dependent (the folded online Hadamard before ``down_proj`` mixes exactly the units it treats as
    independent). Weight quantization adds its noise energy to the norm inputs: for noise uncorrelated
    with the weights, E‖(W + ΔW)Γ‖² = ‖WΓ‖² + ‖ΔWΓ‖². Measured on the suite's two LMs (SLaNC's estimate
    from 4-bit RTN weights against the FP weights): the scale moves by a median 3.5 % on SmolLM2 (max 4 %;
    3 of its 61 power-of-two choices move to the neighbouring power) and 1.3 % on Gemma 3 (max 13 %, no
    power-of-two choice moves) — less than the power-of-two rounding SLaNC applies anyway (up to ±41 %),
    and inside the headroom of its target.

Composed norm (SLaNC + IterL2Norm): SLaNC's scaled norm (:class:`~lpbench.methods.slanc.LowPrecNorm`) is
replaced by :class:`SlancIterNorm`: the same scale, format, summation order and ε handling, with the inverse
square root computed by IterL2Norm's iteration (or FISR) in SLaNC's format.

Gemma 3 under a rotation: QuaRot's online variant wraps each pre-norm in a
:class:`~lpbench.methods.quarot.PostNormRotation`; while a later component is applied the wrapper is
lifted off (:func:`unwrapped_norms`), so that component replaces the norm inside it.

``ops_per_token`` and the energy of a stack are its components' (:mod:`lpbench.methods.datapath`).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import torch
import torch.nn as nn

from lpbench.archs import get_submodule
from lpbench.lowprec import emulated_norm
from lpbench.methods import Method, build_method, register
from lpbench.methods.datapath import interface_ops
from lpbench.methods.iterl2norm import fisr, iter_inv_sqrt
from lpbench.methods.quarot import PostNormRotation
from lpbench.methods.sites import check_stack, recalibrated, uses_gptq
from lpbench.methods.slanc import LowPrecNorm
from lpbench.quant import replace_module


@contextmanager
def unwrapped_norms(model: nn.Module, arch):
    """Lift :class:`PostNormRotation` wrappers off the model's norms for the duration; on exit, wrap
    whatever module then sits at each norm's place (the replaced norm) again."""
    wrappers = {}
    for name in arch.norm_names(model):
        mod = get_submodule(model, name)
        if isinstance(mod, PostNormRotation):
            wrappers[name] = mod
            replace_module(model, name, mod.norm)
    try:
        yield model
    finally:
        for name, w in wrappers.items():
            w.norm = get_submodule(model, name)
            replace_module(model, name, w)


class SlancIterNorm(nn.Module):
    """SLaNC's scaled norm in its format, with IterL2Norm's (or FISR's) inverse square root."""

    def __init__(self, low: LowPrecNorm, iters: int, lam: float = 0.5, init: str = "pow2",
                 algorithm: str = "iterl2norm"):
        super().__init__()
        if low.variant == "dynamic":
            raise ValueError("SLaNC's dynamic variant does not compose with IterL2Norm")
        self.kind, self.eps, self.fmt, self.order, self.block = low.kind, low.eps, low.fmt, low.order, low.block
        self.variant, self.scale, self.folded = low.variant, low.scale, low.folded
        self.iters, self.lam, self.init, self.algorithm = iters, lam, init, algorithm
        self.register_buffer("weight_eff", low.weight_eff)
        self.register_buffer("bias", low.bias)

    def rsqrt(self, S: torch.Tensor) -> torch.Tensor:
        if self.algorithm == "fisr":
            return fisr(S, self.iters, self.fmt)
        return iter_inv_sqrt(S, self.iters, self.fmt, self.lam, self.init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eps, scale = self.eps, 1.0
        if self.variant == "static":
            eps, scale = (self.eps / (self.scale * self.scale), 1.0) if self.folded else (self.eps, self.scale)
        with torch.no_grad():
            out, _ = emulated_norm(x, self.kind, self.fmt, self.order, eps, self.weight_eff, self.bias,
                                   scale=scale, block=self.block, rsqrt=self.rsqrt)
        return out.to(x.dtype)

    def extra_repr(self) -> str:
        return (f"{self.kind}, fmt={self.fmt}, variant={self.variant}, scale={self.scale:.4g}, "
                f"{self.algorithm} x{self.iters}")


def iterl2norm_after_slanc(model: nn.Module, arch, method) -> nn.Module:
    """Replace every SLaNC norm (:class:`LowPrecNorm`) by :class:`SlancIterNorm` with ``method``'s
    iteration (an ``iterl2norm`` method; its ``fmt`` is not used: SLaNC's format is)."""
    p = method.params
    with unwrapped_norms(model, arch):
        for name in arch.norm_names(model):
            low = get_submodule(model, name)
            if not isinstance(low, LowPrecNorm):
                raise ValueError(f"{name}: expected SLaNC's norm before IterL2Norm, found {type(low).__name__}")
            replace_module(model, name, SlancIterNorm(low, p["iters"], p["lam"], p["init"], p["algorithm"]))
    return model


def apply_component(model: nn.Module, arch, method, artifact: dict, earlier: list) -> nn.Module:
    """Apply one component on a model that has the ``earlier`` components applied."""
    if method.kind == "iterl2norm" and any(m.kind == "slanc" for m in earlier):
        return iterl2norm_after_slanc(model, arch, method)
    with unwrapped_norms(model, arch):
        return method.apply(model, arch, artifact)


@register
class Stack(Method):
    """Configured methods applied in list order (see the module docstring)."""

    kind = "stack"
    defaults = {"of": None}

    def __init__(self, name: str = "", **params):
        super().__init__(name, **params)
        of = self.params["of"]
        who = f"method '{self.name}' (kind stack)"
        if not isinstance(of, list) or not of:
            raise ValueError(f"{who}: 'of' must be a list of configured method names, got {of!r}")
        names = [e if isinstance(e, str) else e.get("name") if isinstance(e, dict) else e for e in of]
        if any(not isinstance(e, dict) for e in of):
            raise ValueError(f"{who}: methods {names} are not resolved against the config's methods "
                             "(lpbench.config.expand_stacks does that before the stack is built)")
        self.components = [build_method(e["name"], {k: v for k, v in e.items() if k != "name"}) for e in of]
        problems = check_stack(self.name, self.components)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def eval_dtype(self):
        return next((m.eval_dtype for m in self.components if m.eval_dtype != torch.float32), torch.float32)

    def describe(self) -> str:
        return f"stack({' -> '.join(m.describe() for m in self.components)})"

    def gptq_component(self):
        """The component whose GPTQ weight set the stack reads (None: none does)."""
        return next((m for m in self.components if uses_gptq(m)), None)

    def facts(self) -> dict:
        """What the workflow needs to know of the stack without building it again (names only)."""
        g = self.gptq_component()
        return {"components": [m.name for m in self.components], "recalibrate": recalibrated(self.components),
                "gptq_component": None if g is None else g.name}

    def _artifact(self, method, artifact: dict, gptq_weights) -> dict:
        if gptq_weights is not None and uses_gptq(method):
            return {**artifact, "gptq_weights": gptq_weights}
        return dict(artifact)

    def calibrate(self, model, arch, stats, windows, shared: dict | None = None, gptq_weights=None) -> dict:
        """``{"components": {name: artifact}}``. Components named in ``shared`` take that artifact (the
        stand-alone method's file in the pipeline); recalibrated ones are computed on a copy of ``model``
        with the earlier components applied; the others are computed on ``model`` as the stand-alone
        method would. ``gptq_weights``: the set of the GPTQ component, for applying it to the copy."""
        recal = set(recalibrated(self.components))
        last = max((i for i, m in enumerate(self.components) if m.name in recal), default=-1)
        work = copy.deepcopy(model) if recal else None
        arts: dict[str, dict] = {}
        for i, m in enumerate(self.components):
            if m.name in recal:
                arts[m.name] = m.calibrate(work, arch, stats, windows)
            elif shared is not None and m.name in shared:
                arts[m.name] = shared[m.name]
            else:
                arts[m.name] = m.calibrate(model, arch, stats, windows)
            if i < last:
                work = apply_component(work, arch, m, self._artifact(m, arts[m.name], gptq_weights),
                                       self.components[:i])
        return {"components": arts}

    def apply(self, model, arch, artifact):
        arts = (artifact or {}).get("components")
        if arts is None:
            raise ValueError(f"method '{self.name}': the artifact has no 'components' (Stack.calibrate)")
        gptq = artifact.get("gptq_weights")
        for i, m in enumerate(self.components):
            model = apply_component(model, arch, m, self._artifact(m, arts.get(m.name, {}), gptq),
                                    self.components[:i])
        return model

    def ops_per_token(self, dims, arch=None) -> dict[str, float]:
        return interface_ops(self, dims, arch)
