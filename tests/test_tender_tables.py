"""Table logic of the Tender study (lpbench.studies.tender): roles, G resolution, granularity summary."""
import json

import pandas as pd
import pytest

from lpbench.studies.tender import analysis as tt

ROLES = {"tender": {8: "tender-int8", 4: "tender-int4"}, "per_tensor": {8: "pt8", 4: "pt4"},
         "per_row": {8: "rtn-w8a8", 4: "rtn-w4a4"}, "per_column": {8: "pc8", 4: "pc4"},
         "smoothquant": {8: "sq8", 4: "sq4"}}


def _ppl(rows):
    out = []
    for model, method, kind, params, ppl in rows:
        out.append({"model": model, "corpus": "c", "method": method, "kind": kind, "params": json.dumps(params),
                    "perplexity": ppl, "mean_nll": None, "windows": 8, "seqlen": 512, "nonfinite_windows": 0,
                    "error": "", "caveat": ""})
    return pd.DataFrame(out)


def test_roles_groups_and_granularity(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                                               "intermediate_size": 11008, "max_position_embeddings": 4096}))
    ppl = _ppl([("m", "fp32", "fp32", {}, 10.0),
                ("m", "tender-int8", "tender", {"bits": 8, "groups": None}, 10.1),
                ("m", "tender-int4", "tender", {"bits": 4, "groups": None}, 12.0),
                ("m", "tender-int4-g2", "tender", {"bits": 4, "groups": 2}, 20.0),
                ("m", "pt8", "rtn", {"w_bits": 8, "a_bits": 8}, 11.0),
                ("m", "rtn-w8a8", "rtn", {"w_bits": 8, "a_bits": 8}, 10.05),
                ("m", "pc8", "rtn", {"w_bits": 8, "a_bits": 8}, 10.02),
                ("m", "pt4", "rtn", {"w_bits": 4, "a_bits": 4}, 90.0),
                ("m", "rtn-w4a4", "rtn", {"w_bits": 4, "a_bits": 4}, 30.0),
                ("m", "sq4", "smoothquant", {"w_bits": 4, "a_bits": 4}, 15.0)])
    df = tt.tender_perplexity(ppl, ROLES, {"m": d}, {("m", "tender-int4"): {"meta/scheme_round_down": 1,
                                                                          "meta/calib_windows": 8}})
    t = df.set_index("method")
    assert t.loc["tender-int4", "groups"] == 14 and t.loc["tender-int8", "groups"] == 8   # Llama-2-7B table
    assert t.loc["tender-int4-g2", "role"] == "tender (sweep)" and t.loc["tender-int4", "scheme"] == "round_down"
    assert t.loc["pt4", "role"] == "per_tensor" and t.loc["tender-int4", "ppl_vs_fp32"] == pytest.approx(1.2)
    g = tt.granularity(df, ROLES).set_index("bits")
    # INT8: best of per-tensor 11.0 and per-row 10.05 → 10.05 / 10.1 < 1 (per-row wins)
    assert g.loc[8, "best_claim_baseline"] == "per_row"
    assert g.loc[8, "coarse_over_tender"] == pytest.approx(10.05 / 10.1)
    # INT4: SmoothQuant (15) is the best claimed baseline, per-column missing
    assert g.loc[4, "best_claim_baseline"] == "smoothquant"
    assert g.loc[4, "coarse_over_tender"] == pytest.approx(15 / 12)
    assert (pd.isna(g.loc[4, "tender_over_per_column"])
            and g.loc[8, "tender_over_per_column"] == pytest.approx(10.1 / 10.02))
    fig = tt.groups_figure(df)
    assert len(fig.axes) == 1


def test_calibration_rows_relative_to_largest_with_paired_interval(tmp_path):
    """rel_to_largest and its paired CI against hand-made NLLs: a constant per-token offset c gives exactly
    exp(c) (point and both ends); the largest set itself is 1; the runtime-TMax row is compared too."""
    import numpy as np

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                                               "intermediate_size": 11008, "max_position_embeddings": 4096}))
    ref = np.abs(np.random.default_rng(0).normal(3.0, 1.0, 1024))
    nll = {("m", "tender-int8-c2"): ref + 0.2, ("m", "tender-int8"): ref + 0.05, ("m", "tender-int8-c32"): ref,
           ("m", "tender-int8-dyn"): ref - 0.1}
    ppl = _ppl([("m", "fp32", "fp32", {}, 10.0)] +
               [("m", meth, "tender", {"bits": 8, "groups": None, **({"static": False} if "dyn" in meth else {})},
                 float(np.exp(v.mean()))) for (_, meth), v in nll.items()])
    arts = {("m", meth): {"meta/calib_windows": n} for meth, n in
            (("tender-int8-c2", 2), ("tender-int8", 8), ("tender-int8-c32", 32), ("tender-int8-dyn", 8))}
    df = tt.tender_perplexity(ppl, ROLES, {"m": d}, arts)
    cal = tt.calibration_rows(df, 512, nll).set_index("method")
    assert list(cal["calib_windows"]) == [2, 8, 32, 8]
    for meth, c in (("tender-int8-c2", 0.2), ("tender-int8", 0.05), ("tender-int8-c32", 0.0),
                    ("tender-int8-dyn", -0.1)):
        assert cal.loc[meth, "rel_to_largest"] == pytest.approx(np.exp(c))
        assert (cal.loc[meth, "rel_ci_low"] == pytest.approx(np.exp(c))
                and cal.loc[meth, "rel_ci_high"] == pytest.approx(np.exp(c)))
    assert cal.loc["tender-int8", "default"] and cal.loc["tender-int8-dyn", "tmax"].startswith("runtime")
    no_nll = tt.calibration_rows(df, 512)
    assert no_nll["rel_ci_low"].isna().all()


def test_granularity_compares_like_with_like(tmp_path):
    """TENDER-1 on equal weights: each Tender row is compared with the baselines that use its weight quantizer
    and width (SmoothQuant with absmax RTN weights for Tender's RTN row; SmoothQuant with MSE-clipped weights
    for Tender with MSE-clipped weights), and the configured unequal comparison is kept as a row marked
    like_with_like = 0; the ledger's check on like_with_like == 1 rows reads only the fair ones."""
    from lpbench.claims import evaluate_claim

    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                                               "intermediate_size": 11008, "max_position_embeddings": 4096}))
    mse = {"w_bits": 4, "a_bits": 4, "w_clip": "mse", "weights": "rtn"}
    ppl = _ppl([("m", "fp32", "fp32", {}, 10.0),
                ("m", "tender-int4", "tender", {"bits": 4, "groups": None, "w_clip": "none"}, 12.0),
                ("m", "tender-int4-wclip", "tender", {"bits": 4, "groups": None, "w_clip": "mse"}, 11.5),
                ("m", "pt4", "rtn", {"w_bits": 4, "a_bits": 4}, 90.0),
                ("m", "rtn-w4a4", "rtn", {"w_bits": 4, "a_bits": 4}, 30.0),
                ("m", "sq4", "smoothquant", mse, 11.0),                          # MSE-clipped weights
                ("m", "sq4-rtn", "smoothquant", {**mse, "w_clip": "none"}, 14.0)])
    variants = {"sq4-rtn": "smoothquant", "tender-int4-wclip": "tender"}
    df = tt.tender_perplexity(ppl, ROLES, {"m": d}, {}, variants)
    t = df.set_index("method")
    assert t.loc["sq4", "w_quant"] == "rtn-mse" and t.loc["sq4-rtn", "w_quant"] == "rtn"
    assert t.loc["tender-int4", "w_quant"] == "rtn" and t.loc["tender-int4-wclip", "w_quant"] == "rtn-mse"
    assert t.loc["sq4-rtn", "role"] == "smoothquant (rtn weights)" and t.loc["sq4-rtn", "claim_role"] == "smoothquant"
    assert t.loc["tender-int4-wclip", "role"] == "tender (rtn-mse weights)"
    g = tt.granularity(df, ROLES)
    assert len(g) == 3
    fair = g[g["like_with_like"] == 1].set_index("tender_method")
    rtn = fair.loc["tender-int4"]
    assert rtn["weights"] == "rtn" and rtn["claim_baselines"] == "per_tensor, per_row, smoothquant"
    assert "smoothquant=sq4-rtn (rtn)" in rtn["baseline_methods"] and "sq4 " not in rtn["baseline_methods"]
    assert rtn["best_claim_method"] == "sq4-rtn" and rtn["coarse_over_tender"] == pytest.approx(14 / 12)
    wc = fair.loc["tender-int4-wclip"]
    assert wc["weights"] == "rtn-mse" and wc["best_claim_method"] == "sq4"
    assert wc["missing_baselines"] == "per_tensor, per_row"
    assert wc["coarse_over_tender"] == pytest.approx(11 / 11.5)
    unfair = g[g["like_with_like"] == 0].iloc[0]
    assert unfair["tender_method"] == "tender-int4" and unfair["best_claim_method"] == "sq4"
    assert unfair["coarse_over_tender"] == pytest.approx(11 / 12)
    # the ledger's rule on the fair rows: Tender-MSE loses to SmoothQuant-MSE (11 < 11.5) → not reproduced;
    # without that row (only the RTN comparison) → reproduced; the unequal row alone would say otherwise
    rule = {"kind": "table_check", "table": "tender_granularity", "column": "coarse_over_tender", "op": ">=",
            "value": 1.0, "where": {"like_with_like": 1}, "label": ["model", "bits", "weights"]}
    claim = {"id": "TENDER-1", "paper": "tender", "statement": "s", "paper_value": "v", "rule": rule}
    assert evaluate_claim(claim, {"tender_granularity": g})["verdict"] == "not reproduced"
    only_rtn = g[g["tender_method"] == "tender-int4"]
    assert evaluate_claim(claim, {"tender_granularity": only_rtn})["verdict"] == "reproduced"
    # INT4 with no baseline on Tender's weights at all: no equal-weights comparison to make
    g2 = tt.granularity(df[df["method"] != "sq4-rtn"], ROLES)
    rtn2 = g2[(g2["like_with_like"] == 1) & (g2["tender_method"] == "tender-int4")].iloc[0]
    assert rtn2["missing_baselines"] == "smoothquant" and rtn2["best_claim_method"] == "rtn-w4a4"
