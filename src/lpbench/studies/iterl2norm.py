"""IterL2Norm precision, latency and energy study (claims ITER-1 … ITER-3; ITER-4 is model level).

Everything the rule file ``workflow/rules/iterl2norm.smk`` computes outside of model evaluation lives
here; the scripts ``scripts/iterl2norm_*.py`` only read their inputs and call these functions.

Precision study (:func:`error_curves`)
    For a set of vectors y (rows), a format ``fmt`` and an inverse-square-root algorithm, the output
    ŷ_k = fl(y · a_k) after k = 0 … K iterations is compared with the float64 reference y/‖y‖₂ of the
    *same* input as the format holds it (y rounded once to ``fmt``): the study measures the
    normalization, not the quantization of its input. Error of one vector = normwise relative error
    ‖ŷ − ref‖₂ / ‖ref‖₂; per (fmt, input, d, algorithm, k) we report mean, median, 99th percentile and
    max over the vectors, and the count of non-finite outputs. Σy² is accumulated in ``fmt`` in the
    configured order (default: pairwise adder tree), identically for every algorithm, so the
    algorithms differ only in their inverse square root.

    Inputs are presented at unit scale: each vector is multiplied by the power of two that puts its RMS
    in [1, 2). That is exact in every format (barring underflow of tiny entries), leaves y/‖y‖
    unchanged, and — because it multiplies S = ‖y‖² by a power of four — leaves both initializations
    (exponent-halving and FISR's bit trick, which depend on S's significand and exponent parity only)
    unchanged. It keeps FP16's Σy² below its 65504 limit (Σy² < 4d ≤ 49152 for d ≤ 12288); the FP16
    overflow of unscaled real activations is SLaNC's subject, and the real-input rows report how many
    vectors would overflow without the scaling (``fp16_overflow_unscaled``).

Two floors per (fmt, input, d), computed on the same vectors
    ``E_round``  mean error of fl(y/‖y‖), the exactly rounded result: the best any method can store.
    ``E_dp``     mean error of the same datapath with a correctly rounded 1/√S unit in place of the
                 iteration (Σy² in ``fmt``, one rounded rsqrt, fl(y·r)).

Definition of "converged to the format's precision" (ITER-1; fixed before any result was read)
    iterations_to_format_precision = the smallest k with mean error(k) ≤ E_dp + E_round, i.e. the
    iterative unit may add at most one exactly-rounded result's error on top of what the datapath with
    an ideal (correctly rounded) inverse-square-root unit already has. Rationale: the iteration's result
    a_k is itself rounded (its last step is a rounded add or multiply), so even a fully converged
    iteration carries about one rounding of the scale more than the ideal unit; E_round measures one
    such rounding at the output's scale; a truncation error of the iteration larger than that is
    visible as non-convergence. Not reached within K iterations → K + 1 with ``reached = False``.
    Reported beside it: ``iterations_truncation_mean`` / ``iterations_truncation_max``, the smallest k
    whose exact-arithmetic truncation error τ_k = |a_k·√S − 1| (the same iteration run in float64 from
    the same start) is ≤ the format's unit roundoff u on average / for every vector.

The 9-case comparison (ITER-2; the rule fixed before any result was read)
    Per format and synthetic input kind, for each OPT embedding length d: IterL2Norm (k = 5) wins iff
    its mean error is strictly lower than FISR's (k = 5) on the same vectors; equal means are a tie.
    The claim compares our win count over the 9 lengths with the paper's (6 for FP32, 5 for BF16):
    reproduced iff ours ≥ the paper's for both formats and for every synthetic input kind. Rationale:
    the paper claims IterL2Norm is more precise in *at least* that many cases; more wins support the
    claim, fewer do not; no input kind is privileged because the paper's inputs are not known.
    Beside each case the table gives the two-sided sign-test p-value of the paired per-vector comparison
    (columns ``p<d>``) and the number of cases decided at p < 0.05 (``significant_cases``): informative
    only — a win by a mean difference of a few percent can be noise; the verdict keeps the rule above.

Initialisation sensitivity (:func:`init_table`, ``results/tables/iterl2norm_init.csv``)
    The paper's start is not known; ours (``pow2``) is one of three declared starts (see
    :mod:`lpbench.methods.iterl2norm`): ``pow2``, ``centred`` (× 2^(−1/4)) and ``magic`` (FISR's bit
    trick). Per (fmt, input, d, init): iterations to the format's precision, the mean and max error at
    5 iterations, and the exact-arithmetic truncation iterations. ITER-1 and ITER-2 keep their rule on
    ``pow2``; the ledger reports beside each verdict how it would read with the other starts (nothing is
    chosen to pass). The wins table carries one row set per start (column ``init``).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from lpbench.accel import norm_macro
from lpbench.archs import ArchSpec, get_submodule
from lpbench.lowprec import F64, Arith, accumulate_sum, exponent, get_format, pow2, round_to
from lpbench.methods.iterl2norm import ENERGY_FAMILY, INT_OP, fisr, iter_inv_sqrt, norm_ops

#: The paper's numbers (digest ``shared/papers/iterl2norm.md``).
PAPER_ITERS = 5
PAPER_WINS = {"fp32": 6, "bf16": 5}
OPT_DIMS = (768, 1024, 2048, 2560, 4096, 5120, 7168, 9216, 12288)
SMALL_DIMS = (64, 128, 256, 512, 1024)

#: Defaults of the ``iterl2norm`` config section (the schema gives the section itself a default {}).
DEFAULTS: dict[str, Any] = {
    "dims": list(SMALL_DIMS),
    "opt_dims": list(OPT_DIMS),
    "formats": ["fp32", "bf16", "fp16"],
    "inputs": ["gaussian", "student_t3"],
    "max_iters": 10,
    "n_vectors": 256,
    "order": "pairwise",
    "block": 16,
    "win_iters": PAPER_ITERS,
    # the two compared algorithms and the "update-rate settings" studied beside them
    "variants": {
        "iterl2norm": {"algorithm": "iterl2norm", "lam": 0.5, "init": "pow2"},
        "fisr": {"algorithm": "fisr"},
        "iterl2norm-centred-init": {"algorithm": "iterl2norm", "lam": 0.5, "init": "centred"},
        "iterl2norm-magic-init": {"algorithm": "iterl2norm", "lam": 0.5, "init": "magic"},
        "iterl2norm-lam0.4": {"algorithm": "iterl2norm", "lam": 0.4, "init": "pow2"},
    },
    "record": {"windows": 2, "tokens_per_window": 32, "max_vectors": 512},
    "macro": {"lanes": 16, "mem_width": 16},
    "macro_lanes_sweep": [4, 8, 16, 32, 64],
    "macro_anchor_d": 64,
    "energy": {"div_sqrt_vs_mult": [1, 2, 4, 8, 16], "dims": [64, 256, 1024, 4096, 12288]},
}


def settings(section: dict | None) -> dict:
    """The config section merged over :data:`DEFAULTS` (one level of nested dicts merged)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in (section or {}).items():
        if k not in DEFAULTS:
            raise ValueError(f"iterl2norm config: unknown key '{k}'; known: {sorted(DEFAULTS)}")
        if isinstance(v, dict) and isinstance(out[k], dict) and k != "variants":
            out[k].update(v)
        else:
            out[k] = v
    return out


# ---- inputs ------------------------------------------------------------------------------------------
def unit_scale(y: torch.Tensor) -> torch.Tensor:
    """Multiply each row by the power of two that puts its RMS in [1, 2) (exact; see module doc)."""
    y = y.to(F64)
    rms = y.pow(2).mean(-1).sqrt()
    return y * pow2(-exponent(rms)).unsqueeze(-1)


def synthetic(kind: str, n: int, d: int, seed: int) -> torch.Tensor:
    """n vectors of length d, float64: ``gaussian`` N(0, 1) or ``student_t3`` (Student t, ν = 3)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        return torch.randn(n, d, dtype=F64, generator=g)
    if kind == "student_t3":
        z = torch.randn(n, d, dtype=F64, generator=g)
        chi2 = torch.randn(n, d, 3, dtype=F64, generator=g).pow(2).sum(-1)
        return z / (chi2 / 3).sqrt()
    raise ValueError(f"unknown synthetic input '{kind}'; known: gaussian, student_t3")


def _seed(kind: str, d: int) -> int:
    return (sum(map(ord, kind)) * 100_003 + d) % (2 ** 31)


# ---- error curves ------------------------------------------------------------------------------------
def normwise_error(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (out - ref).norm(dim=-1) / ref.norm(dim=-1)


def inv_sqrt(S: torch.Tensor, k: int, fmt: str, variant: dict) -> torch.Tensor:
    if variant.get("algorithm", "iterl2norm") == "fisr":
        return fisr(S, k, fmt)
    return iter_inv_sqrt(S, k, fmt, variant.get("lam", 0.5), variant.get("init", "pow2"))


def _summary(err: torch.Tensor) -> dict[str, float]:
    fin = torch.isfinite(err)
    e = err[fin]
    if e.numel() == 0:
        return {"err_mean": math.nan, "err_median": math.nan, "err_p99": math.nan, "err_max": math.nan,
                "nonfinite": int((~fin).sum())}
    return {"err_mean": e.mean().item(), "err_median": e.median().item(),
            "err_p99": torch.quantile(e, 0.99).item(), "err_max": e.max().item(), "nonfinite": int((~fin).sum())}


def error_curves(y: torch.Tensor, fmt: str, variants: dict[str, dict], max_iters: int = 10,
                 order: str = "pairwise", block: int = 16,
                 paired: tuple[str, str, int] = ("iterl2norm", "fisr", PAPER_ITERS)) -> tuple[list[dict], dict]:
    """Error vs iterations for each variant, and the two floors (see the module docstring).
    Returns (rows, floors); rows carry variant, iters, error summary and truncation statistics. The
    cell dict also holds a paired comparison of two variants at one iteration count (``paired``): the
    number of vectors on which the first is strictly more / less precise than the second, and the
    two-sided sign-test p-value (ties dropped) — to tell a real win from noise."""
    A = Arith(fmt)
    u = get_format(fmt).u
    yf = A.r(y)
    keep = yf.ne(0).any(-1)
    yf = yf[keep]
    ref = yf / yf.norm(dim=-1, keepdim=True)
    S = accumulate_sum(A.mul(yf, yf), fmt, order, block)
    e_round = normwise_error(round_to(ref, fmt), ref)
    e_dp = normwise_error(A.mul(yf, A.rsqrt(S).unsqueeze(-1)), ref)
    floors = {"E_round": _summary(e_round)["err_mean"], "E_dp": _summary(e_dp)["err_mean"],
              "E_dp_max": _summary(e_dp)["err_max"], "n_vectors": int(yf.shape[0]), "u": u}
    rows = []
    sqrtS = S.sqrt()
    kept: dict[str, torch.Tensor] = {}
    for name, variant in variants.items():
        prev_a, summary, err = None, None, None
        for k in range(max_iters + 1):
            a = inv_sqrt(S, k, fmt, variant)
            if prev_a is None or not torch.equal(a, prev_a):     # a fixed point repeats: reuse its errors
                err = normwise_error(A.mul(yf, a.unsqueeze(-1)), ref)
                summary = _summary(err)
            prev_a = a
            if k == paired[2] and name in paired[:2]:
                kept[name] = err
            tau = (inv_sqrt(S, k, "fp64", variant) * sqrtS - 1).abs()
            tau = tau[torch.isfinite(tau)]
            rows.append({"algorithm": name, "iters": k, **summary,
                         "trunc_mean": tau.mean().item() if tau.numel() else math.nan,
                         "trunc_max": tau.max().item() if tau.numel() else math.nan})
    if len(kept) == 2:
        a, b = kept[paired[0]], kept[paired[1]]
        better, worse = int((a < b).sum()), int((a > b).sum())
        floors.update(paired_better=better, paired_worse=worse, paired_p=sign_test(better, worse))
    return rows, floors


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test p-value (binomial, p = ½) of ``wins`` vs ``losses``."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2 * tail)


def precision_study(cfg: dict, real: dict[str, dict[int, torch.Tensor]] | None = None,
                    progress=None) -> pd.DataFrame:
    """Long table: one row per (fmt, input, d, algorithm, iters) with errors and the cell's floors.
    ``real`` maps a model id to {d: vectors} (recorded norm inputs, see :func:`record_norm_inputs`)."""
    cells: list[tuple[str, int, torch.Tensor, dict]] = []
    dims = sorted(set(cfg["dims"]) | set(cfg["opt_dims"]))
    for kind in cfg["inputs"]:
        for d in dims:
            cells.append((kind, d, unit_scale(synthetic(kind, cfg["n_vectors"], d, _seed(kind, d))), {}))
    for model, by_d in (real or {}).items():
        for d, vecs in sorted(by_d.items()):
            vecs = vecs.to(F64)
            extra = {"fp16_overflow_unscaled": int((vecs.pow(2).sum(-1) > get_format("fp16").max).sum())}
            cells.append((f"real:{model}", int(d), unit_scale(vecs), extra))
    out = []
    for fmt in cfg["formats"]:
        for kind, d, y, extra in cells:
            rows, floors = error_curves(y, fmt, cfg["variants"], cfg["max_iters"], cfg["order"], cfg["block"])
            for r in rows:
                out.append({"fmt": fmt, "input": kind, "d": d, **r, **floors, **extra})
            if progress:
                progress(fmt, kind, d)
    df = pd.DataFrame(out)
    if "fp16_overflow_unscaled" not in df:
        df["fp16_overflow_unscaled"] = np.nan
    return df


def convergence_table(errors: pd.DataFrame, max_iters: int | None = None) -> pd.DataFrame:
    """Per (fmt, input, d, algorithm): iterations to the format's precision (module docstring)."""
    rows = []
    K = int(errors["iters"].max()) if max_iters is None else max_iters
    for (fmt, inp, d, algo), g in errors.groupby(["fmt", "input", "d", "algorithm"], sort=False):
        g = g.sort_values("iters")
        floor = g["E_dp"].iloc[0] + g["E_round"].iloc[0]
        u = g["u"].iloc[0]

        def first(mask):
            hit = g.loc[mask.values, "iters"]
            return (int(hit.iloc[0]), True) if len(hit) else (K + 1, False)

        k_prec, reached = first(g["err_mean"] <= floor)
        k_tm, _ = first(g["trunc_mean"] <= u)
        k_tx, _ = first(g["trunc_max"] <= u)
        at5 = g[g["iters"] == PAPER_ITERS]
        rows.append({"fmt": fmt, "input": inp, "d": int(d), "algorithm": algo,
                     "iterations_to_format_precision": k_prec, "reached": reached,
                     "iterations_truncation_mean": k_tm, "iterations_truncation_max": k_tx,
                     "target_error": floor, "E_round": g["E_round"].iloc[0], "E_dp": g["E_dp"].iloc[0],
                     "err_mean_at_5": at5["err_mean"].iloc[0] if len(at5) else math.nan,
                     "err_max_at_5": at5["err_max"].iloc[0] if len(at5) else math.nan,
                     "err_mean_at_10": g["err_mean"].iloc[-1], "u": u,
                     "n_vectors": int(g["n_vectors"].iloc[0])})
    return pd.DataFrame(rows)


def init_of(variants: dict[str, dict]) -> dict[str, str]:
    """IterL2Norm variant name -> its start, for the λ = ½ variants (the init study)."""
    return {name: v.get("init", "pow2") for name, v in variants.items()
            if v.get("algorithm", "iterl2norm") == "iterl2norm" and float(v.get("lam", 0.5)) == 0.5}


def init_table(conv: pd.DataFrame, variants: dict[str, dict]) -> pd.DataFrame:
    """Per (fmt, input, d, init): iterations to the format's precision and the 5-iteration errors of
    the λ = ½ iteration from each declared start (rows of the convergence table)."""
    inits = init_of(variants)
    sub = conv[conv["algorithm"].isin(inits)].copy()
    sub.insert(3, "init", sub["algorithm"].map(inits))
    cols = ["fmt", "input", "d", "init", "algorithm", "iterations_to_format_precision", "reached",
            "iterations_truncation_mean", "iterations_truncation_max", "err_mean_at_5", "err_max_at_5",
            "target_error", "u", "n_vectors"]
    order = {k: i for i, k in enumerate(("pow2", "centred", "magic"))}
    sub = sub.sort_values(["fmt", "input", "d", "init"], key=lambda c: c.map(order) if c.name == "init" else c,
                          kind="stable")
    return sub[cols].reset_index(drop=True)


def init_figure(init: pd.DataFrame):
    """Iterations to the format's precision (top) and mean error at 5 iterations (bottom) vs d, one
    column per format, one line per start; synthetic inputs (solid Gaussian, dashed Student-t)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    df = init[~init["input"].str.startswith("real:")]
    fmts = list(dict.fromkeys(df["fmt"]))
    fig, axes = plt.subplots(2, len(fmts), figsize=(3.0 * len(fmts), 4.4), squeeze=False, sharex=True)
    palette = dict(zip(("pow2", "centred", "magic"), sns.color_palette("deep", 3)))
    for j, fmt in enumerate(fmts):
        g = df[df["fmt"] == fmt]
        for ax, y in ((axes[0][j], "iterations_to_format_precision"), (axes[1][j], "err_mean_at_5")):
            sns.lineplot(data=g, x="d", y=y, hue="init", style="input", palette=palette, markers=True,
                         ax=ax, lw=1.0, legend=(j == len(fmts) - 1 and y == "err_mean_at_5"))
            ax.set_xscale("log", base=2)
        axes[0][j].axhline(PAPER_ITERS, color="k", ls=":", lw=0.8)
        axes[0][j].set_title(fmt)
        axes[0][j].set_ylabel("iterations to format precision" if j == 0 else "")
        axes[1][j].set_yscale("log")
        tgt = g.groupby("d")["target_error"].first()
        axes[1][j].plot(tgt.index, tgt.values, color="k", ls="--", lw=0.8, label="target E_dp + E_round")
        axes[1][j].set_ylabel("mean error at 5 iterations" if j == 0 else "")
    leg = axes[1][-1].get_legend()
    if leg:
        sns.move_legend(axes[1][-1], "upper left", bbox_to_anchor=(1.02, 1.0), fontsize=6)
    fig.tight_layout()
    return fig


def wins_by_init(errors: pd.DataFrame, variants: dict[str, dict], iters: int = PAPER_ITERS,
                 dims=OPT_DIMS, theirs: str = "fisr") -> pd.DataFrame:
    """:func:`wins_table` for every declared start of the λ = ½ iteration (column ``init``)."""
    parts = []
    for name, init in init_of(variants).items():
        if name not in set(errors["algorithm"]):
            continue
        w = wins_table(errors, iters, dims, ours=name, theirs=theirs)
        w.insert(0, "init", init)
        w.insert(1, "algorithm", name)
        parts.append(w)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def wins_table(errors: pd.DataFrame, iters: int = PAPER_ITERS, dims=OPT_DIMS,
               ours: str = "iterl2norm", theirs: str = "fisr") -> pd.DataFrame:
    """The paper's 9-case comparison (module docstring): one row per (fmt, synthetic input)."""
    e = errors[(errors["iters"] == iters) & (~errors["input"].str.startswith("real:"))
               & (errors["d"].isin(dims))]
    rows = []
    for (fmt, inp), g in e.groupby(["fmt", "input"], sort=False):
        row: dict[str, Any] = {"fmt": fmt, "input": inp, "iters": iters}
        wins = ties = losses = 0
        for d in dims:
            a = g[(g["d"] == d) & (g["algorithm"] == ours)]["err_mean"]
            b = g[(g["d"] == d) & (g["algorithm"] == theirs)]["err_mean"]
            if not len(a) or not len(b):
                row[f"d{d}"] = "missing"
                continue
            cell = g[(g["d"] == d) & (g["algorithm"] == ours)].iloc[0]
            if "paired_p" in cell and pd.notna(cell["paired_p"]):
                row[f"p{d}"] = cell["paired_p"]
            a, b = a.iloc[0], b.iloc[0]
            if a < b:
                wins, w = wins + 1, ours
            elif a > b:
                losses, w = losses + 1, theirs
            else:
                ties, w = ties + 1, "tie"
            row[f"d{d}"] = f"{w} ({a / b:.3g})" if b else w
        paper = PAPER_WINS.get(fmt)
        pvals = [row[f"p{d}"] for d in dims if f"p{d}" in row]
        row.update(wins=wins, ties=ties, losses=losses, cases=len(dims),
                   significant_cases=sum(p < 0.05 for p in pvals),
                   paper_wins=paper if paper is not None else np.nan,
                   wins_minus_paper=wins - paper if paper is not None else np.nan,
                   paper_case=paper is not None)
        rows.append(row)
    return pd.DataFrame(rows)


# ---- real norm inputs --------------------------------------------------------------------------------
@torch.inference_mode()
def record_norm_inputs(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, tokens_per_window: int = 32,
                       max_vectors: int = 512, seed: int = 0) -> dict[int, torch.Tensor]:
    """Inputs of every norm of ``model`` on ``windows`` (forward pre-hooks), ``tokens_per_window``
    seeded random positions per window and norm, grouped by vector length; LayerNorm inputs are
    centered in float64 (y = x − mean: the vector the L2 normalization sees). At most ``max_vectors``
    per length (a seeded subsample)."""
    g = torch.Generator().manual_seed(seed)
    got: dict[int, list[torch.Tensor]] = {}
    center = arch.norm_kind == "layernorm"

    def hook(_mod, args):
        x = args[0].detach().double()    # (batch, tokens, d), or (batch, heads, tokens, head_dim) for q/k norms
        pos = torch.randperm(x.shape[-2], generator=g)[:tokens_per_window]
        v = x[..., pos, :].reshape(-1, x.shape[-1])
        if center:
            v = v - v.mean(-1, keepdim=True)
        got.setdefault(v.shape[-1], []).append(v)

    handles = [get_submodule(model, n).register_forward_pre_hook(hook) for n in arch.norm_names(model)]
    try:
        for w in windows:
            model(w.unsqueeze(0), use_cache=False) if arch.causal else model(w.unsqueeze(0))
    finally:
        for h in handles:
            h.remove()
    out = {}
    for d, parts in got.items():
        v = torch.cat(parts)
        v = v[v.ne(0).any(-1)]
        if len(v) > max_vectors:
            v = v[torch.randperm(len(v), generator=g)[:max_vectors]]
        out[d] = v
    return out


# ---- latency -----------------------------------------------------------------------------------------
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


# ---- energy ------------------------------------------------------------------------------------------
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
                    scalar = e - norm_ops(d, kind, "sqrtdiv", 0)["mult"] * em - norm_ops(d, kind, "sqrtdiv", 0)["add"] * ea
                    if name == "sqrtdiv-recip":
                        base = e
                    rows.append({"fmt": fmt, "energy_family": fam, "d": d, "datapath": name,
                                 "iters": iters if algo != "sqrtdiv" else 0, "div_sqrt_vs_mult": r,
                                 "energy_pj": e, "inverse_sqrt_part_pj": scalar,
                                 "vs_sqrtdiv_recip": e / base, "norm_kind": kind})
    return pd.DataFrame(rows)


# ---- model level -------------------------------------------------------------------------------------
def model_table(results: list[dict]) -> pd.DataFrame:
    """One row per (model, corpus, iterl2norm method): the method's parameters, its perplexity beside the
    FP32 reference's and the relative change (causal LMs), or the output error vs FP32 (encoders)."""
    ref = {(r["model"]["id"], r["corpus"]["id"]): r["metrics"] for r in results
           if r["method"]["kind"] == "fp32"}
    rows = []
    for r in results:
        if r["method"]["kind"] != "iterl2norm":
            continue
        m, p = r["metrics"], r["method"]["params"]
        base = ref.get((r["model"]["id"], r["corpus"]["id"]), {})
        row = {"model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
               "algorithm": p["algorithm"], "fmt": p["fmt"], "iters": p["iters"], "lam": p["lam"],
               "init": p["init"], "metric": m.get("kind")}
        if m.get("kind") == "perplexity":
            ppl, ppl0 = m.get("perplexity"), base.get("perplexity")
            row.update(perplexity=ppl, perplexity_fp32=ppl0,
                       rel_change_vs_fp32=(ppl / ppl0 - 1) if ppl is not None and ppl0 else math.nan)
        else:
            row.update(relative_error=m.get("relative_error"), cosine=m.get("cosine"))
        row["error"] = m.get("error") or ""
        row["caveat"] = r["model"].get("caveat", "")
        rows.append(row)
    cols = ["model", "corpus", "method", "algorithm", "fmt", "iters", "lam", "init", "metric", "perplexity",
            "perplexity_fp32", "rel_change_vs_fp32", "relative_error", "cosine", "error", "caveat"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df:
            df[c] = np.nan
    return df[cols].sort_values(["model", "algorithm", "fmt", "iters"]).reset_index(drop=True) if len(df) else df[cols]


# ---- figures -----------------------------------------------------------------------------------------
def _theme():
    import seaborn as sns

    import lpbench.plots  # noqa: F401  (selects the Agg backend)
    sns.set_theme(style="whitegrid", context="paper", font_scale=0.8)
    return sns


def error_figure(errors: pd.DataFrame, conv: pd.DataFrame):
    """Mean relative error vs iterations, rows = format, columns = d (synthetic inputs; line style =
    input kind); dotted: the format's precision target E_dp + E_round (Gaussian inputs)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    e = errors[~errors["input"].str.startswith("real:")].copy()
    e["err_mean"] = e["err_mean"].clip(lower=1e-18)
    fmts = list(dict.fromkeys(e["fmt"]))
    dims = sorted(e["d"].unique())
    algos = list(dict.fromkeys(e["algorithm"]))
    palette = dict(zip(algos, sns.color_palette("tab10", len(algos))))
    styles = dict(zip(dict.fromkeys(e["input"]), ["-", "--", ":", "-."]))
    fig, axes = plt.subplots(len(fmts), len(dims), figsize=(1.55 * len(dims), 1.6 * len(fmts) + 0.6),
                             sharex=True, sharey="row", squeeze=False)
    for i, fmt in enumerate(fmts):
        for j, d in enumerate(dims):
            ax = axes[i][j]
            sub = e[(e["fmt"] == fmt) & (e["d"] == d)]
            for (algo, inp), g in sub.groupby(["algorithm", "input"], sort=False):
                ax.plot(g["iters"], g["err_mean"], styles[inp], color=palette[algo], lw=1, marker=".", ms=2)
            tgt = conv[(conv["fmt"] == fmt) & (conv["d"] == d) & (conv["input"] == "gaussian")]["target_error"]
            if len(tgt):
                ax.axhline(tgt.iloc[0], color="k", ls=":", lw=0.8)
            ax.axvline(PAPER_ITERS, color="grey", lw=0.5)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(f"d = {d}")
            if j == 0:
                ax.set_ylabel(f"{fmt}\nmean rel. error")
            if i == len(fmts) - 1:
                ax.set_xlabel("iterations k")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=palette[a], label=a) for a in algos]
    handles += [Line2D([], [], color="k", ls=s, label=f"input: {k}") for k, s in styles.items()]
    handles += [Line2D([], [], color="k", ls=":", lw=0.8, label="target E_dp + E_round (gaussian)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def real_error_figure(errors: pd.DataFrame, conv: pd.DataFrame):
    """Same as :func:`error_figure` for the recorded real norm inputs (one column per model and d)."""
    sns = _theme()
    import matplotlib.pyplot as plt
    e = errors[errors["input"].str.startswith("real:")].copy()
    if e.empty:
        fig, ax = plt.subplots(figsize=(4, 1.5))
        ax.text(0.5, 0.5, "no real norm inputs recorded", ha="center", va="center")
        ax.axis("off")
        return fig
    e["err_mean"] = e["err_mean"].clip(lower=1e-18)
    e["cell"] = e["input"].str.slice(5) + "\nd = " + e["d"].astype(str)
    fmts, cells = list(dict.fromkeys(e["fmt"])), list(dict.fromkeys(e["cell"]))
    algos = list(dict.fromkeys(e["algorithm"]))
    palette = dict(zip(algos, sns.color_palette("tab10", len(algos))))
    fig, axes = plt.subplots(len(fmts), len(cells), figsize=(2.0 * len(cells), 1.6 * len(fmts) + 0.5),
                             sharex=True, sharey="row", squeeze=False)
    for i, fmt in enumerate(fmts):
        for j, cell in enumerate(cells):
            ax = axes[i][j]
            sub = e[(e["fmt"] == fmt) & (e["cell"] == cell)]
            for algo, g in sub.groupby("algorithm", sort=False):
                ax.plot(g["iters"], g["err_mean"], color=palette[algo], lw=1, marker=".", ms=2, label=algo)
            inp, d = sub["input"].iloc[0], sub["d"].iloc[0]
            tgt = conv[(conv["fmt"] == fmt) & (conv["d"] == d) & (conv["input"] == inp)]["target_error"]
            if len(tgt):
                ax.axhline(tgt.iloc[0], color="k", ls=":", lw=0.8)
            ax.axvline(PAPER_ITERS, color="grey", lw=0.5)
            ax.set_yscale("log")
            if i == 0:
                ax.set_title(cell)
            if j == 0:
                ax.set_ylabel(f"{fmt}\nmean rel. error")
            if i == len(fmts) - 1:
                ax.set_xlabel("iterations k")
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, loc="lower center", ncol=len(lab), frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def latency_figure(curve: pd.DataFrame, lat: pd.DataFrame):
    """Cycles vs d of the macro model per lane count (overhead calibrated at d = 64), paper endpoints."""
    sns = _theme()
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    c = curve.copy()
    c["datapath"] = c["lanes"].astype(str) + " lanes" + np.where(c["configured"], " (configured)", "")
    sns.lineplot(data=c, x="d", y="cycles", hue="datapath", ax=ax, lw=1.2)
    ends = lat.drop_duplicates("d")
    ax.scatter(ends["d"], ends["paper_cycles"], color="k", zorder=5, s=25, label="paper (116 @ 64, 227 @ 1024)")
    ax.set_ylim(0, max(400, ends["paper_cycles"].max() * 1.5))
    ax.set_xlabel("vector length d")
    ax.set_ylabel("cycles per normalization (100 MHz)")
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig
