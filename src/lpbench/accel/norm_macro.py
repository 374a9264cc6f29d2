"""Cycle-latency model of a normalization macro (IterL2Norm's 32/28 nm macro, claim ITER-3).

Only two numbers of the paper's macro are known: 116 cycles at d = 64 and 227 cycles at d = 1024
(100 MHz). Its datapath is not. This module is an explicit datapath model whose parameters are named
and defaulted in :data:`DEFAULTS` (overridden by the ``iterl2norm.macro`` config section), so that the
claim can be checked against an architecture rather than against a fitted line. The pipeline calibrates
the d-independent overhead at d = 64 (:func:`calibrate_overhead`) and *predicts* d = 1024: with the lane
count fixed, that prediction tests the datapath's slope (:mod:`lpbench.studies.iterl2norm`).

The datapath's phases (statistics passes, finalize, init, iterations, scale-and-write, fixed overhead) and
what the two endpoints can and cannot tell (:func:`fit`) are in docs/papers/iterl2norm.md.
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
    """Cycles of each phase for one vector of length ``d`` (see docs/papers/iterl2norm.md)."""
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
    datapath (``lanes`` etc. in ``overrides``) and report fit quality; see docs/papers/iterl2norm.md."""
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

