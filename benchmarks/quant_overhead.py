"""Benchmark (not a test): cost of fake-quantized evaluation relative to the FP32 forward pass.

Times perplexity evaluation of the same windows with ``fp32`` and with each listed method, interleaved:
every repeat runs window 1 through every model in turn, then window 2, …, so that a slow spell of the
machine (this one's speed drifts by tens of percent within minutes) hits the FP32 baseline and the methods
alike. Each repeat gives one ratio per method (its time over FP32's in the same repeat); the median over
``--repeats`` and the range are printed. Goal: fake-quant / FP32 <= 1.2 for RTN, GPTQ-weight and rotated
methods (activation fake-quant is a few elementwise passes per linear input, an online Hadamard a small
matmul; weights are quantized once, before timing). Methods with an offline step are calibrated first (not
timed) from the pipeline's calibration files; run ``make run`` once so that they exist.

    .venv/bin/python benchmarks/quant_overhead.py [--model resources/models/smollm2-135m] \
        [--tokens resources/tokens/smollm2-135m/austen/evaluation.pt] [--calib resources/calib/smollm2-135m/austen]
        [--gptq resources/gptq/smollm2-135m/austen] [--windows 4] [--seqlen 512] [--repeats 5]
        [--methods rtn-w4a4 quarot-w4a4 ...]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import yaml

from lpbench.archs import get_arch
from lpbench.data import eval_windows
from lpbench.evaluate import perplexity
from lpbench.methods import build_method, has_offline_step
from lpbench.methods.gptq import gptq_key, load_gptq
from lpbench.sources import load_model

DEFAULT_METHODS = ["rtn-w8a8", "rtn-w4a4", "gptq-w4a4", "smoothquant-w4a4", "rs-w4a4", "quarot-w4a4", "rrs-w4a4"]


def prepared_model(model_dir, name, entry, calib=None, gptq_dir=None, seed=0):
    """The evaluated model of one method, as the pipeline builds it (offline step and GPTQ weights from the
    pipeline's files; not timed)."""
    model, _, _ = load_model(model_dir)
    method = build_method(name, entry)
    artifact = {}
    if has_offline_step(entry):
        torch.manual_seed(seed)          # as the pipeline's jobs (lpbench.jobs.setup): same rotation as its GPTQ set
        artifact = method.calibrate(model, get_arch(model), torch.load(f"{calib}.pt"),
                                    torch.load(f"{calib}.windows.pt"))
        model, _, _ = load_model(model_dir)
    key = gptq_key(method, seed)                 # the set of the seed it runs with (the config's)
    if key is not None:                  # the pipeline's shared GPTQ weight set (gptq_weights rule)
        path = Path(gptq_dir) / f"{key}.pt"
        if not path.exists():
            raise SystemExit(f"{name}: GPTQ weights {path} not found; run `make run` first")
        artifact = {**artifact, "gptq_weights": load_gptq(path)}
    return method.apply(model, get_arch(model), artifact)


def timed_interleaved(models: dict, windows, repeats: int) -> dict:
    """{name: seconds per repeat (list)}: in every repeat each window runs through every model in turn
    (see the module docstring), after one warm-up window per model."""
    for model in models.values():
        perplexity(model, windows[:1], progress=False)
    seconds = {name: [0.0] * repeats for name in models}
    for r in range(repeats):
        for i in range(len(windows)):
            for name, model in models.items():
                t = time.perf_counter()
                perplexity(model, windows[i:i + 1], progress=False)
                seconds[name][r] += time.perf_counter() - t
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resources/models/smollm2-135m")
    ap.add_argument("--tokens", default="resources/tokens/smollm2-135m/austen/evaluation.pt")
    ap.add_argument("--calib", default="resources/calib/smollm2-135m/austen",
                    help="prefix of the calibrate rule's outputs (<prefix>.pt, <prefix>.windows.pt)")
    ap.add_argument("--gptq", default="resources/gptq/smollm2-135m/austen",
                    help="directory of the gptq_weights rule's outputs (<key>.pt) for weights: gptq methods")
    ap.add_argument("--config", default="config/config.yaml", help="where the method entries are defined")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    windows = eval_windows(torch.load(args.tokens), args.seqlen, args.windows)
    config = yaml.safe_load(open(args.config))
    entries = {"fp32": {"method": "fp32"}, **config["methods"]}
    unknown = [m for m in args.methods if m not in entries]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown} in {args.config}; known: {sorted(entries)}")
    models = {name: prepared_model(args.model, name, entries[name], args.calib, args.gptq,
                                   seed=int(config.get("seed", 0)))
              for name in ["fp32", *[m for m in args.methods if m != "fp32"]]}
    seconds = timed_interleaved(models, windows, args.repeats)
    ppl = {name: perplexity(model, windows, progress=False)["perplexity"] for name, model in models.items()}
    print(f"{args.model}: {len(windows)} x {args.seqlen} tokens, {args.threads} threads, "
          f"{args.repeats} interleaved repeats; ratio = method / fp32 within a repeat")
    print(f"{'method':<18} {'s (median)':>10} {'ratio':>6} {'range':>13} {'ppl':>9}")
    for name, secs in seconds.items():
        ratios = sorted(t / b for t, b in zip(secs, seconds["fp32"]))
        print(f"{name:<18} {statistics.median(secs):10.2f} {statistics.median(ratios):6.2f} "
              f"{ratios[0]:6.2f}-{ratios[-1]:<6.2f} {ppl[name]:9.3f}")


if __name__ == "__main__":
    main()
