"""Rule evaluate: apply a method to a model, measure it, write one result JSON with provenance."""
import json
import time
from pathlib import Path

import torch

from lpbench.evaluate import run_evaluation
from lpbench.jobs import setup, write_json
from lpbench.methods import build_method
from lpbench.methods.gptq import load_gptq
from lpbench.provenance import code_revision, package_versions

log = setup(snakemake)
t0 = time.perf_counter()
method = build_method(snakemake.wildcards.method, snakemake.params.entry)
artifact = torch.load(snakemake.input.artifact)["artifact"] if "artifact" in snakemake.input.keys() else {}
if "gptq" in snakemake.input.keys():
    artifact = {**artifact, "gptq_weights": load_gptq(snakemake.input.gptq)}
result = run_evaluation(Path(snakemake.input.model).parent, method, artifact,
                        torch.load(snakemake.input.tokens), snakemake.params.settings,
                        device=snakemake.params.device)
corpus = json.loads(Path(snakemake.input.corpus).read_text())
result["corpus"] = {"id": snakemake.wildcards.corpus, "label": corpus["label"], "split": "evaluation"}
result["provenance"] = {"config_hash": snakemake.params.config_hash, "seed": snakemake.params.seed,
                        "threads": snakemake.threads, "packages": package_versions(),
                        "code_revision": code_revision(), "wall_time_s": round(time.perf_counter() - t0, 2)}
write_json(snakemake.output[0], result)
log.info("%s", {k: result["metrics"].get(k) for k in ("perplexity", "relative_error", "error")})
