"""Rule evaluate: apply a method to a model, measure it, write one result JSON with provenance.

The provenance holds the content hashes of every input read (model files, tokenizer, text, tokens,
artifact): a changed input changes this file, so what reads it reruns too, and a result always says
which model it was measured on."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

import json
import time
from pathlib import Path

from lpbench.data import load_tokens
from lpbench.evaluate import run_evaluation
from lpbench.integrity import load_checked
from lpbench.jobs import setup, write_json
from lpbench.limits import check_job_device, check_job_seqlen
from lpbench.methods import build_method
from lpbench.methods.gptq import load_clip_scales, load_gptq
from lpbench.provenance import code_revision, package_versions
from lpbench.sources import sha256_file

log = setup(snakemake)
t0 = time.perf_counter()
check_job_device(snakemake.params.device)
check_job_seqlen(Path(snakemake.input.model).parent, snakemake.params.settings["seqlen"], "evaluation")
method = build_method(snakemake.wildcards.method, snakemake.params.entry)
model_meta = json.loads(Path(snakemake.input.model).read_text())  # verified by load_model below
ids, tokens_meta = load_tokens(snakemake.input.tokens, snakemake.input.tokens_meta, model_meta,
                               snakemake.input.corpus)
has_artifact = "artifact" in snakemake.input.keys()
artifact, artifact_sha256, gptq_sha256, clip_scales_sha256 = {}, None, None, None  # each verified (<file>.sha256)
if has_artifact:
    blob, artifact_sha256 = load_checked(snakemake.input.artifact, with_hash=True)
    artifact = blob["artifact"]
if "gptq" in snakemake.input.keys():
    gptq, gptq_sha256 = load_gptq(snakemake.input.gptq, with_hash=True)
    artifact = {**artifact, "gptq_weights": gptq}
if "clip_scales" in snakemake.input.keys():     # an RTN + clip row: its search's result, from a GPTQ set
    scales, clip_scales_sha256 = load_clip_scales(snakemake.input.clip_scales, with_hash=True)
    artifact = {**artifact, "clip_scales": scales}
# causal LMs: the FP32 job (rule evaluate_reference) also writes the reference distribution, every other
# evaluation reads it (rule evaluate, input "reference"); encoders have neither
reference = snakemake.input.reference if "reference" in snakemake.input.keys() else None
reference_out = snakemake.output.reference if "reference" in snakemake.output.keys() else None
result = run_evaluation(Path(snakemake.input.model).parent, method, artifact, ids, snakemake.params.settings,
                        device=snakemake.params.device, reference=reference, reference_out=reference_out,
                        top_k=getattr(snakemake.params, "top_k", None), reference_method=snakemake.wildcards.method)
corpus = json.loads(Path(snakemake.input.corpus).read_text())
result["corpus"] = {"id": snakemake.wildcards.corpus, "label": corpus["label"], "split": "evaluation"}
result["provenance"] = {"config_hash": snakemake.params.config_hash, "seed": snakemake.params.seed,
                        "threads": snakemake.threads, "packages": package_versions(),
                        "code_revision": code_revision(),
                        "inputs": {"model_sha256": model_meta["content_sha256"],
                                   "weights_sha256": model_meta["weights_sha256"],
                                   "tokenizer_sha256": model_meta["tokenizer_sha256"],
                                   "text_sha256": tokens_meta["text"]["sha256"],
                                   "tokens_sha256": tokens_meta["tokens"]["sha256"],
                                   "artifact_sha256": artifact_sha256, "gptq_sha256": gptq_sha256,
                                   "clip_scales_sha256": clip_scales_sha256,
                                   "reference_sha256": sha256_file(Path(reference)) if reference else None},
                        "wall_time_s": round(time.perf_counter() - t0, 2)}
write_json(snakemake.output[0], result)
log.info("%s", {k: result["metrics"].get(k) for k in ("perplexity", "mean_kl", "top1_agreement", "relative_error",
                                                      "sqnr_db", "error")})
