"""Diagnostic (not a test): why Gemma-3's rotation must run after the pre-norm gain.

    PYTHONPATH=src python benchmarks/gemma_rotation_errors.py [--model resources/models/gemma3-270m]
        [--tokens 256]

For every layer's q_proj and gate_proj (inputs = the pre-norm outputs x̂ ⊙ γ on a window of the calibration
text), the relative output error ||Q_a(x') Q_w(W')ᵀ - x Wᵀ|| / ||x Wᵀ|| of W4A4 (per-token INT4 activations,
per-channel RTN INT4 weights) under three exact reparametrizations of the same FP layer:

* ``none``:         x' = x̂ ⊙ γ,          W' = W
* ``fold+rotate``:  x' = x̂ · Q,           W' = (W diag γ) · Q   (gain folded, then the stream rotation: our
                                                                  first Gemma variant)
* ``online-after``: x' = (x̂ ⊙ γ) · Q,     W' = W · Q             (the current variant)

Prints the median and max over layers per scheme and the share of x̂'s energy in its largest channel.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from lpbench.archs import get_arch, get_submodule  # noqa: E402
from lpbench.quant import QuantSpec, fake_quant  # noqa: E402
from lpbench.rotation import OnlineHadamard  # noqa: E402
from lpbench.sources import load_model  # noqa: E402

A4 = QuantSpec(bits=4, granularity="per_row")


def rel_err(x, w):
    ref = x @ w.T
    out = fake_quant(x, A4) @ fake_quant(w, A4).T
    return float((out - ref).norm() / ref.norm())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resources/models/gemma3-270m")
    ap.add_argument("--tokens", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, tok, _ = load_model(Path(args.model), tokenizer=True)
    arch = get_arch(model)
    ids = tok("It is a truth universally acknowledged, that a single man in possession of a good fortune, must be "
              "in want of a wife. " * 20, return_tensors="pt").input_ids[:, : args.tokens]
    captured = {}
    hooks = []
    for i, block in enumerate(arch.blocks(model)):
        for role, lin_rel in (("attn_in", arch.attn["q"]), ("mlp_in", arch.mlp["gate"])):
            norm = get_submodule(block, arch.norms[role])
            hooks.append(norm.register_forward_pre_hook(
                lambda m, a, key=(i, role, lin_rel): captured.__setitem__(key, a[0][0].detach().double())))
    with torch.inference_mode():
        model(ids)
    for h in hooks:
        h.remove()
    d = model.config.hidden_size
    Q = OnlineHadamard(d, seed=0).matrix()
    errs = {"none": [], "fold+rotate": [], "online-after": []}
    share = []
    for (i, role, lin_rel), inp in sorted(captured.items()):
        block = arch.blocks(model)[i]
        norm = get_submodule(block, arch.norms[role])
        gamma = 1.0 + norm.weight.detach().double()
        W = get_submodule(block, lin_rel).weight.detach().double()
        xhat = inp * torch.rsqrt(inp.pow(2).mean(-1, keepdim=True) + norm.eps)    # x̂ (before the gain)
        x = xhat * gamma
        e = xhat.pow(2).sum(0)
        share.append(float(e.max() / e.sum()))
        errs["none"].append(rel_err(x, W))
        errs["fold+rotate"].append(rel_err(xhat @ Q, (W * gamma) @ Q))
        errs["online-after"].append(rel_err(x @ Q, W @ Q))
    print(f"{args.model}: {len(share)} linear inputs (q_proj, gate_proj of every layer), {ids.shape[1]} tokens")
    print(f"largest channel's share of the normalized (pre-gain) energy: median {statistics.median(share):.2f}, "
          f"max {max(share):.2f}")
    for k, v in errs.items():
        print(f"W4A4 relative output error, {k:13s}: median {statistics.median(v):.3g}, max {max(v):.3g}")


if __name__ == "__main__":
    main()
