"""SLaNC measurements on real activations: one pass of the FP32 model, every norm input pushed through the
emulated low-precision norm of each variant (none / SLaNC / SLaNC-pow2 / dynamic), and the labelled stress
case (residual stream ×k). What is counted, ε in FP16, the scope and the stress case: docs/papers/slanc.md."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from tqdm import tqdm

from lpbench.archs import ArchSpec, activations_pass, get_submodule
from lpbench.lowprec import F64, get_format, native_norm, round_to
from lpbench.methods.slanc import lowprec_norm, slanc_scales, underflow_tokens
from lpbench.norms import norm_params

RESIDUAL_ROLES = ("attn_in", "mlp_in", "final")
#: norm roles outside the paper's three block types in a pre-norm stream (or BERT post-norm)
EXTENSION_ROLES = ("q_norm", "k_norm")
UNDERFLOW_RECORDS = 16


def scope_of(placement: str, roles) -> tuple[str, str]:
    """("in-scope" | "extension", why) of a model for SLaNC's claims, from its norm placement and roles."""
    extra = sorted({r for r in roles if r in EXTENSION_ROLES})
    if placement == "sandwich" or extra:
        what = ["sandwich post-norms" if placement == "sandwich" else "",
                "per-head " + "/".join(extra) if extra else ""]
        return "extension", "outside the paper's block types: " + " and ".join(w for w in what if w)
    return "in-scope", f"{placement}-norm with the paper's block types (attention, MLP)"


STRESS_FAMILIES = ("llama", "qwen2", "gemma3")   # pre/sandwich norm, no additive position embedding


def residual_norms(scales: dict) -> set[str]:
    return {n for n, p in scales.items() if p["role"] in RESIDUAL_ROLES}


class _Attr:
    """A temporary attribute on a module (undone by :func:`restore`)."""

    def __init__(self, mod, name, value):
        self.mod, self.name = mod, name
        setattr(mod, name, value)

    def remove(self):
        delattr(self.mod, self.name)


@torch.no_grad()
def reparametrize(model: nn.Module, arch: ArchSpec, k: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Scale the residual stream by k (function preserving, see docs/papers/slanc.md), in place.
    Returns (parameter, original copy) pairs for :func:`restore`."""
    if arch.family not in STRESS_FAMILIES:
        raise ValueError(f"residual-stream reparametrization not implemented for family '{arch.family}'")
    saved = []

    def scale(t: torch.Tensor, fn):
        saved.append((t, t.detach().clone()))
        t.copy_(fn(t))

    # an embedding multiplier k (a forward hook, like Gemma's √d factor): scaling the table itself would
    # also scale a tied LM head (SmolLM2, Gemma 3 tie them)
    emb = get_submodule(model, arch.embed)
    saved.append(emb.register_forward_hook(lambda _m, _a, out: out * k))
    saved.append(_Attr(emb, "lpbench_multiplier", k))    # seen by SLaNC's weight-only estimate
    for block in arch.blocks(model):
        if arch.placement == "sandwich":
            for role in ("attn_out", "mlp_out"):
                norm = get_submodule(block, arch.norms[role])
                off = norm_params(norm)[4]
                scale(norm.weight, lambda t, off=off: k * (t + off) - off)
        else:
            down = arch.mlp.get("down") or arch.mlp["fc2"]
            for rel in (arch.attn["o"], down):
                lin = get_submodule(block, rel)
                scale(lin.weight, lambda t: t * k)
                if getattr(lin, "bias", None) is not None:
                    scale(lin.bias, lambda t: t * k)
    return saved


@torch.no_grad()
def restore(saved) -> None:
    for item in saved:
        if isinstance(item, tuple):
            item[0].copy_(item[1])
        else:
            item.remove()        # the embedding hook


def _forward(model, arch, batch):
    return activations_pass(model, arch, batch)


def _rel_err(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    err = (out - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-300)
    return torch.where(torch.isfinite(err), err, torch.full_like(err, math.inf))


class _Acc:
    """Running per-(norm, case, variant) counters."""

    def __init__(self):
        self.d = {"vectors": 0, "overflow": 0, "underflow": 0, "sub_squares": 0, "elements": 0,
                  "zero_S": 0, "nonfinite_out": 0,
                  "max_rel_err": 0.0, "sumsq_fmt_max": 0.0, "sumsq_fmt_min_pos": math.inf}

    def add(self, out, st, ref, fmt):
        d = self.d
        d["vectors"] += int(st["overflow"].numel())
        d["overflow"] += int(st["overflow"].sum())
        d["underflow"] += int(underflow_tokens(st, fmt).sum())
        d["sub_squares"] += int(st["underflow"].sum())
        d["zero_S"] += int(((st["S"] == 0) & ~st["overflow"]).sum())
        d["nonfinite_out"] += int((~torch.isfinite(out).all(-1)).sum())
        d["elements"] += int(out.numel())
        d["max_rel_err"] = max(d["max_rel_err"], float(_rel_err(out, ref).max()))
        ex = st["sumsq_exact"]
        if ex.numel():
            d["sumsq_fmt_max"] = max(d["sumsq_fmt_max"], float(ex.max()))
            pos = ex[ex > 0]
            if pos.numel():
                d["sumsq_fmt_min_pos"] = min(d["sumsq_fmt_min_pos"], float(pos.min()))


@torch.no_grad()
def measure(model: nn.Module, arch: ArchSpec, windows: torch.Tensor, scales: dict, fmt: str = "fp16",
            order: str = "pairwise", stress_k: float | None = None, target_sumsq: float = 1.0,
            apply_as: str = "fold", progress: bool = True) -> dict:
    """Run ``windows`` through the FP32 ``model`` and measure every norm (see docs/papers/slanc.md).
    ``scales``: SLaNC's artifact scales (:func:`lpbench.methods.slanc.slanc_scales`) of this model."""
    names = arch.norm_names(model)
    params = {n: norm_params(get_submodule(model, n)) for n in names}
    cases = {"default": {"k": 1.0, "scales": scales}}
    stress_check = None
    first_inputs: dict[str, torch.Tensor] = {}
    if stress_k and arch.family in STRESS_FAMILIES:
        saved = reparametrize(model, arch, stress_k)
        try:
            stress_scales = slanc_scales(model, arch, target_sumsq, apply_as)
            captured: dict[str, torch.Tensor] = {}
            hs = [get_submodule(model, n).register_forward_pre_hook(
                lambda _m, a, n=n: captured.__setitem__(n, a[0].detach().clone())) for n in names]
            try:
                _forward(model, arch, windows[:1])
            finally:
                for h in hs:
                    h.remove()
        finally:
            restore(saved)
        cases[f"stress x{stress_k:g}"] = {"k": float(stress_k), "scales": stress_scales}
    resid = residual_norms(scales)
    acc: dict[tuple, _Acc] = {}
    where: dict[str, list] = {n: [] for n in names}
    eps_flushed: dict[str, bool] = {}
    state = {"window": 0}
    sumsq: dict[str, list] = {n: [] for n in names}
    first = {"on": True}

    def hook(name):
        kind, eps, weight, bias, offset = params[name]
        w = None if weight is None else weight.detach().to(F64) + offset

        def fn(_mod, args):
            x = args[0].detach().float()
            xd = x.to(F64)
            sumsq[name].append((xd * xd).sum(-1).flatten().float())
            if first["on"] and stress_k:
                first_inputs[name] = x.clone()
            for case, cfg in cases.items():
                k = cfg["k"] if name in resid else 1.0
                xc = x * k if k != 1.0 else x
                ref, _ = native_norm(xc, kind, "fp64", "pairwise", eps, w, bias)
                sc = cfg["scales"][name]
                runs = {"none": ("none", 1.0), "slanc": ("static", sc["applied"]),
                        "slanc-pow2": ("static", sc["scale_pow2"]), "dynamic": ("dynamic", 1.0)}
                if case != "default":
                    runs.pop("slanc-pow2")
                done = {}
                for variant, (v, s) in runs.items():
                    if (v, s) in done:          # e.g. slanc-pow2 where SLaNC already uses the shift
                        out, st = done[(v, s)]
                    else:
                        out, st = done[(v, s)] = lowprec_norm(xc, kind, fmt, order, eps, w, bias, v, s, False)
                    acc.setdefault((name, case, variant), _Acc()).add(out, st, ref, fmt)
                    if case == "default" and variant == "slanc":
                        eps_flushed[name] = bool(eps > 0 and float(round_to(
                            torch.tensor(eps / (s * s), dtype=F64), fmt)) == 0.0)
                        under = underflow_tokens(st, fmt)
                        if under.any() and len(where[name]) < UNDERFLOW_RECORDS:
                            raw = (xd * xd).sum(-1)
                            for idx in under.nonzero().tolist()[: UNDERFLOW_RECORDS - len(where[name])]:
                                pos = idx[-1]
                                head = idx[1] if len(idx) == 3 else None
                                where[name].append({"window": state["window"], "pos": pos, "head": head,
                                                    "token": int(windows[state["window"], pos]),
                                                    "rms": float((raw[tuple(idx)] / x.shape[-1]).sqrt()),
                                                    "zero_S": bool(st["S"][tuple(idx)] == 0)})
        return fn

    handles = [get_submodule(model, n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        for i in tqdm(range(len(windows)), desc="slanc measure", disable=not progress):
            state["window"] = i
            _forward(model, arch, windows[i: i + 1])
            first["on"] = False
    finally:
        for h in handles:
            h.remove()
    if stress_k and len(cases) > 1:
        worst = 0.0
        for n in names:
            k = stress_k if n in resid else 1.0
            ref = first_inputs[n].to(F64) * k
            worst = max(worst, float(((captured[n].to(F64) - ref).norm() / ref.norm()).item()))
        stress_check = worst
    return {"fmt": fmt, "order": order, "stress_k": stress_k, "stress_check_rel": stress_check,
            "norms": {n: {k: v for k, v in scales[n].items()} for n in names},
            "stress_scales": {n: p for n, p in cases.get(f"stress x{stress_k:g}", {}).get("scales", {}).items()}
            if stress_k else {},
            "sumsq": {n: torch.cat(v) for n, v in sumsq.items()},
            "counts": {f"{n}|{c}|{v}": a.d for (n, c, v), a in acc.items()},
            "underflow_at": where, "eps_flushed": eps_flushed,
            "tiny": get_format(fmt).tiny, "max": get_format(fmt).max}
