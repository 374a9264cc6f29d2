"""Precision study (ITER-1, ITER-2 and the initialisation study): error vs iterations of the inverse square
root in each format on synthetic and recorded inputs, the floors, iterations to the format's precision and the
9-case comparison with FISR. Definitions and the rules fixed before any result was read: docs/papers/iterl2norm.md."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from lpbench.lowprec import F64, Arith, accumulate_sum, exponent, get_format, pow2, round_to
from lpbench.methods.iterl2norm import fisr, iter_inv_sqrt
from lpbench.studies.iterl2norm.defaults import OPT_DIMS, PAPER_ITERS, PAPER_WINS


def unit_scale(y: torch.Tensor) -> torch.Tensor:
    """Multiply each row by the power of two that puts its RMS in [1, 2) (exact; see docs/papers/iterl2norm.md)."""
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
    """Error vs iterations for each variant, and the two floors (see docs/papers/iterl2norm.md).
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
    """Per (fmt, input, d, algorithm): iterations to the format's precision (docs/papers/iterl2norm.md)."""
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
    """The paper's 9-case comparison (docs/papers/iterl2norm.md): one row per (fmt, synthetic input)."""
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
