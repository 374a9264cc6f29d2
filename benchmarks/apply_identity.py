"""Bit-identity check of a method's apply path: build the model, apply the method as lpbench.evaluate does
(GPTQ set of the config's seed 0 where the method uses one), and save or compare every tensor of the finished
model and the logits of the first evaluation window.

    PYTHONPATH=src python benchmarks/apply_identity.py save|check OUT_DIR RESOURCES CONFIG model:method ...

``save`` before a change, ``check`` after it (exit status 1 if anything differs); CPU-s of apply printed."""
import sys
import time
from pathlib import Path

import torch
import yaml

from lpbench.archs import get_arch
from lpbench.data import eval_windows, load_tokens
from lpbench.methods import build_method
from lpbench.methods.gptq import gptq_key, load_gptq
from lpbench.sources import load_model

torch.set_num_threads(1)

mode, out, R = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
cfg = yaml.safe_load(Path(sys.argv[4]).read_text())
pairs = [p.split(":") for p in sys.argv[5:]]
out.mkdir(parents=True, exist_ok=True)
bad = 0
for model_id, name in pairs:
    torch.manual_seed(0)
    method = build_method(name, cfg["methods"][name])
    artifact = {}
    key = gptq_key(method, 0)
    if key:
        artifact["gptq_weights"] = load_gptq(R / f"gptq/{model_id}/austen/{key}.pt")
    model, _, _ = load_model(R / "models" / model_id)
    arch = get_arch(model)
    t0 = time.process_time()
    model = method.apply(model, arch, artifact)
    dt = time.process_time() - t0
    ids, _ = load_tokens(R / f"tokens/{model_id}/austen/evaluation.pt", R / f"tokens/{model_id}/austen/evaluation.json")
    win = eval_windows(ids, 512, 4)[:1]
    with torch.inference_mode():
        logits = model(win, use_cache=False).logits
    state = dict(model.state_dict())
    state.update({f"buf:{k}": v for k, v in model.named_buffers() if v is not None})
    rec = {"logits": logits, "state": state}
    f = out / f"{model_id}__{name}.pt"
    if mode == "save":
        torch.save(rec, f)
        print(f"saved {model_id} {name}: apply {dt:.2f} CPU-s")
    else:
        ref = torch.load(f)
        diff_keys = [k for k in ref["state"] if k not in state or not torch.equal(ref["state"][k], state[k])]
        extra = [k for k in state if k not in ref["state"]]
        same = torch.equal(ref["logits"], logits) and not diff_keys and not extra
        bad += not same
        print(f"{'IDENTICAL' if same else 'DIFFERENT'} {model_id} {name}: apply {dt:.2f} CPU-s; logits equal "
              f"{torch.equal(ref['logits'], logits)}; {len(state)} tensors, differing {diff_keys[:5]} "
              f"extra {extra[:5]}")
sys.exit(1 if bad else 0)
