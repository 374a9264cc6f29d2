"""Benchmark (not a test): cost of fake-quantized evaluation relative to the FP32 forward pass.

Times perplexity evaluation of the same windows with ``fp32`` and with each listed method, and prints
the ratios. Goal from the spine issue: W4A4-RTN / FP32 <= 1.5 (activation fake-quant is one elementwise
pass per linear input; weights are quantized once, before timing).

    .venv/bin/python benchmarks/quant_overhead.py [--model resources/models/smollm2-135m] \
        [--tokens resources/tokens/smollm2-135m/austen/evaluation.pt] [--windows 4] [--seqlen 512]
"""
from __future__ import annotations

import argparse
import time

import torch

from lpbench.archs import get_arch
from lpbench.data import eval_windows
from lpbench.evaluate import perplexity
from lpbench.methods import build_method
from lpbench.sources import load_model

METHODS = {"rtn-w8a8": {"method": "rtn", "w_bits": 8, "a_bits": 8},
           "rtn-w4a4": {"method": "rtn", "w_bits": 4, "a_bits": 4}}


def timed_eval(model_dir, name, entry, windows, repeats):
    model, _, _ = load_model(model_dir)
    method = build_method(name, entry)
    model = method.apply(model, get_arch(model), {})
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
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    windows = eval_windows(torch.load(args.tokens), args.seqlen, args.windows)
    base, base_ppl = timed_eval(args.model, "fp32", {"method": "fp32"}, windows, args.repeats)
    print(f"{'method':<10} {'seconds':>8} {'ratio':>6} {'ppl':>9}")
    print(f"{'fp32':<10} {base:8.2f} {1.0:6.2f} {base_ppl:9.3f}")
    for name, entry in METHODS.items():
        t, ppl = timed_eval(args.model, name, entry, windows, args.repeats)
        print(f"{name:<10} {t:8.2f} {t / base:6.2f} {ppl:9.3f}")


if __name__ == "__main__":
    main()
