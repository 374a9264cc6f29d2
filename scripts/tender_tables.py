"""Rule tender_tables: Tender perplexity table, granularity comparison (TENDER-1) and perplexity vs G
(TENDER-3) from the evaluation JSONs.

Runs standalone too: ``python scripts/tender_tables.py`` builds a mock ``snakemake`` from
``results/evals`` (see the bottom of this file).
"""

import json
import math
from pathlib import Path

import pandas as pd

ROLE_LABELS = {"tender": "Tender", "per_tensor": "per-tensor", "per_row": "per-row (token)",
               "per_column": "per-column (channel)", "smoothquant": "SmoothQuant", "fp32": "FP32"}
#: baselines the claim compares Tender with, per activation width (TENDER-1 of the digest: per-tensor and
#: per-row at INT8 and INT4, SmoothQuant at INT4)
CLAIM_BASELINES = {8: ("per_tensor", "per_row"), 4: ("per_tensor", "per_row", "smoothquant")}


def _model_groups(model_dir: Path, params: dict) -> tuple[int | None, str]:
    from lpbench.archs import spec_for_model_type
    from lpbench.methods.tender import resolve_groups

    if params.get("groups") is not None:
        return int(params["groups"]), "configured"
    cfg = json.loads((model_dir / "config.json").read_text())
    cfg = cfg.get("text_config", cfg) if "hidden_size" not in cfg else cfg
    spec = spec_for_model_type(cfg["model_type"])
    return resolve_groups(int(params.get("bits", 8)), cfg["model_type"], cfg.get("hidden_size"),
                          cfg.get("num_hidden_layers"), cfg.get("intermediate_size") or cfg.get("ffn_dim"),
                          cfg.get("max_position_embeddings"), spec.mlp_kind)


def tender_perplexity(ppl: pd.DataFrame, roles: dict, model_dirs: dict, artifacts: dict) -> pd.DataFrame:
    """One row per (model, method) with its role, widths and, for Tender, G / scheme / scope."""
    role_of = {meth: (role, int(bits)) for role, by_bits in roles.items() for bits, meth in by_bits.items()}
    rows = []
    fp32 = ppl[ppl["method"] == "fp32"].set_index("model")["perplexity"]
    for r in ppl.to_dict("records"):
        params = json.loads(r["params"])
        row = {"model": r["model"], "method": r["method"], "kind": r["kind"]}
        if r["kind"] == "tender":
            bits = int(params["bits"])
            G, src = _model_groups(model_dirs[r["model"]], params)
            art = artifacts.get((r["model"], r["method"]), {})
            scheme = ("round_down" if int(art["meta/scheme_round_down"]) else "round_up") \
                if "meta/scheme_round_down" in art else params.get("scheme")
            row.update(role="tender" if role_of.get(r["method"], ("",))[0] == "tender" else "tender (sweep)",
                       a_bits=bits, w_bits=int(params.get("weight_bits") or bits), groups=G, groups_source=src,
                       scope=params.get("scope", "linear"), scheme=scheme,
                       calib_windows=int(art["meta/calib_windows"]) if "meta/calib_windows" in art else None)
        elif r["method"] == "fp32":
            row.update(role="fp32", a_bits=32, w_bits=32)
        else:
            role, bits = role_of.get(r["method"], ("other", None))
            row.update(role=role, a_bits=params.get("a_bits", bits), w_bits=params.get("w_bits"))
        row.update(perplexity=r["perplexity"], ppl_vs_fp32=(r["perplexity"] / fp32[r["model"]]
                   if r["model"] in fp32 and r["perplexity"] is not None and not pd.isna(r["perplexity"]) else None),
                   windows=r["windows"], seqlen=r["seqlen"], error=r["error"], caveat=r["caveat"])
        rows.append(row)
    cols = ["model", "method", "kind", "role", "a_bits", "w_bits", "groups", "groups_source", "scope", "scheme",
            "calib_windows", "perplexity", "ppl_vs_fp32", "windows", "seqlen", "error", "caveat"]
    df = pd.DataFrame(rows)
    df = df.reindex(columns=cols)
    order = {"fp32": 0, "per_tensor": 1, "per_row": 2, "per_column": 3, "smoothquant": 4, "tender": 5,
             "tender (sweep)": 6}
    df["_o"] = df["role"].map(order).fillna(9)
    df = df.sort_values(["model", "a_bits", "_o", "groups"], ascending=[True, False, True, True], kind="stable")
    return df.drop(columns="_o").reset_index(drop=True)


def granularity(df: pd.DataFrame, roles: dict) -> pd.DataFrame:
    """Per (model, bits): Tender next to every baseline role; ``coarse_over_tender`` = the best claimed
    baseline's perplexity / Tender's (>= 1: Tender is at least as good as each of them);
    ``tender_over_per_column`` = how close Tender comes to per-column (1 = equal)."""
    rows = []
    for model in dict.fromkeys(df["model"]):
        sub = df[df["model"] == model].set_index("method")["perplexity"]
        fp32 = sub.get("fp32")
        for bits in sorted({int(b) for by in roles.values() for b in by}, reverse=True):
            vals = {role: sub.get(roles[role].get(bits, roles[role].get(str(bits), "")))
                    for role in roles}
            vals = {k: (None if v is None or pd.isna(v) else float(v)) for k, v in vals.items()}
            if vals.get("tender") is None:
                continue
            claimed = [r for r in CLAIM_BASELINES.get(bits, ()) if vals.get(r) is not None]
            missing = [r for r in CLAIM_BASELINES.get(bits, ()) if vals.get(r) is None]
            best = min(claimed, key=lambda r: vals[r]) if claimed else None
            t = vals["tender"]
            rows.append({
                "model": model, "bits": bits, "fp32": fp32,
                **{f"ppl_{r}": vals.get(r) for r in roles},
                "claim_baselines": ", ".join(claimed), "missing_baselines": ", ".join(missing),
                "best_claim_baseline": best,
                "coarse_over_tender": (vals[best] / t) if best else None,
                "tender_over_per_column": (t / vals["per_column"]) if vals.get("per_column") else None,
                "tender_over_fp32": (t / fp32) if fp32 else None,
            })
    return pd.DataFrame(rows)


def groups_figure(df: pd.DataFrame):
    """Perplexity vs G (INT4, linear scope), one panel per model with a sweep; reference lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    t = df[(df["kind"] == "tender") & (df["a_bits"] == 4) & (df["scope"] == "linear")
           & df["perplexity"].notna()]
    models = [m for m in dict.fromkeys(t["model"]) if t.loc[t["model"] == m, "groups"].nunique() >= 2]
    if not models:
        models = list(dict.fromkeys(t["model"]))[:1]
    fig, axes = plt.subplots(1, max(1, len(models)), figsize=(5.0 * max(1, len(models)), 3.8), squeeze=False)
    refs = [("fp32", None, "k", "--"), ("per_tensor", 4, "#c44e52", ":"), ("per_row", 4, "#dd8452", "-."),
            ("per_column", 4, "#55a868", "--"), ("smoothquant", 4, "#8172b3", ":")]
    for ax, model in zip(axes[0], models):
        s = t[t["model"] == model].sort_values("groups")
        if len(s):
            sns.lineplot(data=s, x="groups", y="perplexity", marker="o", ax=ax, color="#4c72b0",
                         label="Tender INT4 (W4A4)", errorbar=None)
            for _, r in s.iterrows():
                ax.annotate(f"{r['perplexity']:.3g}", (r["groups"], r["perplexity"]), textcoords="offset points",
                            xytext=(0, 6), ha="center", fontsize=7)
        m = df[df["model"] == model]
        for role, bits, color, ls in refs:
            sel = m[(m["role"] == role) & ((m["a_bits"] == bits) if bits else True) & m["perplexity"].notna()]
            if len(sel):
                v = float(sel["perplexity"].iloc[0])
                ax.axhline(v, color=color, ls=ls, lw=1.2,
                           label=f"{ROLE_LABELS[role]}{' INT4' if bits else ''} ({v:.3g})")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("number of groups G (log2)")
        ax.set_ylabel("perplexity (log)")
        ax.set_title(model)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def main(snakemake) -> None:
    import torch

    from lpbench.jobs import setup
    from lpbench.plots import save
    from lpbench.tables import load_results, perplexity_table, write_table

    log = setup(snakemake)
    roles = {role: {int(b): m for b, m in by.items()} for role, by in snakemake.params.roles.items()}
    ppl = perplexity_table(load_results(snakemake.input.evals))
    model_dirs = {Path(p).parent.name: Path(p).parent for p in snakemake.input.models}
    artifacts = {}
    for (m, _c, meth), path in zip(snakemake.params.artifact_triples, snakemake.input.artifacts):
        art = torch.load(path)["artifact"]
        artifacts[(m, meth)] = {k: v for k, v in art.items() if k.startswith("meta/")}
    df = tender_perplexity(ppl, roles, model_dirs, artifacts)
    write_table(df, snakemake.output.csv, snakemake.output.md,
                "Tender and granularity baselines: perplexity (model x method x bits)")
    gran = granularity(df, roles)
    write_table(gran, snakemake.output.gran, snakemake.output.gran_md,
                "Tender vs activation-quantization granularity (TENDER-1): coarse_over_tender >= 1 means Tender "
                "is at least as good as every claimed baseline")
    save(groups_figure(df), snakemake.output.png, snakemake.output.pdf)
    log.info("tender tables: %d rows, granularity %d rows", len(df), len(gran))


if __name__ == "__main__" and "snakemake" not in globals():
    from lpbench.jobs import mock_snakemake

    evals = sorted(str(p) for p in Path("results/evals").glob("*/*/*.json"))
    snakemake = mock_snakemake(  # noqa: F811 — standalone run on whatever results exist
        input={"evals": evals, "models": sorted(str(p) for p in Path("resources/models").glob("*/lpbench_model.json")),
               "artifacts": []},
        output={"csv": "results/tables/tender_perplexity.csv", "md": "results/tables/tender_perplexity.md",
                "gran": "results/tables/tender_granularity.csv", "gran_md": "results/tables/tender_granularity.md",
                "png": "results/figures/tender_groups.png", "pdf": "results/figures/tender_groups.pdf"},
        params={"roles": {"tender": {8: "tender-int8", 4: "tender-int4"},
                          "per_tensor": {8: "pertensor-w8a8", 4: "pertensor-w4a4"},
                          "per_row": {8: "rtn-w8a8", 4: "rtn-w4a4"},
                          "per_column": {8: "percol-w8a8", 4: "percol-w4a4"},
                          "smoothquant": {8: "smoothquant-w8a8", 4: "smoothquant-w4a4"}},
                "artifact_triples": []})
    main(snakemake)
elif "snakemake" in globals():
    main(snakemake)  # noqa: F821
