"""Benchmark (not a test): wall time of sequential GPTQ (lpbench.gptq) per model on this CPU.

    PYTHONPATH=src python benchmarks/gptq_time.py [--models smollm2-135m gemma3-270m] [--corpus austen]
        [--windows 16] [--transform plain|quarot] [--threads 1]

Loads resources/models/<model> and the shared calibration windows resources/calib/<model>/<corpus>.windows.pt
(run the pipeline's calibrate rule first), runs GPTQ W4 + MSE clip as the pipeline's gptq_weights rule does,
and prints the time and the mean relative layer error ||(W-Q)X||/||WX|| against RTN+clip on the same inputs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lpbench.archs import get_arch  # noqa: E402
from lpbench.methods import build_method  # noqa: E402
from lpbench.methods.gptq import compute_gptq  # noqa: E402
from lpbench.sources import load_model  # noqa: E402

ENTRIES = {"plain": {"method": "w4a4", "weights": "gptq", "w_clip": "mse"},
           "quarot": {"method": "quarot", "weights": "gptq", "w_clip": "mse", "rotation_seed": 0}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--corpus", default="austen")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--transform", default="plain", choices=sorted(ENTRIES))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    for name in args.models:
        model, _, _ = load_model(Path("resources/models") / name)
        arch = get_arch(model)
        stats_p = Path("resources/calib") / name / f"{args.corpus}.pt"
        windows = torch.load(Path("resources/calib") / name / f"{args.corpus}.windows.pt")[: args.windows]
        stats = torch.load(stats_p) if stats_p.exists() else {}
        meth = build_method(args.transform, ENTRIES[args.transform])
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = compute_gptq(meth, model, arch, stats, windows)
        dt = time.perf_counter() - t0
        print(f"{name}: GPTQ W4 +clip ({args.transform}) on {windows.shape[0]} x {windows.shape[1]} tokens, "
              f"{len(out['gptq'])} linears, {args.threads} thread(s): {dt:.1f} s", flush=True)


if __name__ == "__main__":
    main()
