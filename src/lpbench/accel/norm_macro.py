"""Cycle-latency model of a normalization macro (IterL2Norm's 32/28 nm macro, claim ITER-3).

Only two numbers of the paper's macro are known: 116 cycles at d = 64 and 227 cycles at d = 1024
(100 MHz). Its datapath is not. This module is an explicit datapath model whose parameters are named
and defaulted in :data:`DEFAULTS` (overridden by the ``iterl2norm.macro`` config section), so that the
claim can be checked against an architecture rather than against a fitted line. The pipeline calibrates
the d-independent overhead at d = 64 (:func:`calibrate_overhead`) and *predicts* d = 1024: with the lane
count fixed, that prediction tests the datapath's slope (:mod:`lpbench.studies.iterl2norm`).

Datapath (one vector of length d; all units pipelined, one beat = one cycle)
    B = min(lanes, mem_width) elements enter per beat; a pass over the vector is n = ⌈d/B⌉ beats.

    1. statistics pass(es), ``stat_passes`` times (1: Σx and Σx² accumulated side by side in each lane,
       var = Σx²/d − mean²; 2: a mean pass, then a Σ(x−mean)² pass):
          (n − 1) + read_latency + mult_latency + add_latency   stream: square, lane accumulate
          + ⌈log₂ lanes⌉ · add_latency                          adder-tree drain over the lanes
    2. finalize: S = var + eps from the sums: 2 mult + 2 add latencies for LayerNorm
       (mean = Σx·(1/d), mean², Σx²·(1/d) in parallel, subtract, + eps), 1 mult + 1 add for RMSNorm
    3. init_cycles (exponent halving of S → a₀ = 2^(−⌈e/2⌉))
    4. iters · cycles_per_iter; by default one update's dependency chain
       a·(S·a)… : S·a, ·a, 1−·, a·, λ·, a+·  →  4·mult_latency + 2·add_latency
    5. scale-and-write pass: (n − 1) + read_latency [+ add_latency: x − mean, LayerNorm]
       + mult_latency (y·a) + mult_latency (·γ) + add_latency (+β, LayerNorm) + write_latency
    6. ``fixed``: control / handshake overhead, d-independent.

What the two endpoints can and cannot tell (kept honest)
    Two endpoints determine exactly two numbers: a slope (cycles per element) and an intercept. In this
    model the slope is fixed by the structure — (stat_passes + 1) passes of ⌈d/B⌉ beats — so for a given
    number of lanes only the d-independent part is unknown. Both the per-iteration cycles and the fixed
    overhead are d-independent, hence *not separately identifiable*: :func:`fit` fits their combination
    U = fixed + iters·cycles_per_iter by least squares over the endpoints and reports the residuals,
    which test whether the given lane count is consistent with the measured slope (one degree of freedom
    left). The split of U is then reported under two explicit assumptions (per-iteration cycles from the
    dependency chain → fixed overhead; no fixed overhead → per-iteration cycles). :func:`fit` also gives
    the exact two-parameter solution (effective elements per cycle and U) that passes through both
    endpoints, which has zero residual by construction and therefore tests nothing.
"""
from __future__ import annotations

import math
from typing import Any

#: Paper endpoints (d, cycles) at 100 MHz, IterL2Norm v2 abstract.
PAPER_ENDPOINTS: tuple[tuple[int, int], ...] = ((64, 116), (1024, 227))

#: Default datapath parameters. Latencies in cycles at 100 MHz (10 ns per cycle: one cycle is ample for
#: an FP32 multiplier or adder in 28 nm). These are assumptions, not paper values.
DEFAULTS: dict[str, Any] = {
    "kind": "layernorm",      # "layernorm" | "rmsnorm"
    "lanes": 16,              # parallel square/multiply-accumulate lanes L
    "mem_width": 16,          # elements the input memory delivers per cycle
    "read_latency": 1,
    "write_latency": 1,
    "mult_latency": 1,
    "add_latency": 1,
    "stat_passes": 1,         # 1: one-pass moments; 2: mean pass then centered Σy² pass
    "init_cycles": 1,
    "iters": 5,               # k
    "cycles_per_iter": None,  # None: dependency chain of one update, 4·mult + 2·add latencies
    "fixed": 0,               # control / handshake overhead (cycles)
}


def _params(overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown norm-macro parameter(s) {unknown}; known: {sorted(DEFAULTS)}")
    p = {**DEFAULTS, **overrides}
    if p["kind"] not in ("layernorm", "rmsnorm"):
        raise ValueError(f"kind must be 'layernorm' or 'rmsnorm', got {p['kind']!r}")
    if p["cycles_per_iter"] is None:
        p["cycles_per_iter"] = 4 * p["mult_latency"] + 2 * p["add_latency"]
    return p


def breakdown(d: int, **overrides) -> dict[str, float]:
    """Cycles of each phase for one vector of length ``d`` (see the module docstring)."""
    p = _params(overrides)
    ln = p["kind"] == "layernorm"
    m, a = p["mult_latency"], p["add_latency"]
    n = math.ceil(d / min(p["lanes"], p["mem_width"]))
    tree = math.ceil(math.log2(p["lanes"])) if p["lanes"] > 1 else 0
    stat = p["stat_passes"] * ((n - 1) + p["read_latency"] + m + a + tree * a)
    finalize = (2 * m + 2 * a) if ln else (m + a)
    scale = (n - 1) + p["read_latency"] + (a if ln else 0) + 2 * m + (a if ln else 0) + p["write_latency"]
    return {"statistics": stat, "finalize": finalize, "init": p["init_cycles"],
            "iterations": p["iters"] * p["cycles_per_iter"], "scale_write": scale, "fixed": p["fixed"]}


def cycles(d: int, **overrides) -> float:
    """Total latency in cycles of one normalization of a length-``d`` vector."""
    return sum(breakdown(d, **overrides).values())


def fit(endpoints=PAPER_ENDPOINTS, **overrides) -> dict[str, Any]:
    """Fit the d-independent overhead U = fixed + iters·cycles_per_iter to the endpoints for the given
    datapath (``lanes`` etc. in ``overrides``) and report fit quality; see the module docstring."""
    p = _params(overrides)
    base = {**overrides, "fixed": 0, "iters": 0}        # model without U
    pred0 = [cycles(d, **base) for d, _ in endpoints]
    U = sum(t - c for (_, t), c in zip(endpoints, pred0)) / len(endpoints)   # least squares for a constant
    residuals = [c + U - t for (_, t), c in zip(endpoints, pred0)]
    k = p["iters"]
    chain = 4 * p["mult_latency"] + 2 * p["add_latency"]
    (d0, t0), (d1, t1) = endpoints[0], endpoints[-1]
    passes = p["stat_passes"] + 1
    # exact two-parameter solve, continuous per-element cost: t = passes·d/B_eff + intercept
    b_eff = passes * (d1 - d0) / (t1 - t0)
    return {
        "lanes": p["lanes"],
        "overhead_U": U,
        "fixed_if_chain_iter": U - k * chain,
        "feasible": U - k * chain >= 0,      # U must at least hold k dependency chains
        "cycles_per_iter_if_no_fixed": U / k if k else math.nan,
        "dependency_chain_per_iter": chain,
        "predicted": [c + U for c in pred0],
        "residuals": residuals,
        "max_rel_residual": max(abs(r) / t for r, (_, t) in zip(residuals, endpoints)),
        "slope_model": (pred0[-1] - pred0[0]) / (d1 - d0),
        "slope_paper": (t1 - t0) / (d1 - d0),
        "exact_elements_per_cycle": b_eff,
        "exact_intercept": t0 - passes * d0 / b_eff,
        "note": ("2 endpoints fix slope and intercept only; per-iteration and fixed overheads are both "
                 "d-independent and not separately identifiable; the residuals test the lane count."),
    }


def calibrate_overhead(d: int, target: float, **overrides) -> dict[str, Any]:
    """Set the d-independent control overhead ``fixed`` so that the model gives ``target`` cycles at
    ``d`` (one endpoint), keeping the per-iteration cycles of the datapath (its dependency chain unless
    ``cycles_per_iter`` is given). ``feasible`` is False when that needs a negative overhead, i.e. the
    datapath alone is already slower than the target. Returns the override to pass to :func:`cycles`."""
    p = _params(overrides)
    fixed = target - cycles(d, **{**overrides, "fixed": 0})
    return {"fixed": fixed, "feasible": fixed >= 0, "overhead_U": fixed + p["iters"] * p["cycles_per_iter"],
            "overrides": {"fixed": fixed}}

