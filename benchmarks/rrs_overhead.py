"""Benchmark (not a test): measured CPU time of the fake-quant evaluation forward of RS / RRS / QuaRot vs
plain RTN W4A4 on one model — the wall-clock overhead the RRS reviewers asked for, as far as a CPU
fake-quant emulation can show it (it is NOT the INT4 kernel: fake quantization, argsort and the online
Hadamards run in FP32 next to an FP32 GEMM).

    PYTHONPATH=src python benchmarks/rrs_overhead.py [--model resources/models/smollm2-135m]
        [--tokens resources/tokens/smollm2-135m/austen/evaluation.pt] [--seqlen 512] [--windows 2] [--repeats 3]

Prints, per method, the median forward time over ``repeats`` passes of ``windows`` windows and its ratio
to rtn-w4a4. Without --model it runs on a tiny random Llama (smoke mode, seconds).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from lpbench.archs import get_arch  # noqa: E402
from lpbench.methods import build_method  # noqa: E402

METHODS = {
    "rtn-w4a4": {"method": "rtn", "w_bits": 4, "a_bits": 4},
    "rs-w4a4": {"method": "rs", "w_bits": 4, "a_bits": 4, "group_size": 128},
    "quarot-w4a4": {"method": "quarot", "w_bits": 4, "a_bits": 4, "seed": 0},
    "rrs-w4a4": {"method": "rrs", "w_bits": 4, "a_bits": 4, "group_size": 128, "seed": 0},
}


def load(args):
    if args.model:
        from lpbench.sources import load_model
        from lpbench.data import eval_windows
        model, tok, meta = load_model(args.model, tokenizer=True)
        bos = tok.bos_token_id if meta.get("bos_per_window") else None
        ids = eval_windows(torch.load(args.tokens), args.seqlen, args.windows, bos_id=bos)
        return (lambda: load_model(args.model)[0]), ids
    from helpers import tiny_model
    return (lambda: tiny_model("llama")), torch.randint(0, 101, (args.windows, args.seqlen))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens")
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    fresh, ids = load(args)
    times = {}
    for name, entry in METHODS.items():
        model = fresh()
        arch = get_arch(model)
        meth = build_method(name, entry)
        meth.apply(model, arch, meth.calibrate(model, arch, {}, None))
        runs = []
        with torch.inference_mode():
            model(ids[:1, :16], use_cache=False)                       # warm-up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                for w in ids:
                    model(w[None], use_cache=False)
                runs.append(time.perf_counter() - t0)
        times[name] = statistics.median(runs)
        del model
    base = times["rtn-w4a4"]
    print(f"{'method':<14} {'median s':>9} {'ratio vs rtn-w4a4':>18}")
    for name, t in times.items():
        print(f"{name:<14} {t:9.3f} {t / base:18.3f}")


if __name__ == "__main__":
    main()
