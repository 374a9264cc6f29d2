"""Rule tender_exactness (TENDER-2): integer-only Tender layers vs fake quantization on real layers.

For every (model, corpus, tender method) of the rule: load the FP32 model and the method's calibrated
artifact, run the first evaluation window, and check the input sites of the first, middle and last block
with :meth:`lpbench.methods.tender.Tender.exactness_on_model` (INT32 accumulator, overflow flagged); then one
row per (model, method) with :func:`lpbench.accel.tender.overflow_check`: the largest partial sum of those
layers against the INT32 range, pass / fail.
"""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from pathlib import Path

import pandas as pd
import torch

from lpbench.accel.tender import overflow_check
from lpbench.archs import get_arch
from lpbench.data import eval_windows
from lpbench.integrity import load_checked
from lpbench.jobs import compute, setup
from lpbench.limits import check_job_seqlen
from lpbench.methods import build_method
from lpbench.sources import load_model, special_tokens
from lpbench.tables import write_table

log = setup(snakemake)  # noqa: F821
rows = []
loaded = {}
for (model_id, corpus, meth), meta, art_path, tok_path in zip(
        snakemake.params.triples, snakemake.input.models, snakemake.input.artifacts, snakemake.input.tokens):  # noqa: F821
    if model_id not in loaded:
        loaded.clear()
        loaded[model_id] = load_model(Path(meta).parent)
    model, _, mmeta = loaded[model_id]
    arch = get_arch(model)
    settings = snakemake.params.settings[model_id]  # noqa: F821
    check_job_seqlen(Path(meta).parent, settings["seqlen"], "evaluation")
    bos = special_tokens(Path(meta).parent, mmeta)["bos"] if mmeta.get("bos_per_window") else None
    window = eval_windows(torch.load(tok_path), settings["seqlen"], 1, bos_id=bos)
    method = build_method(meth, snakemake.params.entries[meth])  # noqa: F821
    artifact = load_checked(art_path)["artifact"]
    with compute():
        checks = method.exactness_on_model(model, arch, artifact, window)
    for r in checks:
        rows.append({"model": model_id, "corpus": corpus, "method": meth, "check": "exactness", **r})
    summary = {"model": model_id, "corpus": corpus, "method": meth, **overflow_check(checks)}
    log.info("%s / %s: largest partial sum %d (INT32 limit %d): %s", model_id, meth, summary["acc_max_abs"],
             summary["acc_limit"], "pass" if summary["pass"] else "FAIL")
    log.info("%s / %s: %d layers, mismatches %d, overflow %d", model_id, meth, len(rows),
             sum(r["mismatches"] for r in rows if r["method"] == meth and r["model"] == model_id),
             sum(r["overflow"] for r in rows if r["method"] == meth and r["model"] == model_id))
    rows.append(summary)
df = pd.DataFrame(rows)
write_table(df, snakemake.output.csv, snakemake.output.md,  # noqa: F821
            "TENDER-2: integer shift accumulation vs fake-quant dequantize-and-sum on real layers "
            "(first evaluation window; mismatches = output elements whose INT accumulator differs from the "
            "exact integer product of the fake-quant tensors; overflow = INT32 range exceeded). Rows with "
            "check = int32_overflow: per (model, method), the largest value a group partial sum, shifted "
            "accumulator or accumulator held over those layers against the INT32 range (pass = 1: none "
            "overflowed; mismatches there = their sum over the layers). Basis: our reconstruction (integer "
            "datapath; the official code is fake-quant)")
