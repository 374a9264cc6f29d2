"""Hardware side of IterL2Norm (ITER-3): the norm macro's latency against the paper's two endpoints, and the
energy of one normalization per datapath from the per-op constants."""
from __future__ import annotations

import pandas as pd

from lpbench.accel import norm_macro
from lpbench.methods.iterl2norm import ENERGY_FAMILY, INT_OP, norm_ops
from lpbench.studies.iterl2norm.defaults import PAPER_ITERS


def latency_table(macro: dict, lanes_sweep, anchor_d: int = 64,
                  endpoints=norm_macro.PAPER_ENDPOINTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(endpoint table, curve): for each lane count, the d-independent overhead U is calibrated at the
    endpoint ``anchor_d`` and the other endpoint is *predicted*; least-squares residuals over both
    endpoints are reported beside it. The configured lane count is flagged ``configured``."""
    rows, curve = [], []
    lanes_all = sorted(set(lanes_sweep) | {macro.get("lanes", norm_macro.DEFAULTS["lanes"])})
    for L in lanes_all:
        configured = L == macro.get("lanes", norm_macro.DEFAULTS["lanes"])
        # the configured datapath as configured; the sweep's other lane counts read L elements per beat
        p = dict(macro) if configured else {**macro, "lanes": L, "mem_width": L}
        p.setdefault("mem_width", p.get("lanes", norm_macro.DEFAULTS["lanes"]))
        anchor = norm_macro.calibrate_overhead(anchor_d, dict(endpoints)[anchor_d], **p)
        ls = norm_macro.fit(endpoints, **p)
        for (d, t), r in zip(endpoints, ls["residuals"]):
            pred = norm_macro.cycles(d, **{**p, **anchor["overrides"]})
            rows.append({"lanes": L, "configured": configured, "d": d, "paper_cycles": t,
                         "model_cycles": pred, "abs_error_cycles": abs(pred - t),
                         "rel_error": abs(pred - t) / t, "role": "anchor" if d == anchor_d else "predicted",
                         "overhead_U": anchor["overhead_U"], "fixed_if_chain_iter": anchor["fixed"],
                         "feasible": anchor["feasible"],
                         "ls_residual": r, "slope_model": ls["slope_model"], "slope_paper": ls["slope_paper"],
                         "time_ns_at_100MHz": pred * 10.0})
        for d in range(64, 1025, 32):
            curve.append({"lanes": L, "configured": configured, "d": d,
                          "cycles": norm_macro.cycles(d, **{**p, **anchor["overrides"]})})
    return pd.DataFrame(rows), pd.DataFrame(curve)


def energy_table(costs: dict, dims, formats, ratios, iters: int = PAPER_ITERS,
                 kind: str = "layernorm") -> pd.DataFrame:
    """Energy of one normalization (pJ) for IterL2Norm (k iterations), FISR (k) and the square-root +
    divide datapath, from the per-op constants of ``costs`` (Horowitz, 45 nm). Square root and division
    have no constant there: they are charged as ``r`` × the format's multiply, r swept over ``ratios``
    (an assumption, marked in the table). Two sqrt+divide variants: one reciprocal 1/√S then d multiplies
    (``sqrtdiv-recip``), or d divisions y_i/√S (``sqrtdiv-per-element``)."""
    table = costs["energy_pj"]
    rows = []
    for fmt in formats:
        fam = ENERGY_FAMILY[fmt]
        em, ea, ei = table[f"{fam}_mult"]["value"], table[f"{fam}_add"]["value"], table[INT_OP]["value"]
        for d in dims:
            for r in ratios:
                base = None
                for name, algo, per_el in (("sqrtdiv-recip", "sqrtdiv", False),
                                           ("sqrtdiv-per-element", "sqrtdiv", True),
                                           ("iterl2norm", "iterl2norm", False), ("fisr", "fisr", False)):
                    ops = norm_ops(d, kind, algo, iters, divide_per_element=per_el)
                    e = ops["mult"] * em + ops["add"] * ea + ops["int"] * ei + (ops["sqrt"] + ops["div"]) * r * em
                    plain = norm_ops(d, kind, "sqrtdiv", 0)
                    scalar = e - plain["mult"] * em - plain["add"] * ea
                    if name == "sqrtdiv-recip":
                        base = e
                    rows.append({"fmt": fmt, "energy_family": fam, "d": d, "datapath": name,
                                 "iters": iters if algo != "sqrtdiv" else 0, "div_sqrt_vs_mult": r,
                                 "energy_pj": e, "inverse_sqrt_part_pj": scalar,
                                 "vs_sqrtdiv_recip": e / base, "norm_kind": kind})
    return pd.DataFrame(rows)
