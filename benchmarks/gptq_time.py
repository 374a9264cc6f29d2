"""Benchmark (not a test): CPU seconds of one GPTQ weight set (lpbench.gptq, true-sequential, as the pipeline's
gptq_weights rule runs it) against the FLOP floor of its work, and a peer GPTQ on the same layer.

    PYTHONPATH=src python benchmarks/gptq_time.py [--models smollm2-135m gemma3-270m] [--corpus austen]
        [--sets plain quarot] [--seed 0] [--windows 16] [--threads 1]
        [--peer-python /tmp/peerenv/bin/python] [--peer-layer 1]

Loads resources/models/<model> and the shared calibration windows resources/calib/<model>/<corpus>.windows.pt (run
the pipeline's calibrate rule first). Per weight set it prints the measured process CPU-s by phase and the floor:

    floor = (forward + hessian + columns) FLOP / peak, peak = measured 1-thread SGEMM rate (1024^3, best of 5)
    forward  = one block forward per layer over the N calibration tokens (what a true-sequential pass needs):
               2·N·Σ(in·out) over the block linears + causal attention 2·N·T·heads·head_dim (QKᵀ and AV, half
               of the T×T square each) + the online Hadamards' multiply-adds (QuaRot: before o/down, and Gemma's
               post-norm rotations), at 2 FLOP per multiply-add
    hessian  = N·c·(c + 1) per distinct linear input of width c (the symmetric xᵀx: one triangle)
    columns  = per GPTQ run (rows R, columns C, block B): lazy-batch updates 2·R·Σ_blocks B·(C − end of block)
               + in-block rank-1 updates 2·R·Σ_i (B − i) + the inverse-Hessian Cholesky factor (2/3)·C³

The MSE clip search (80 candidate scales per weight row, QuaRot's grid) is elementwise work with two
transcendentals per element and candidate, not in the floor: it is printed on its own line.

Peer (--peer-python: an interpreter of a separate environment holding llmcompressor, never a dependency of
lpbench): llm-compressor's ``quantize_weight`` on layer ``--peer-layer``'s down_proj and stacked q/k/v of the
plain set's model, with our Hessian and our per-channel symmetric INT4 scales (its observer's scale is
replaced by ours, zero point 0, strategy channel; block 128, dampening 0.01, no act-order), against our
``gptq_quantize`` on the same inputs: time ratio and both layer errors tr((W−Q)H(W−Q)ᵀ).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lpbench.archs import get_arch, get_submodule  # noqa: E402
from lpbench.gptq import Hessian, gptq_quantize, weight_scale  # noqa: E402
from lpbench.methods import build_method  # noqa: E402
from lpbench.methods.gptq import compute_gptq  # noqa: E402
from lpbench.rotation import hadamard_ops  # noqa: E402
from lpbench.sources import load_model  # noqa: E402

ENTRIES = {"plain": {"method": "w4a4", "weights": "gptq", "w_clip": "mse"},
           "quarot": {"method": "quarot", "weights": "gptq", "w_clip": "mse"}}


def sgemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """FLOP per process-CPU-second of a 1-thread n³ SGEMM, best of ``repeats``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        a @ b
        best = min(best, time.process_time() - t0)
    return 2 * n ** 3 / best


def _columns_flop(rows: int, cols: int, block: int = 128) -> float:
    f = 0.0
    for i1 in range(0, cols, block):
        b = min(block, cols - i1)
        f += 2 * rows * b * (cols - i1 - b) + 2 * rows * b * (b + 1) / 2
    return f + 2 / 3 * cols ** 3


def floor_terms(model, arch, n_tokens: int, seqlen: int, rotated: bool) -> dict[str, float]:
    """FLOP of the work of one weight set (module docstring), by term."""
    cfg = model.config
    rel = {**arch.attn, **arch.mlp}
    block = arch.blocks(model)[0]
    shape = {r: (get_submodule(block, p).in_features, get_submodule(block, p).out_features) for r, p in rel.items()}
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    heads, layers = cfg.num_attention_heads, cfg.num_hidden_layers
    fwd = 2 * n_tokens * sum(i * o for i, o in shape.values()) + 2 * n_tokens * seqlen * heads * hd
    if rotated:
        for r in ("o", "down", "fc2"):
            if r in shape:
                fwd += 2 * n_tokens * sum(hadamard_ops(shape[r][0])) / 2
        if arch.placement == "sandwich":
            fwd += 2 * 2 * n_tokens * sum(hadamard_ops(cfg.hidden_size)) / 2
    inputs = {"qkv": shape["q"][0], "o": shape["o"][0]}
    gated = arch.mlp_kind == "gated"
    inputs.update({"up": shape["up" if gated else "fc1"][0], "down": shape["down" if gated else "fc2"][0]})
    hess = sum(n_tokens * c * (c + 1) for c in inputs.values())
    runs = [("k", "v", "q"), ("o",), ("up", "gate") if gated else ("fc1",), ("down",) if gated else ("fc2",)]
    cols = sum(_columns_flop(sum(shape[r][1] for r in run), shape[run[0]][0]) for run in runs)
    return {"forward": layers * fwd, "hessian": layers * hess, "columns": layers * cols}


def time_set(name: str, set_name: str, seed: int, corpus: str, n_windows: int, peak: float) -> dict:
    model, _, _ = load_model(Path("resources/models") / name)
    arch = get_arch(model)
    calib = Path("resources/calib") / name
    windows = torch.load(calib / f"{corpus}.windows.pt")[:n_windows]
    stats = torch.load(calib / f"{corpus}.pt") if (calib / f"{corpus}.pt").exists() else {}
    entry = dict(ENTRIES[set_name], **({"seed": seed} if set_name == "quarot" else {}))
    meth = build_method(set_name, entry)
    prof: dict[str, float] = {}
    t0, w0 = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        out = compute_gptq(meth, model, arch, stats, windows, profile=prof)
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    terms = floor_terms(model, arch, windows.numel(), windows.shape[1], set_name == "quarot")
    return {"model": name, "set": set_name, "cpu_s": cpu, "wall_s": wall, "phases": prof, "terms": terms,
            "floor_s": sum(terms.values()) / peak, "linears": len(out["gptq"]), "tokens": windows.numel()}


def print_set(r: dict, peak: float) -> None:
    t, p = r["terms"], r["phases"]
    print(f"\n{r['model']} / {r['set']}: {r['linears']} linears, N = {r['tokens']} tokens", flush=True)
    for k in ("forward", "hessian", "columns"):
        print(f"  floor {k:8s} {t[k] / 1e9:9.1f} GFLOP -> {t[k] / peak:6.2f} s")
    print(f"  floor total    {sum(t.values()) / 1e9:9.1f} GFLOP / {peak / 1e9:.1f} GFLOP/s = {r['floor_s']:.2f} s")
    print("  measured CPU-s by phase: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(p.items())))
    rest = r["cpu_s"] - sum(p.values())
    print(f"  measured total {r['cpu_s']:.2f} CPU-s (wall {r['wall_s']:.2f} s; outside phases {rest:.2f}); "
          f"clip search {p.get('clip', 0):.2f} s")
    print(f"  ratio measured / floor = {r['cpu_s'] / r['floor_s']:.2f} "
          f"(without the clip search: {(r['cpu_s'] - p.get('clip', 0)) / r['floor_s']:.2f})", flush=True)


PEER = r'''
import json, sys, time, torch
from compressed_tensors.quantization import QuantizationArgs
from llmcompressor.modifiers.gptq.gptq_quantize import quantize_weight
torch.set_num_threads(int(sys.argv[2]))
d = torch.load(sys.argv[1])
args = QuantizationArgs(num_bits=4, type="int", symmetric=True, strategy="channel")
res = {}
for name, (w, H, s) in d.items():
    best, q = float("inf"), None
    for _ in range(3):
        t0 = time.process_time()
        q, _, _ = quantize_weight(w[None].clone(), H[None].clone(), s[None].clone(), torch.zeros_like(s)[None],
                                  None, args, blocksize=128, percdamp=0.01)
        best = min(best, time.process_time() - t0)
    res[name] = best
    torch.save(q[0], sys.argv[1] + "." + name + ".q")
print(json.dumps(res))
'''


class _Stop(Exception):
    pass


def _layer_inputs(name, corpus, n_windows, layer):
    """Layer ``layer``'s stacked k/v/q weight and down_proj weight of the FP model with their input Hessians
    on the calibration windows (the model runs up to that layer only)."""
    model, _, _ = load_model(Path("resources/models") / name)
    arch = get_arch(model)
    windows = torch.load(Path("resources/calib") / name / f"{corpus}.windows.pt")[:n_windows]
    blk = arch.blocks(model)[layer]
    lin = {r: get_submodule(blk, p) for r, p in {**arch.attn, **arch.mlp}.items()}
    hs = {"qkv": Hessian(lin["q"].in_features), "down": Hessian(lin["down"].in_features)}

    def stop(mod, args, out):
        raise _Stop
    hooks = [lin["q"].register_forward_pre_hook(lambda m, a: hs["qkv"].add(a[0])),
             lin["down"].register_forward_pre_hook(lambda m, a: hs["down"].add(a[0])),
             blk.register_forward_hook(stop)]
    with torch.inference_mode():
        for w in windows:
            try:
                model(w.reshape(1, -1), use_cache=False)
            except _Stop:
                pass
    for h in hooks:
        h.remove()
    w_qkv = torch.cat([lin[r].weight.data for r in ("k", "v", "q")])
    return {"qkv": w_qkv, "down": lin["down"].weight.data.clone()}, {"qkv": hs["qkv"].H, "down": hs["down"].H}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "gemma3-270m"])
    ap.add_argument("--corpus", default="austen")
    ap.add_argument("--sets", nargs="+", default=["plain", "quarot"], choices=sorted(ENTRIES))
    ap.add_argument("--seed", type=int, default=0, help="the quarot set's seed (R1 signs)")
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--peer-layer", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = max(sgemm_peak(), sgemm_peak())
    print(f"1-thread SGEMM peak: {peak / 1e9:.1f} GFLOP/s (process CPU time; contended machines measure less)")
    results = []
    for name in args.models:
        for set_name in args.sets:
            r = time_set(name, set_name, args.seed, args.corpus, args.windows, peak)
            print_set(r, peak)
            results.append(r)
    if args.peer_python:
        for name in args.models:
            results.append(run_peer(name, args))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))


def run_peer(name: str, args) -> dict:
    ws, hs = _layer_inputs(name, args.corpus, args.windows, args.peer_layer)
    out = {"model": name, "peer": {}}
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "layer.pt"
        scales = {k: weight_scale(ws[k], 4, "mse") for k in ws}
        torch.save({k: (ws[k], hs[k], scales[k]) for k in ws}, f)
        proc = subprocess.run([args.peer_python, "-c", PEER, str(f), str(args.threads)], capture_output=True,
                              text=True)
        if proc.returncode:
            print(f"peer failed:\n{proc.stderr[-3000:]}")
            return out
        theirs = json.loads(proc.stdout.strip().splitlines()[-1])
        for k in ws:
            best, q = float("inf"), None
            for _ in range(3):
                t0 = time.process_time()
                q = gptq_quantize(ws[k], hs[k], 4, "mse", 128, 0.01, scale=scales[k])
                best = min(best, time.process_time() - t0)
            q_peer = torch.load(f"{f}.{k}.q")
            e_ours, e_peer = (float(torch.einsum("ij,jk,ik->", (ws[k] - x).double(), hs[k].double(),
                                                 (ws[k] - x).double())) for x in (q, q_peer))
            out["peer"][k] = {"ours_s": best, "theirs_s": theirs[k], "err_ours": e_ours, "err_theirs": e_peer,
                              "same_codes": float((q == q_peer).float().mean())}
            print(f"peer {name} layer {args.peer_layer} {k} {tuple(ws[k].shape)}: ours {best:.3f} s, "
                  f"llm-compressor {theirs[k]:.3f} s, ours/theirs {best / theirs[k]:.2f}; tr((W-Q)H(W-Q)^T) ours "
                  f"{e_ours:.4g}, theirs {e_peer:.4g}; identical values {out['peer'][k]['same_codes']:.4f}")
    return out


if __name__ == "__main__":
    main()
