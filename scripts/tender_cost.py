"""Rule tender_cost (TENDER-4): analytical output-stationary systolic-array model of a transformer's
linear layers at prefill, Tender shift accumulation vs explicit requantization vs per-tensor INT vs FP16.

Array geometry, clock and bandwidth come from ``tender_accelerator`` in config/hw_costs.yaml, energies
per op from its ``energy_pj`` (Horowitz 45 nm). Non-empty groups per tile: the mean measured on the
calibrated Tender artifact of the model when one exists (static TMax/CMax of every site and chunk
position), else G (upper bound: every group non-empty).
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from transformers import AutoConfig  # noqa: E402

from lpbench.accel.systolic import layer_comparison  # noqa: E402
from lpbench.archs import spec_for_model_type  # noqa: E402
from lpbench.hwcost import load_costs  # noqa: E402
from lpbench.jobs import setup  # noqa: E402
from lpbench.methods import ModelDims  # noqa: E402
from lpbench.methods.tender import artifact_nonempty_groups, resolve_groups  # noqa: E402
from lpbench.plots import save  # noqa: E402
from lpbench.tables import write_table  # noqa: E402

log = setup(snakemake)  # noqa: F821
p = snakemake.params.cost  # noqa: F821
costs = load_costs(snakemake.input.costs)  # noqa: F821
energy = {op: e["value"] for op, e in costs["energy_pj"].items()}
accel = {k: v["value"] for k, v in costs.get("tender_accelerator", {}).items()}

# model shapes: configured models (their config.json) + the extra shapes of the rule (Llama-2-7B)
shapes = {}
for meta in snakemake.input.models:  # noqa: F821
    d = Path(meta).parent
    cfg = AutoConfig.from_pretrained(d)
    spec = spec_for_model_type(cfg.model_type)
    shapes[d.name] = (ModelDims.from_config(cfg, spec), cfg.model_type,
                      getattr(cfg, "max_position_embeddings", None), spec.mlp_kind)
for name, e in p["extra_models"].items():
    dims = ModelDims(**{k: e[k] for k in ("hidden", "intermediate", "layers", "heads", "kv_heads", "head_dim",
                                          "vocab", "mlp_matrices")})
    shapes[name] = (dims, e["model_type"], e.get("max_positions"), "gated" if e["mlp_matrices"] == 3 else "standard")

# measured non-empty groups from the calibrated artifacts: {(model, bits): info}
measured = {}
for (m, _c, meth), path in zip(snakemake.params.artifact_triples, snakemake.input.artifacts):  # noqa: F821
    art = torch.load(path)["artifact"]
    bits = int(snakemake.params.entries[meth].get("bits", 8))  # noqa: F821
    info = artifact_nonempty_groups(art)
    if info["mean"] is not None:
        measured[(m, bits)] = {**info, "method": meth}

rows = []
for model, (dims, model_type, max_pos, mlp_kind) in shapes.items():
    for bits in p["bits"]:
        if (model, bits) in measured:
            info = measured[(model, bits)]
            G, g = info["groups"], info["mean"]
            basis = f"measured: mean non-empty groups per chunk over every site of {info['method']}'s artifact"
            src = "artifact"
        else:
            G, src = resolve_groups(bits, model_type, dims.hidden, dims.layers, dims.intermediate, max_pos, mlp_kind)
            g = G
            basis = "G (upper bound: every group non-empty)"
        row = {"model": model, "bits": bits, "G": G, "G_source": src, "groups_per_tile": g, "groups_basis": basis,
               "seqlen": p["seqlen"], "hidden": dims.hidden, "intermediate": dims.intermediate, "layers": dims.layers}
        row.update(layer_comparison(dims, p["seqlen"], bits, g, accel, energy))
        at_G = layer_comparison(dims, p["seqlen"], bits, G, accel, energy)
        row["speedup_vs_requant_at_G"] = at_G["speedup_vs_requant"]
        row["energy_vs_requant_at_G"] = at_G["energy_vs_requant"]
        row["gain_vs_requant_min"] = min(row["speedup_vs_requant"], row["energy_vs_requant"])
        rows.append(row)
df = pd.DataFrame(rows)
lead = ["model", "bits", "G", "groups_per_tile", "speedup_vs_requant", "energy_vs_requant", "gain_vs_requant_min",
        "speedup_vs_per_tensor", "energy_vs_per_tensor", "speedup_vs_fp16", "energy_vs_fp16",
        "speedup_vs_requant_at_G", "energy_vs_requant_at_G", "tender_bound", "requant_bound"]
df = df[lead + [c for c in df.columns if c not in lead]]
write_table(df, snakemake.output.csv, snakemake.output.md,  # noqa: F821
            f"TENDER-4 mechanism: prefill of {p['seqlen']} tokens through every block's linears on a "
            f"{accel.get('rows', 64)}x{accel.get('cols', 64)} array of {accel.get('pe_bits', 4)}-bit PEs; ratios are "
            "baseline / Tender (> 1: Tender faster or more energy-efficient). Not ANT / OLAccel / OliVe.")

# figure: ratio of each baseline design to Tender, speedup and energy, per model and width
sns.set_theme(style="whitegrid", context="paper")
long = []
names = {"requant": "explicit requant (same groups)", "per_tensor": "per-tensor INT (no groups)",
         "fp16": "FP16 array"}
for r in rows:
    for d, lab in names.items():
        long.append({"case": f"{r['model']}\nINT{r['bits']}", "design": lab, "metric": "speedup (cycles)",
                     "ratio": r[f"speedup_vs_{d}"]})
        long.append({"case": f"{r['model']}\nINT{r['bits']}", "design": lab, "metric": "energy efficiency",
                     "ratio": r[f"energy_vs_{d}"]})
ld = pd.DataFrame(long)
fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.4 * len(rows) * 2), 3.8), squeeze=False)
for ax, metric in zip(axes[0], ["speedup (cycles)", "energy efficiency"]):
    sns.barplot(data=ld[ld["metric"] == metric], x="case", y="ratio", hue="design", ax=ax)
    ax.axhline(1.0, color="k", lw=1, ls="--")
    ax.set_yscale("log")
    ax.set_title(f"Tender {metric}: baseline / Tender")
    ax.set_xlabel("")
    ax.set_ylabel("ratio (log; > 1 favours Tender)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
fig.tight_layout()
save(fig, snakemake.output.png, snakemake.output.pdf)  # noqa: F821
log.info("tender cost: %s", df[["model", "bits", "speedup_vs_requant", "energy_vs_requant"]].to_dict("records"))
