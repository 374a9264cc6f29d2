"""Rule slanc_tables: SLaNC measurements + evaluation JSONs -> results/tables/slanc (model x case x
variant), slanc_layers (predicted vs measured norm-input RMS per norm) and slanc_cost (runtime extras)."""
import json
from pathlib import Path

import pandas as pd
import torch
from transformers import AutoConfig

from lpbench.archs import spec_for_model_type
from lpbench.hwcost import energy_pj, load_costs
from lpbench.jobs import setup
from lpbench.methods import ModelDims, build_method
from lpbench.methods.slanc import dynamic_op_counts
from lpbench.slanc_measure import layer_rows, summary_rows
from lpbench.tables import write_table

log = setup(snakemake)
p = snakemake.params
evals = {}
for path in snakemake.input.evals:
    r = json.loads(Path(path).read_text())
    evals[(r["model"]["id"], r["method"]["name"])] = r["metrics"]

rows, layers = [], []
for path in snakemake.input.measures:
    res = torch.load(path)
    meta = res["meta"]
    model = meta["model"]
    ref = evals.get((model, p.fp32_method), {})
    for row in summary_rows(res):
        method = p.variant_methods.get(row["variant"]) if row["case"] == "default" else None
        m = evals.get((model, method), {}) if method else {}
        out = {"model": model, **row, "method": method or "", "fmt": res["fmt"], "order": res["order"],
               "windows": meta["windows"], "seqlen": meta["seqlen"]}
        if meta["causal"]:
            out["perplexity"] = m.get("perplexity")
            out["ppl_rel_to_fp32"] = (m["perplexity"] / ref["perplexity"] - 1) \
                if m.get("perplexity") and ref.get("perplexity") else None
        else:
            out["encoder_rel_err"] = m.get("relative_error")
        if row["case"] != "default":
            out["note"] = (f"stress: function-preserving residual-stream reparametrization x{res['stress_k']:g} "
                           f"(FP32 output unchanged; input check rel. dev. {res['stress_check_rel']:.1e})")
        rows.append(out)
    if meta["causal"] and ref:
        rows.append({"model": model, "case": "default", "variant": "fp32", "method": p.fp32_method,
                     "fmt": "fp32", "perplexity": ref.get("perplexity"), "ppl_rel_to_fp32": 0.0,
                     "windows": meta["windows"], "seqlen": meta["seqlen"]})
    layers += [{"model": model, **r} for r in layer_rows(res)]

cols = ["model", "case", "variant", "method", "fmt", "order", "norm_vectors", "overflow_count",
        "underflow_count", "over_underflow_count", "norms_with_overflow", "norms_with_underflow",
        "subnormal_square_frac", "max_rel_err", "perplexity", "ppl_rel_to_fp32", "encoder_rel_err",
        "windows", "seqlen", "note"]
df = pd.DataFrame(rows)
df = df[[c for c in cols if c in df.columns]]
write_table(df, snakemake.output.csv, snakemake.output.md,
            "SLaNC: norm statistics in emulated low precision (counts over all norms x vectors of the "
            "measured windows; perplexity over the evaluation windows)")
write_table(pd.DataFrame(layers), snakemake.output.layers_csv, snakemake.output.layers_md,
            "SLaNC: predicted (weights only) vs measured norm-input RMS, per norm")

costs = load_costs(snakemake.input.costs)
cost_rows = []
for meta_path in snakemake.input.models:
    cfg = AutoConfig.from_pretrained(Path(meta_path).parent)
    arch = spec_for_model_type(cfg.model_type)
    dims = ModelDims.from_config(cfg, arch)
    model = Path(meta_path).parent.name
    for variant, name in p.variant_methods.items():
        method = build_method(name, p.methods[name])
        ops = method.ops_per_token(dims, arch)
        c = dynamic_op_counts(dims, arch) if method.params["variant"] == "dynamic" else \
            {"compares": 0.0, "divides": 0.0, "mults": 0.0, "vectors": dynamic_op_counts(dims, arch)["vectors"]}
        cost_rows.append({"model": model, "variant": variant, "method": name,
                          "norm_vectors_per_token": c["vectors"], "compares": c["compares"],
                          "divides": c["divides"], "mults": c["mults"],
                          "extra_ops_per_token": c["compares"] + c["divides"] + c["mults"],
                          "extra_energy_pj_per_token": energy_pj(ops, costs)["total"],
                          "gemm_macs_per_token": dims.gemm_macs})
write_table(pd.DataFrame(cost_rows), snakemake.output.cost_csv, snakemake.output.cost_md,
            "SLaNC vs dynamic scaling: runtime ops added per token (all norms)")
log.info("slanc tables: %d rows, %d layer rows", len(df), len(layers))
