"""One training run of the Unified Normalization study: (task, norm, seed) -> checkpoint, per-step log,
result with provenance.

Tasks (``unified_norm.tasks.<name>``):

``vision``  a small ViT on Fashion-MNIST (official train split for training, the 10,000-image test split
            for top-1); inputs scaled to [0, 1] and standardized with the training set's mean/std.
``lm``      a byte-level causal LM trained on random windows of a corpus' calibration text (the five
            Austen calibration novels) and evaluated on its evaluation text (*Persuasion*) with the
            suite's protocol: perplexity = exp(mean token NLL) over the first ``n_windows``
            non-overlapping windows of ``seqlen`` bytes, tail dropped (position t predicts byte t+1).

A task with ``outliers`` (vision only) is the UN-3 stress setting: on a fixed, seeded schedule of steps a
small fraction of the batch's patches is multiplied by a large factor before the forward pass
(:mod:`.outliers`); evaluation is on the clean test split. Each step's log row says whether it was one.

**Collapse** (decided before any result was read): a run has collapsed if its training loss or
parameters become non-finite at any step (training stops there), or if its final evaluation metric is
no better than a trivial predictor: top-1 <= 2 x chance (20 % on 10 classes), or perplexity >= the
unigram perplexity of the evaluation text under the training text's byte frequencies.

What every norm of a task shares, the stand-in for the paper's NMT task and why the collapse levels:
docs/papers/unified_norm.md ("Training runs").
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

from lpbench.data import eval_windows

from .models import build
from .norm import UnifiedNorm, scaled_un_spec
from .outliers import inject_patches, outlier_schedule, outlier_settings, schedule_summary

TRAIN_DEFAULTS = {"steps": 300, "batch": 64, "lr": 2e-3, "weight_decay": 0.05, "betas": [0.9, 0.999],
                  "lr_warmup_frac": 0.1}


# --------------------------------------------------------------------------------------------- data
class VisionData:
    def __init__(self, path, eval_cfg: dict):
        blob = torch.load(path)
        tr = blob["train"]["images"].float().div_(255.0)
        self.mean, self.std = tr.mean().item(), tr.std().item()
        self.train_x = ((tr - self.mean) / self.std).unsqueeze(1)
        self.train_y = blob["train"]["labels"]
        te = blob["test"]["images"].float().div_(255.0)
        n = eval_cfg.get("max_examples") or len(te)
        self.test_x = ((te[:n] - self.mean) / self.std).unsqueeze(1)
        self.test_y = blob["test"]["labels"][:n]
        self.eval_batch = int(eval_cfg.get("batch", 1000))
        self.classes = int(self.train_y.max().item()) + 1

    def batches(self, steps: int, batch: int, gen: torch.Generator):
        n, perm, pos = len(self.train_y), None, 0
        for _ in range(steps):
            if perm is None or pos + batch > n:
                perm, pos = torch.randperm(n, generator=gen), 0
            idx = perm[pos: pos + batch]
            pos += batch
            yield self.train_x[idx], self.train_y[idx]

    @staticmethod
    def loss(model, xb, yb):
        return F.cross_entropy(model(xb), yb)

    def trivial(self) -> float:
        return 2.0 / self.classes

    @torch.inference_mode()
    def evaluate(self, model) -> dict:
        model.eval()
        dev = next(model.parameters()).device
        correct = 0
        for i in range(0, len(self.test_y), self.eval_batch):
            logits = model(self.test_x[i: i + self.eval_batch].to(dev)).cpu()
            if not torch.isfinite(logits).all():
                return {"metric": "top1", "value": float("nan"), "examples": len(self.test_y)}
            correct += (logits.argmax(-1) == self.test_y[i: i + self.eval_batch]).sum().item()
        return {"metric": "top1", "value": 100.0 * correct / len(self.test_y), "examples": len(self.test_y)}


class TextData:
    def __init__(self, calibration: str, evaluation: str, eval_cfg: dict, seqlen: int):
        self.train_ids = torch.frombuffer(bytearray(Path(calibration).read_bytes()), dtype=torch.uint8).long()
        ev = torch.frombuffer(bytearray(Path(evaluation).read_bytes()), dtype=torch.uint8).long()
        self.seqlen = seqlen
        self.windows = eval_windows(ev, seqlen, eval_cfg.get("n_windows"))
        self.eval_batch = int(eval_cfg.get("batch", 16))
        self.eval_ids = ev

    def batches(self, steps: int, batch: int, gen: torch.Generator):
        hi = self.train_ids.numel() - self.seqlen
        for _ in range(steps):
            starts = torch.randint(0, hi, (batch,), generator=gen)
            yield torch.stack([self.train_ids[s: s + self.seqlen] for s in starts.tolist()]), None

    @staticmethod
    def loss(model, xb, _):
        logits = model(xb)[:, :-1]
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), xb[:, 1:].reshape(-1))

    def trivial(self) -> float:
        """Unigram perplexity of the evaluation windows' targets under add-one training byte frequencies."""
        counts = torch.bincount(self.train_ids, minlength=256).double() + 1.0
        logp = (counts / counts.sum()).log()
        return math.exp(-logp[self.windows[:, 1:].reshape(-1)].mean().item())

    @torch.inference_mode()
    def evaluate(self, model) -> dict:
        model.eval()
        nll, tokens = 0.0, 0
        for i in range(0, len(self.windows), self.eval_batch):
            w = self.windows[i: i + self.eval_batch]
            logits = model(w.to(next(model.parameters()).device))[:, :-1].cpu()
            part = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
            if not torch.isfinite(part):
                return {"metric": "perplexity", "value": float("nan"), "windows": len(self.windows)}
            nll += part.item()
            tokens += w[:, 1:].numel()
        return {"metric": "perplexity", "value": math.exp(nll / tokens), "mean_nll": nll / tokens,
                "windows": len(self.windows), "seqlen": self.seqlen}


def load_data(task: dict, inputs: dict):
    if task["kind"] == "vision":
        return VisionData(inputs["images"], task.get("eval", {}))
    return TextData(inputs["calibration"], inputs["evaluation"], task.get("eval", {}),
                    int(task["arch"].get("seqlen", 128)))


# ------------------------------------------------------------------------------------------ training
def _stat_module(model: nn.Module, name: str) -> nn.Module:
    mod = model.get_submodule(name)
    return mod


def lr_at(step: int, steps: int, base: float, warmup_frac: float) -> float:
    """Linear warm-up over ``warmup_frac`` of the run, then cosine decay to 0 (step counts from 1)."""
    warm = max(1, int(round(warmup_frac * steps)))
    if step <= warm:
        return base * step / warm
    return base * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


def train_run(task: dict, norm_spec: dict, seed: int, inputs: dict,
              device: str = "cpu") -> tuple[dict, pd.DataFrame, dict]:
    """Train one (task, norm, seed); return (result metrics, per-step log, checkpoint state)."""
    tcfg = {**TRAIN_DEFAULTS, **task.get("train", {})}
    steps, batch = int(tcfg["steps"]), int(tcfg["batch"])
    spec = scaled_un_spec(norm_spec, steps)
    data = load_data(task, inputs)
    torch.manual_seed(seed)
    arch = dict(task["arch"])
    if task["kind"] == "vision":
        arch.setdefault("classes", data.classes)
    model = build(task["kind"], spec, arch).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tcfg["lr"], betas=tuple(tcfg["betas"]))
    stat_mod = _stat_module(model, task.get("stat_layer", "blocks.0.norm1"))
    schedule, out_cfg = {}, None
    if task.get("outliers") is not None:                       # the UN-3 stress setting (.outliers)
        if task["kind"] != "vision":
            raise ValueError("unified_norm: injected outliers are implemented for vision tasks only")
        out_cfg, patch = outlier_settings(task["outliers"]), int(arch.get("patch", 7))
        schedule = outlier_schedule(out_cfg, steps, batch, (int(arch.get("image", 28)) // patch) ** 2, seed)
    seen = {}

    def hook(_m, args):
        x = args[0].detach().reshape(-1, args[0].shape[-1])
        seen["x2"] = (x * x).mean(0)

    handle = stat_mod.register_forward_pre_hook(hook)
    gen = torch.Generator().manual_seed(seed)
    rows, collapsed, reason = [], False, ""
    t0, c0 = time.perf_counter(), time.process_time()
    model.train()
    for step, (xb, yb) in enumerate(data.batches(steps, batch, gen), start=1):
        lr = lr_at(step, steps, tcfg["lr"], tcfg["lr_warmup_frac"])
        for g in opt.param_groups:
            g["lr"] = lr
        if step in schedule:
            xb = inject_patches(xb, schedule[step], patch, out_cfg["scale"])
        xb = xb.to(device)
        yb = yb.to(device) if yb is not None else None
        loss = data.loss(model, xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lv = loss.item()
        x2 = seen["x2"]
        row = {"step": step, "loss": lv, "lr": lr, "stat_batch": x2.mean().item(),
               "stat_batch_max": x2.max().item(), "outlier": int(step in schedule)}
        if isinstance(stat_mod, UnifiedNorm):
            row.update(stat_used=stat_mod.last["var"].mean().item(),
                       stat_running=stat_mod.running_var.mean().item(), skip=int(stat_mod.last["skip"]),
                       filtered=int(stat_mod.last["filtered"]))
        elif hasattr(stat_mod, "bn"):
            row.update(stat_used=float("nan"), stat_running=stat_mod.bn.running_var.mean().item(), skip=0, filtered=0)
        else:
            row.update(stat_used=float("nan"), stat_running=float("nan"), skip=0, filtered=0)
        rows.append(row)
        if not math.isfinite(lv) or not all(torch.isfinite(p).all() for p in model.parameters()):
            collapsed, reason = True, f"non-finite training loss/parameters at step {step}"
            break
    handle.remove()
    train_s = time.perf_counter() - t0
    log = pd.DataFrame(rows)
    if collapsed:
        ev = {"metric": "top1" if task["kind"] == "vision" else "perplexity", "value": float("nan")}
    else:
        ev = data.evaluate(model)
    trivial = data.trivial()
    value = ev["value"]
    if not collapsed:
        if not math.isfinite(value):
            collapsed, reason = True, "non-finite evaluation output"
        elif ev["metric"] == "top1" and value <= 100.0 * trivial:
            collapsed, reason = True, f"top-1 {value:.2f} % <= trivial level {100 * trivial:.0f} %"
        elif ev["metric"] == "perplexity" and value >= trivial:
            collapsed, reason = True, f"perplexity {value:.3g} >= unigram level {trivial:.3g}"
    skips = sum(int(m.skip_counter.item()) for m in model.modules() if isinstance(m, UnifiedNorm))
    # steps the filtration skipped at the logged norm, among the injected-outlier steps and the others
    filt_hit = int(((log["outlier"] == 1) & (log["filtered"] == 1)).sum()) if len(log) else 0
    filt_other = int(((log["outlier"] == 0) & (log["filtered"] == 1)).sum()) if len(log) else 0
    tail = log["loss"].tail(max(1, len(log) // 10))
    metrics = {**ev, "collapsed": collapsed, "collapse_reason": reason, "trivial_level": trivial,
               "steps_run": len(log), "final_train_loss": float(tail.mean()),
               "un_skipped_steps_all_layers": skips, "train_seconds": train_s,
               "cpu_seconds": time.process_time() - c0, **schedule_summary(schedule, steps),
               "filtered_outlier_steps": filt_hit, "filtered_other_steps": filt_other,
               "params": sum(p.numel() for p in model.parameters())}
    state = {"state_dict": model.state_dict(), "task_kind": task["kind"], "arch": arch, "norm": spec}
    return metrics, log, {"checkpoint": state, "norm_resolved": spec, "train": tcfg}


def load_model(checkpoint: dict) -> nn.Module:
    model = build(checkpoint["task_kind"], checkpoint["norm"], checkpoint["arch"])
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def run_job(task_name: str, task: dict, norm_name: str, norm_spec: dict, role: str, seed: int, inputs: dict,
            outputs: dict, threads: int, device: str = "cpu") -> dict:
    """Train, then write the checkpoint, the per-step log (CSV) and the result JSON with provenance."""
    from lpbench.jobs import write_json
    from lpbench.provenance import code_revision, config_hash, package_versions

    t0 = time.perf_counter()
    metrics, log, extra = train_run(task, norm_spec, seed, inputs, device)
    Path(outputs["ckpt"]).parent.mkdir(parents=True, exist_ok=True)
    torch.save(extra["checkpoint"], outputs["ckpt"])
    Path(outputs["log_csv"]).parent.mkdir(parents=True, exist_ok=True)
    log.to_csv(outputs["log_csv"], index=False)
    result = {"task": task_name, "norm": norm_name, "role": role, "seed": seed, "stress": bool(task.get("stress")),
              "metrics": metrics,
              "settings": {"task": task, "norm": norm_spec, "norm_resolved": extra["norm_resolved"],
                           "train": extra["train"]},
              "provenance": {"config_hash": config_hash(task, norm_spec, seed, threads), "seed": seed,
                             "threads": threads, "device": device, "packages": package_versions(),
                             "code_revision": code_revision(), "wall_seconds": time.perf_counter() - t0,
                             "basis": "official code (hikvision-research/Unified-Normalization, UN1d)"}}
    write_json(outputs["result"], result)
    return result
