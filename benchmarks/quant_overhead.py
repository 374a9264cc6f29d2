"""Benchmark (not a test): cost of fake-quantized evaluation relative to the FP32 forward pass.

Times perplexity evaluation of the same windows with ``fp32`` and with each listed method, and prints
the ratios. Goal: fake-quant / FP32 <= 1.2 for RTN, GPTQ-weight and rotated methods (activation
fake-quant is one elementwise pass per linear input, an online Hadamard one small matmul; weights are
quantized once, before timing). Methods with an offline step are calibrated first (not timed) from the
pipeline's calibration files; run ``make run`` once so that they exist.

    .venv/bin/python benchmarks/quant_overhead.py [--model resources/models/smollm2-135m] \
        [--tokens resources/tokens/smollm2-135m/austen/evaluation.pt] [--calib resources/calib/smollm2-135m/austen]
        [--gptq resources/gptq/smollm2-135m/austen] [--windows 4] [--seqlen 512] [--methods rtn-w4a4 quarot-w4a4 ...]
"""
from __future__ import annotations

import argparse
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


def timed_eval(model_dir, name, entry, windows, repeats, calib=None, gptq_dir=None, seed=0):
    model, _, _ = load_model(model_dir)
    method = build_method(name, entry)
    artifact = {}
    if has_offline_step(entry):
        torch.manual_seed(seed)          # as the pipeline's jobs (lpbench.jobs.setup): same rotation as its GPTQ set
        artifact = method.calibrate(model, get_arch(model), torch.load(f"{calib}.pt"), torch.load(f"{calib}.windows.pt"))
        model, _, _ = load_model(model_dir)
    key = gptq_key(method)
    if key is not None:                  # the pipeline's shared GPTQ weight set (gptq_weights rule)
        path = Path(gptq_dir) / f"{key}.pt"
        if not path.exists():
            raise SystemExit(f"{name}: GPTQ weights {path} not found; run `make run` first")
        artifact = {**artifact, "gptq_weights": load_gptq(path)}
    model = method.apply(model, get_arch(model), artifact)
    perplexity(model, windows[:1], progress=False)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        ppl = perplexity(model, windows, progress=False)["perplexity"]
        best = min(best, time.perf_counter() - t)
    return best, ppl


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
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    windows = eval_windows(torch.load(args.tokens), args.seqlen, args.windows)
    base, base_ppl = timed_eval(args.model, "fp32", {"method": "fp32"}, windows, args.repeats)
    print(f"{'method':<18} {'seconds':>8} {'ratio':>6} {'ppl':>9}")
    print(f"{'fp32':<18} {base:8.2f} {1.0:6.2f} {base_ppl:9.3f}")
    config = yaml.safe_load(open(args.config))
    entries = config["methods"]
    for name in args.methods:
        if name not in entries:
            raise SystemExit(f"unknown method '{name}' in {args.config}; known: {sorted(entries)}")
        t, ppl = timed_eval(args.model, name, entries[name], windows, args.repeats, args.calib,
                            args.gptq, seed=int(config.get("seed", 0)))
        print(f"{name:<18} {t:8.2f} {t / base:6.2f} {ppl:9.3f}")


if __name__ == "__main__":
    main()
