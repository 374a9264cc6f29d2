"""Inference cost of LN vs folded UN on this CPU, the folding check, and the per-token norm ops/energy.

* Latency: one torch thread (the job's), ``warmup`` untimed calls, then ``repeats`` measurements of
  each model *interleaved* (LN, folded UN, LN, ...), each of enough calls for ~20 ms, timed with the
  process CPU clock (``time.process_time``): this machine is shared, and other processes' load
  stretches wall time (medians of wall time are reported beside it) but not this process' CPU time. The
  minimum CPU time over repeats decides (the least disturbed measurement); CPU-time medians beside it.
  Inputs: real test images / evaluation windows for the trained models, random ids for the
  SmolLM2-135M-shaped models (d 576, 30 layers, random weights).
* Peak memory: ``torch.profiler`` with ``profile_memory`` over one forward pass; the allocator events
  (allocations at their op, frees as ``[memory]`` events) are summed in time order and the maximum is
  the activation peak; the parameter bytes are added (folded UN has no norm parameters).
* Share of time in norms: self CPU time of the ``layer_norm`` ops / total self CPU time in the LN
  model's profile. (Profiler self times, a share only; at d = 576 it is ~0.3 %, below the latency noise.)
* Folding check: the folded model vs the unfolded UN model in eval mode (FP32) on real inputs.
"""
from __future__ import annotations

import itertools
import statistics
import time

import pandas as pd
import torch
from torch.profiler import ProfilerActivity, profile

from lpbench.bootstrap import paired_ratio_ci

from .fold import fold_norms
from .models import CausalLM


def _timed(fn, number: int = 1) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per call over ``number`` calls. The process CPU clock is what decides:
    on a shared machine other processes' load stretches wall time, not the CPU time of this one."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(number):
        fn()
    return (time.process_time() - c0) / number, (time.perf_counter() - w0) / number


def profile_forward(model, x) -> dict:
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    events = list(prof.events())
    mem = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in events if e.self_cpu_memory_usage)
    peak = max(itertools.accumulate(v for _, v in mem), default=0)
    total = sum(e.self_cpu_time_total for e in events if e.name != "[memory]")
    norm = sum(e.self_cpu_time_total for e in events if "layer_norm" in e.name or "batch_norm" in e.name)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"activation_peak_bytes": int(peak), "param_bytes": int(params),
            "norm_time_share": norm / total if total else float("nan")}


def compare(name: str, ln_model, un_folded, x, repeats: int, warmup: int, meta: dict) -> dict:
    ln_model.eval()
    un_folded.eval()
    with torch.inference_mode():
        for _ in range(warmup):
            ln_model(x)
            un_folded(x)
        # calls per measurement: enough for ~20 ms, so that tiny models are not timed by the clock's grain
        number = max(1, int(0.02 / max(_timed(lambda: ln_model(x))[0], 1e-6)))
        t_ln, t_un, w_ln, w_un = [], [], [], []
        for _ in range(repeats):
            for fn, cpu, wall in ((lambda: ln_model(x), t_ln, w_ln), (lambda: un_folded(x), t_un, w_un)):
                c, w = _timed(fn, number)
                cpu.append(c)
                wall.append(w)
    p_ln, p_un = profile_forward(ln_model, x), profile_forward(un_folded, x)
    mem_ln = p_ln["activation_peak_bytes"] + p_ln["param_bytes"]
    mem_un = p_un["activation_peak_bytes"] + p_un["param_bytes"]
    # the point: minimum over repeats (the least disturbed measurement on a shared machine); medians beside;
    # the interval: paired (LN and UN are timed back to back in each repeat) bootstrap of the per-repeat
    # ratio, which the UN-2 claim uses to tell a speed difference from timing noise
    lat_ln, lat_un = min(t_ln), min(t_un)
    ci = paired_ratio_ci(t_ln, t_un)
    return {"model": name, **meta, "ln_ms": 1e3 * lat_ln, "un_folded_ms": 1e3 * lat_un, "speedup": lat_ln / lat_un,
            "speedup_gmean": ci["ratio"], "speedup_ci_low": ci["ci_low"], "speedup_ci_high": ci["ci_high"],
            "ln_median_ms": 1e3 * statistics.median(t_ln), "un_folded_median_ms": 1e3 * statistics.median(t_un),
            "ln_wall_median_ms": 1e3 * statistics.median(w_ln),
            "un_folded_wall_median_ms": 1e3 * statistics.median(w_un),
            "calls_per_measurement": number,
            "time_saving_pct": 100 * (1 - lat_un / lat_ln), "ln_peak_mb": mem_ln / 2**20,
            "un_folded_peak_mb": mem_un / 2**20, "mem_ratio": mem_un / mem_ln,
            "mem_saving_pct": 100 * (1 - mem_un / mem_ln),
            "ln_activation_peak_mb": p_ln["activation_peak_bytes"] / 2**20,
            "un_activation_peak_mb": p_un["activation_peak_bytes"] / 2**20,
            "ln_norm_time_share": p_ln["norm_time_share"], "repeats": repeats}


@torch.no_grad()
def fold_check(un_model, x) -> dict:
    un_model.eval()
    folded = fold_norms(un_model)
    with torch.inference_mode():
        a, b = un_model(x), folded(x)
    err = (a - b).abs().max().item()
    return {"fold_max_abs_err": err, "fold_max_rel_err": err / max(a.abs().max().item(), 1e-30)}


def shape_models(shape: dict, seed: int):
    """LN and folded-UN causal LMs of the given shape with random weights (UN statistics random too)."""
    arch = {k: shape[k] for k in ("dim", "depth", "heads", "mlp_ratio", "vocab")}
    arch["seqlen"] = int(shape.get("seqlen", 2048))
    torch.manual_seed(seed)
    ln = CausalLM({"kind": "ln"}, **arch).eval()
    torch.manual_seed(seed)
    un = CausalLM({"kind": "un"}, **arch).eval()
    g = torch.Generator().manual_seed(seed + 1)
    for m in un.modules():
        if hasattr(m, "running_var"):
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return ln, un


def speed_table(trained: dict, shapes: dict, grid, trained_grid, repeats: int, warmup: int, seed: int) -> pd.DataFrame:
    """``trained``: name -> (ln_model, un_model, input builder(batch, length) -> tensor, task kind)."""
    rows = []
    for name, (ln, un, make_input, kind) in trained.items():
        chk = fold_check(un, make_input(*trained_grid[-1]))
        folded = fold_norms(un)
        for b, n in trained_grid:
            x = make_input(b, n)
            rows.append({**compare(name, ln, folded, x, repeats, warmup,
                                   {"kind": f"trained {kind}", "batch": b,
                                    "length": int(x.shape[1]) if kind == "lm" else int(ln.pos.shape[1])}),
                         **chk})
    for name, shape in shapes.items():
        ln, un = shape_models(shape, seed)
        g = torch.Generator().manual_seed(seed)
        chk = fold_check(un, torch.randint(0, shape["vocab"], tuple(grid[0]), generator=g))
        folded = fold_norms(un)
        del un
        for b, n in grid:
            x = torch.randint(0, shape["vocab"], (b, n), generator=g)
            rows.append({**compare(name, ln, folded, x, repeats, warmup,
                                   {"kind": "random weights", "batch": b, "length": n}), **chk})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------- ops and energy
def norm_ops(costs: dict, kind: str, d: int) -> dict:
    """Ops of one norm on one token vector of width d, from ``norm_ops_per_vector`` (a*d + b each)."""
    table = costs["norm_ops_per_vector"]
    if kind not in table:
        raise KeyError(f"norm '{kind}' has no op count in the cost file; "
                       f"known: {sorted(k for k in table if k != 'source')}")
    return {op: ab[0] * d + ab[1] for op, ab in table[kind]["ops"].items()}


def energy_table(costs: dict, models: dict) -> pd.DataFrame:
    """Per model (name -> (d, norms per token)): ops and energy per token of its norms, per norm kind."""
    from lpbench.hwcost import energy_pj

    per_div = costs["norm_ops_per_vector"]["div_sqrt_energy"]
    rows = []
    for name, (d, n_norms) in models.items():
        for kind in ("layernorm", "rmsnorm", "un_unfolded", "un_folded"):
            ops = norm_ops(costs, kind, d)
            arith = {"fp32_add": ops.get("add", 0) * n_norms, "fp32_mult": ops.get("mult", 0) * n_norms}
            e = energy_pj(arith, costs)["total"]
            e += (ops.get("sqrt", 0) + ops.get("div", 0)) * n_norms * per_div["value"]
            rows.append({"model": name, "d": d, "norms_per_token": n_norms, "norm": kind,
                         "adds": arith["fp32_add"], "mults": arith["fp32_mult"],
                         "sqrt_div": (ops.get("sqrt", 0) + ops.get("div", 0)) * n_norms, "energy_pj_per_token": e})
    return pd.DataFrame(rows)


def speed_job(cfg: dict, runs: list, ckpts: list, costs_path: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The study's speed table (trained models of ``speed.tasks`` + ``speed.shapes``) and energy table."""
    from lpbench.hwcost import load_costs

    from .train import load_data, load_model

    sp = cfg["speed"]
    by_run = {(t, n): torch.load(p) for (t, n, _), p in zip(runs, ckpts)}
    trained, dims = {}, {}
    for t in sp["tasks"]:
        task = cfg["tasks"][t]
        data = load_data(task, _inputs(cfg, t))
        ln, un = load_model(by_run[(t, "ln")]), load_model(by_run[(t, task["un"])])
        if task["kind"] == "vision":
            def make(b, n, data=data):
                return data.test_x[:b]
        else:
            def make(b, n, data=data):
                return data.windows[:b, : min(n, data.windows.shape[1])]
        trained[t] = (ln, un, make, task["kind"])
        dims[f"{t} (trained)"] = (task["arch"]["dim"], 2 * task["arch"]["depth"] + 1)
    speed = speed_table(trained, sp["shapes"], [tuple(g) for g in sp["grid"]],
                        [tuple(g) for g in sp["trained_grid"]], int(sp["repeats"]),
                        int(sp["warmup"]), seed)
    for name, shape in sp["shapes"].items():
        dims[name] = (shape["dim"], 2 * shape["depth"] + 1)
    return speed, energy_table(load_costs(costs_path), dims)


def _inputs(cfg: dict, task_name: str) -> dict:
    task = cfg["tasks"][task_name]
    if task["kind"] == "vision":
        return {"images": f"resources/unified_norm/images/{task['data']}.pt"}
    return {"calibration": f"resources/corpora/{task['data']}/calibration.txt",
            "evaluation": f"resources/corpora/{task['data']}/evaluation.txt"}
