"""Where each method kind acts on the model, and when two kinds may be stacked (``stack`` kind).

Sites (:data:`SITES`)
    ``norm_input_scale``   the scale of a norm's input (SLaNC's static or dynamic scaling)
    ``norm_format``        the number format of the norm datapath (SLaNC's and IterL2Norm's ``fmt``)
    ``norm_algorithm``     how the norm computes 1/‖y‖ (IterL2Norm's iteration, FISR)
    ``linear_weights``     the weights of the blocks' linears (quantization, rotation, smoothing, folds)
    ``linear_inputs``      the inputs of the blocks' linears (activation quantization, online transforms)
    ``attention_kv``       the attention products and the K/V cache (KV quantization, Tender's "all" scope)

Each kind declares the sites it changes, from its parameters (:func:`sites_of`; a kind missing from
:data:`KIND_SITES` cannot be stacked, and the error says where to declare it). The table lives here, beside
the stack, rather than in each method's module, so that one file shows every interaction.

Composition (:data:`COMPOSE`)
    Two components of a stack that change the same site are an error naming both, unless the pair is
    declared here for that site, with the reason it composes and which component's number formats the
    combined datapath uses there (``formats_from``):

    * SLaNC + IterL2Norm on ``norm_format``: one norm unit. SLaNC's static scales act on the input, the
      iteration computes the inverse norm; the whole norm datapath (statistics and iteration) runs in
      SLaNC's format — the format its scales were made for — so IterL2Norm's own ``fmt`` is not used.
      Not with dynamic scaling (its per-vector ε·r² has no place in the iteration's datapath here).
    * SLaNC (``apply_as: fold``) + any weight quantizer on ``linear_weights``: the fold divides a whole
      weight matrix by one scalar s, and every weight quantizer here is symmetric with a grid that scales
      with the weights (absmax and MSE-clip RTN, GPTQ, Tender's per-row RTN), so folding and quantizing
      commute (up to float rounding) and the quantizer's formats stand.

Order (:data:`ORDER`) — components are applied in list order; some pairs only work one way round:
    * QuaRot / RRS before SLaNC / IterL2Norm: the rotation fuses the norm gains into the next linears
      (pre-norm families) or wraps each pre-norm in an online rotation (Gemma 3); it needs the model's own
      norm modules.
    * SmoothQuant before SLaNC / IterL2Norm: it divides the norm gains offline; a replaced norm has
      already copied them.
    * SLaNC before IterL2Norm: the combined norm is built from SLaNC's scaled low-precision norm.
    * SLaNC (fold) before Tender: the fold rescales linear weights, and Tender computes b·Wᵀ from the
      weights when it is applied.

Offline artifacts (:func:`calibration_of`)
    ``none`` / ``seed`` (a rotation seed) / ``weights`` (SLaNC: the model's weights) artifacts are the
    stand-alone method's, shared. ``activations`` artifacts are statistics of the model's own activations:
    Tender's is recalibrated on the model with the earlier components applied (their outputs are its
    inputs) — unless none of them changes the model; SmoothQuant (the shared calibration statistics) and
    GPTQ weights (a shared set computed on the model without other components) must come first in a
    stack (after methods that change nothing, if any). Why a SLaNC artifact is shared after a
    rotation or a quantizer: see :mod:`lpbench.methods.stack`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

SITES = ("norm_input_scale", "norm_format", "norm_algorithm", "linear_weights", "linear_inputs", "attention_kv")
_LINEAR = frozenset({"linear_weights", "linear_inputs"})
W4A4_KINDS = ("w4a4", "smoothquant", "rs", "quarot", "rrs")
WEIGHT_QUANTIZERS = ("rtn", *W4A4_KINDS, "tender")
NORM_REPLACERS = ("slanc", "iterl2norm")


def _w4a4_sites(p: dict) -> frozenset:
    return _LINEAR | ({"attention_kv"} if p.get("kv_bits", 16) < 16 else set())


def _slanc_sites(p: dict) -> frozenset:
    if p.get("variant") == "none":
        return frozenset({"norm_format"})
    fold = p.get("variant") == "static" and p.get("apply_as") == "fold"
    return frozenset({"norm_input_scale", "norm_format"} | ({"linear_weights"} if fold else set()))


#: kind -> sites it changes, given its parameters (defaults filled in)
KIND_SITES: dict[str, Callable[[dict], frozenset]] = {
    "fp32": lambda p: frozenset(),
    "fp16": lambda p: frozenset(SITES) - {"norm_input_scale", "norm_algorithm"},
    "bf16": lambda p: frozenset(SITES) - {"norm_input_scale", "norm_algorithm"},
    "rtn": lambda p: frozenset({"linear_weights"} | ({"linear_inputs"} if p["a_bits"] < 16 else set())),
    **{k: _w4a4_sites for k in W4A4_KINDS},
    "tender": lambda p: _LINEAR | ({"attention_kv"} if p["scope"] == "all" else set()),
    "slanc": _slanc_sites,
    "iterl2norm": lambda p: frozenset({"norm_algorithm", "norm_format"}),
}

#: kind -> what its offline artifact is computed from: none | seed | weights | activations
KIND_CALIBRATION: dict[str, Callable[[dict], str]] = {
    "fp32": lambda p: "none", "fp16": lambda p: "none", "bf16": lambda p: "none", "rtn": lambda p: "none",
    "w4a4": lambda p: "none", "rs": lambda p: "none", "quarot": lambda p: "seed", "rrs": lambda p: "seed",
    "smoothquant": lambda p: "activations", "tender": lambda p: "activations",
    "slanc": lambda p: "weights" if p.get("variant") == "static" else "none",
    "iterl2norm": lambda p: "none",
}


@dataclass(frozen=True)
class Compose:
    """Two kinds that may both change ``site``: why, and whose formats the combined datapath uses there."""
    site: str
    kinds: frozenset
    formats_from: str
    reason: str
    allowed: Callable[[dict], str | None] = lambda params: None   # params by kind -> problem or None


def _slanc_not_dynamic(params: dict[str, dict]) -> str | None:
    if params["slanc"].get("variant") == "dynamic":
        return "SLaNC's dynamic variant does not compose with IterL2Norm's iteration"
    return None


COMPOSE: list[Compose] = [
    Compose("norm_format", frozenset({"slanc", "iterl2norm"}), "slanc",
            "one norm unit: SLaNC's scales act on the input, IterL2Norm's iteration computes 1/||y||; the "
            "datapath runs in SLaNC's format (IterL2Norm's own fmt is not used)", _slanc_not_dynamic),
    *[Compose("linear_weights", frozenset({"slanc", q}), q,
              "SLaNC's fold divides a whole weight matrix by one scalar; the weight quantizer's grid scales "
              "with the weights, so fold and quantization commute") for q in WEIGHT_QUANTIZERS],
]

#: (kinds that must come first, kinds that must come later, reason, applies(params of first, of later))
ORDER: list[tuple[tuple, tuple, str, Callable[[dict, dict], bool]]] = [
    (("quarot", "rrs"), NORM_REPLACERS, "the rotation fuses the norm gains into the next linears or wraps "
     "each pre-norm in an online rotation: it needs the model's own norm modules", lambda a, b: True),
    (("smoothquant",), NORM_REPLACERS, "SmoothQuant divides the norm gains offline; a replaced norm has "
     "already copied them", lambda a, b: True),
    (("slanc",), ("iterl2norm",), "the combined norm is built from SLaNC's scaled low-precision norm",
     lambda a, b: True),
    (("slanc",), ("tender",), "SLaNC's fold rescales linear weights and Tender computes b.W^T from the "
     "weights when it is applied", lambda a, b: a.get("variant") == "static" and a.get("apply_as") == "fold"),
]


def _declared(kind: str, table: dict, what: str):
    if kind not in table:
        raise ValueError(f"method kind '{kind}' declares no {what} (lpbench.methods.sites.KIND_"
                         f"{'SITES' if what == 'sites' else 'CALIBRATION'}): it cannot be stacked; declared "
                         f"kinds: {sorted(table)}")
    return table[kind]


def sites_of(method) -> frozenset:
    return _declared(method.kind, KIND_SITES, "sites")(method.params)


def calibration_of(method) -> str:
    return _declared(method.kind, KIND_CALIBRATION, "calibration")(method.params)


def uses_gptq(method) -> bool:
    return method.params.get("weights") == "gptq"


def composition(a, b, site: str) -> Compose | None:
    """The declaration under which methods ``a`` and ``b`` both change ``site`` (None: they do not)."""
    for c in COMPOSE:
        if c.site == site and c.kinds == frozenset({a.kind, b.kind}) and a.kind != b.kind:
            if c.allowed({a.kind: a.params, b.kind: b.params}) is None:
                return c
    return None


def check_stack(name: str, components: list) -> list[str]:
    """Every problem of a stack of built ``components`` (empty list: it composes). Named by method."""
    who = lambda m: f"'{m.name}' (kind {m.kind})"  # noqa: E731
    problems = []
    if len(components) < 2:
        problems.append(f"a stack needs at least two methods, got {[m.name for m in components]}")
    for m in components:
        if m.kind == "stack":
            problems.append(f"{who(m)} is itself a stack: list its methods instead")
    problems += [str(e) for m in components for e in _errors(lambda: (sites_of(m), calibration_of(m)))]
    if problems:
        return problems
    sites = [sites_of(m) for m in components]
    for i, a in enumerate(components):
        for j in range(i + 1, len(components)):
            b = components[j]
            for site in sorted(sites[i] & sites[j], key=SITES.index):
                if composition(a, b, site) is None:
                    why = next((c.allowed({a.kind: a.params, b.kind: b.params}) for c in COMPOSE
                                if c.site == site and c.kinds == frozenset({a.kind, b.kind})), None)
                    problems.append(f"methods {who(a)} and {who(b)} both change {site} and do not declare that "
                                    f"they compose there{f' ({why})' if why else ''} (lpbench.methods.sites)")
            for first, later, reason, applies in ORDER:
                if b.kind in first and a.kind in later and applies(b.params, a.params):
                    problems.append(f"method {who(b)} must come before {who(a)}: {reason}")
    for i, m in enumerate(components):
        cal = calibration_of(m)
        if _changed_before(components, i) and (uses_gptq(m) or (cal == "activations" and m.kind != "tender")):
            what = "GPTQ weights (a set shared with the stand-alone method)" if uses_gptq(m) else \
                "calibration statistics shared by every method"
            problems.append(f"method {who(m)} reads {what}, computed on the model without the other "
                            "methods: it must come first in the stack")
    return [f"stack '{name}': {p}" for p in problems]


def _errors(fn) -> list[Exception]:
    try:
        fn()
    except ValueError as e:
        return [e]
    return []


def _changed_before(components: list, i: int) -> bool:
    """Whether a component before the i-th changes the model (declares a site)."""
    return any(sites_of(m) for m in components[:i])


def recalibrated(components: list) -> list[str]:
    """Names of the components whose artifact is computed on the model with the earlier components
    applied (an activation-statistics calibration after a method that changes the model); the others
    share the stand-alone method's artifact."""
    return [m.name for i, m in enumerate(components)
            if calibration_of(m) == "activations" and _changed_before(components, i)]
