"""Tests of the IterL2Norm study driver (lpbench.studies.iterl2norm) and the remaining IterL2Norm checks:
single fp32 ops vs torch's own float32 arithmetic, exact norms in float64 with many iterations."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_model
from lpbench.studies import iterl2norm as st
from lpbench.studies.iterl2norm import figures, hardware, models, precision
from lpbench.accel import norm_macro
from lpbench.archs import get_arch
from lpbench.hwcost import load_costs
from lpbench.lowprec import FORMATS, Arith
from lpbench.methods.iterl2norm import IterNorm, norm_ops

F64 = torch.float64
ROOT = Path(__file__).resolve().parents[1]


def test_fp32_single_ops_match_torch_float32():
    g = torch.Generator().manual_seed(0)
    a32 = (torch.randn(5000, dtype=F64, generator=g)
           * 2.0 ** torch.randint(-140, 120, (5000,), generator=g).double()).float()
    b32 = (torch.randn(5000, dtype=F64, generator=g)
           * 2.0 ** torch.randint(-40, 40, (5000,), generator=g).double()).float()
    A = Arith("fp32")
    a, b = a32.double(), b32.double()
    assert (a32.abs() < torch.finfo(torch.float32).tiny).sum() > 100          # subnormals included
    for op, ref in ((A.add, a32 + b32), (A.sub, a32 - b32), (A.mul, a32 * b32), (A.div, a32 / b32)):
        np.testing.assert_array_equal(op(a, b).numpy(), ref.double().numpy())


@pytest.mark.parametrize("family", ["llama", "bert", "gemma3"])
def test_fp64_iterative_norm_is_the_exact_norm(family):
    """With enough iterations in float64 the replaced module equals the exact norm in float64 (the
    modules' own forward computes RMSNorm in float32, so the reference is torch's functional norm in
    float64 with the module's weights: LayerNorm for BERT, RMSNorm for Llama, (1 + w) RMSNorm for Gemma3)."""
    from lpbench.archs import get_submodule
    F = torch.nn.functional
    model = tiny_model(family)
    arch = get_arch(model)
    for name in arch.norm_names(model)[:3]:
        norm = get_submodule(model, name)
        w = norm.weight.detach().double()
        d = w.shape[0]
        x = torch.randn(3, 7, d, dtype=F64, generator=torch.Generator().manual_seed(1)) * 5 + 0.7
        if family == "bert":
            ref = F.layer_norm(x, (d,), w, norm.bias.detach().double(), norm.eps)
        else:
            eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
            ref = F.rms_norm(x, (d,), w + (1 if family == "gemma3" else 0), eps)
        out = IterNorm.from_module(norm, iters=8, fmt="fp64")(x)
        assert out.dtype == F64 and ((out - ref).norm() / ref.norm()).item() < 1e-14, name


def test_settings_merge_and_reject_unknown_keys():
    cfg = st.settings({"n_vectors": 8, "macro": {"lanes": 32}})
    assert cfg["n_vectors"] == 8 and cfg["macro"] == {"lanes": 32, "mem_width": 16}
    assert st.DEFAULTS["macro"]["lanes"] == 16                     # defaults not mutated
    with pytest.raises(ValueError, match="unknown key 'nvectors'"):
        st.settings({"nvectors": 8})


def test_unit_scale_is_exact_power_of_two():
    y = precision.synthetic("student_t3", 50, 96, 0) * 1e3
    s = precision.unit_scale(y)
    ratio = s / y
    assert torch.equal(ratio, ratio[:, :1].expand_as(ratio))      # one factor per row
    assert torch.equal(torch.frexp(ratio[:, 0])[0], torch.full((50,), 0.5, dtype=F64))   # powers of two
    rms = s.pow(2).mean(-1).sqrt()
    assert ((rms >= 1) & (rms < 2)).all()
    # S·a0² of the pow2 start is unchanged (S scales by a power of four)
    from lpbench.methods.iterl2norm import pow2_init
    S0, S1 = y.pow(2).sum(-1), s.pow(2).sum(-1)
    torch.testing.assert_close(S0 * pow2_init(S0) ** 2, S1 * pow2_init(S1) ** 2, rtol=1e-15, atol=0)


def test_error_curves_floors_and_fp64_convergence():
    y = precision.unit_scale(precision.synthetic("gaussian", 64, 256, 3))
    rows, floors = precision.error_curves(y, "fp64", {"it": {"algorithm": "iterl2norm"}, "fisr": {"algorithm": "fisr"}},
                                   max_iters=7)
    assert floors["E_round"] == 0 and floors["E_dp"] < 1e-15
    last = {r["algorithm"]: r for r in rows if r["iters"] == 7}
    assert last["it"]["err_max"] < 1e-14 and last["fisr"]["err_max"] < 1e-14
    # bf16: the exactly rounded result is the floor of everything; 0 iterations = the initial guess
    rows, floors = precision.error_curves(y, "bf16", {"it": {"algorithm": "iterl2norm"}}, max_iters=6)
    u = FORMATS["bf16"].u
    assert 0.2 * u < floors["E_round"] < u and floors["E_round"] <= floors["E_dp"] < 3 * u
    errs = [r["err_mean"] for r in rows]
    assert errs[0] > 5 * u and min(errs) >= floors["E_round"]
    assert rows[-1]["trunc_max"] < 1e-12


def test_sign_test_and_paired_counts():
    assert precision.sign_test(0, 0) == 1.0 and precision.sign_test(5, 5) == 1.0
    assert precision.sign_test(10, 0) == pytest.approx(2 / 2 ** 10)
    assert precision.sign_test(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 2 ** 10)
    y = precision.unit_scale(precision.synthetic("gaussian", 32, 64, 5))
    _, cell = precision.error_curves(y, "bf16", {"iterl2norm": {}, "fisr": {"algorithm": "fisr"}}, max_iters=5)
    assert cell["paired_better"] + cell["paired_worse"] <= 32 and 0 < cell["paired_p"] <= 1


def _fake_errors():
    """Two algorithms, one cell; mean errors by hand; floors E_dp = 2, E_round = 1 (target 3)."""
    rows = []
    for algo, errs in (("iterl2norm", [50, 9, 4, 3.0, 2.5]), ("fisr", [10, 5, 3.5, 3.2, 3.1])):
        for k, e in enumerate(errs):
            rows.append({"fmt": "fp32", "input": "gaussian", "d": 768, "algorithm": algo, "iters": k,
                         "err_mean": e, "err_max": 2 * e, "E_dp": 2.0, "E_round": 1.0, "u": 1.0,
                         "trunc_mean": 10.0 ** -k, "trunc_max": 10.0 ** (1 - k), "n_vectors": 4})
    return pd.DataFrame(rows)


def test_convergence_table_by_hand():
    c = precision.convergence_table(_fake_errors(), max_iters=4).set_index("algorithm")
    assert c.loc["iterl2norm", "iterations_to_format_precision"] == 3 and c.loc["iterl2norm", "reached"]
    assert c.loc["fisr", "iterations_to_format_precision"] == 5 and not c.loc["fisr", "reached"]  # K + 1
    assert c.loc["fisr", "iterations_truncation_mean"] == 0 and c.loc["fisr", "iterations_truncation_max"] == 1
    assert c.loc["fisr", "target_error"] == 3.0


def test_wins_table_by_hand():
    rows = []
    for d, (ours, theirs) in zip(st.OPT_DIMS, [(1, 2)] * 5 + [(2, 1)] * 3 + [(1, 1)]):
        for fmt in ("fp32", "fp16"):
            rows += [{"fmt": fmt, "input": "gaussian", "d": d, "algorithm": "iterl2norm", "iters": 5, "err_mean": ours},
                     {"fmt": fmt, "input": "gaussian", "d": d, "algorithm": "fisr", "iters": 5, "err_mean": theirs}]
    rows.append({"fmt": "fp32", "input": "real:m", "d": 768, "algorithm": "fisr", "iters": 5, "err_mean": 0.0})
    w = precision.wins_table(pd.DataFrame(rows)).set_index("fmt")
    assert (w.loc["fp32", ["wins", "ties", "losses", "paper_wins", "wins_minus_paper"]].tolist()
            == [5, 1, 3, 6, -1])
    assert w.loc["fp32", "paper_case"] and not w.loc["fp16", "paper_case"]
    assert w.loc["fp32", "d768"].startswith("iterl2norm") and w.loc["fp32", "d12288"] == "tie (1)"


def test_precision_study_small_config_runs_and_real_rows_are_separate():
    cfg = st.settings({"dims": [64], "opt_dims": [768], "formats": ["fp32", "bf16"], "n_vectors": 8,
                       "max_iters": 6, "inputs": ["gaussian"]})
    real = {"m": {32: torch.randn(5, 32, dtype=F64) * 300}}
    df = precision.precision_study(cfg, real)
    assert set(df["input"]) == {"gaussian", "real:m"}
    assert len(df) == 2 * 3 * len(cfg["variants"]) * 7
    assert df.loc[df["input"] == "real:m", "fp16_overflow_unscaled"].eq(5).all()   # 32·300² > 65504
    conv = precision.convergence_table(df)
    assert set(conv["algorithm"]) == set(cfg["variants"])
    assert precision.wins_table(df, dims=[768])["cases"].eq(1).all()


@pytest.mark.parametrize("family, widths", [("llama", {64}), ("bert", {64}), ("gemma3", {64, 16})])
def test_record_norm_inputs(family, widths):
    model = tiny_model(family)
    arch = get_arch(model)
    windows = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(0))
    rec = models.record_norm_inputs(model, arch, windows, tokens_per_window=4, max_vectors=1000)
    assert set(rec) == widths
    n_hidden = len([n for n in arch.norm_names(model) if "q_norm" not in n and "k_norm" not in n])
    assert rec[64].shape == (2 * 4 * n_hidden, 64)
    if family == "bert":                                          # LayerNorm inputs are centered
        assert rec[64].mean(-1).abs().max() < 1e-12
    if family == "gemma3":                                        # q/k norms per head: 4 + 1 heads
        assert rec[16].shape[0] == 2 * 4 * 2 * (4 + 1)


def test_latency_table_anchor_and_prediction():
    r = norm_macro.calibrate_overhead(64, 116, lanes=16, mem_width=16)
    assert norm_macro.cycles(64, lanes=16, mem_width=16, **r["overrides"]) == 116
    base = norm_macro.cycles(64, lanes=16, mem_width=16)          # fixed = 0
    assert r["fixed"] == 116 - base and r["feasible"]
    lat, curve = hardware.latency_table({"lanes": 16, "mem_width": 16}, [8, 16])
    conf = lat[lat["configured"]].set_index("d")
    assert conf.loc[64, "model_cycles"] == 116 and conf.loc[64, "rel_error"] == 0
    # predicted: the same overhead plus 2 passes of (1024 − 64)/16 more beats
    assert conf.loc[1024, "model_cycles"] == 116 + 2 * (1024 - 64) // 16
    assert set(lat["lanes"]) == {8, 16} and curve["d"].min() == 64 and curve["d"].max() == 1024


def test_energy_table_inverse_sqrt_part_by_hand():
    costs = load_costs(ROOT / "config" / "hw_costs.yaml")
    e = hardware.energy_table(costs, [64], ["fp32", "bf16"], [4]).set_index(["fmt", "datapath"])
    em, ea, ei = 3.7, 0.9, 0.1
    assert e.loc[("fp32", "iterl2norm"), "inverse_sqrt_part_pj"] == pytest.approx(5 * (4 * em + 2 * ea) + 2 * ei)
    assert e.loc[("fp32", "sqrtdiv-recip"), "inverse_sqrt_part_pj"] == pytest.approx(2 * 4 * em)
    assert e.loc[("fp32", "sqrtdiv-per-element"), "inverse_sqrt_part_pj"] == pytest.approx((65 * 4 - 64) * em)
    ops = norm_ops(64, "layernorm", "sqrtdiv", 0)
    assert e.loc[("fp32", "sqrtdiv-recip"), "energy_pj"] == pytest.approx(ops["mult"] * em + ops["add"] * ea + 8 * em)
    assert e.loc[("bf16", "iterl2norm"), "energy_family"] == "fp16"


def test_model_table_from_results():
    def res(model, method, kind, metrics, params=None):
        return {"model": {"id": model, "caveat": ""}, "corpus": {"id": "c"},
                "method": {"name": method, "kind": kind, "params": params or {}}, "metrics": metrics}
    p = {"algorithm": "iterl2norm", "fmt": "fp32", "iters": 5, "lam": 0.5, "init": "pow2"}
    results = [res("lm", "fp32", "fp32", {"kind": "perplexity", "perplexity": 10.0}),
               res("lm", "iterl2norm-5", "iterl2norm", {"kind": "perplexity", "perplexity": 10.1}, p),
               res("enc", "iterl2norm-5", "iterl2norm", {"kind": "encoder_error", "relative_error": 1e-6,
                                                         "cosine": 1.0}, p),
               res("lm", "rtn", "rtn", {"kind": "perplexity", "perplexity": 20.0})]
    df = models.model_table(results).set_index("model")
    assert list(df.index) == ["enc", "lm"]
    assert df.loc["lm", "rel_change_vs_fp32"] == pytest.approx(0.01)
    assert df.loc["enc", "relative_error"] == 1e-6 and math.isnan(df.loc["enc", "perplexity"])
    assert models.model_table([]).empty


def test_figures_render(tmp_path):
    from lpbench.plots import save
    cfg = st.settings({"dims": [64], "opt_dims": [768], "formats": ["bf16"], "n_vectors": 4, "max_iters": 3,
                       "inputs": ["gaussian"], "variants": {"iterl2norm": {}, "fisr": {"algorithm": "fisr"}}})
    df = precision.precision_study(cfg, {"m": {16: torch.randn(4, 16, dtype=F64)}})
    conv = precision.convergence_table(df)
    lat, curve = hardware.latency_table({"lanes": 16}, [16])
    for name, fig in (("e", figures.error_figure(df, conv)), ("r", figures.real_error_figure(df, conv)),
                      ("l", figures.latency_figure(curve, lat))):
        save(fig, tmp_path / f"{name}.png", tmp_path / f"{name}.pdf")
        assert (tmp_path / f"{name}.png").stat().st_size > 5000
