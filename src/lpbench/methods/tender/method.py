"""The registered method kind ``tender``: calibration (its own pass over the calibration windows), apply
(every block linear, and for scope "all" the attention), per-token op counts (docs/papers/tender.md)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lpbench.accel.tender import SCHEMES, tender_group_index
from lpbench.archs import ArchSpec, activations_pass, get_submodule
from lpbench.methods import BITS, Bool, Choice, Int, Method, ModelDims, register
from lpbench.methods.tender.attention import (ALL_FAMILIES, ATTN_IMPL, TenderAttention, register_attention,
                                              set_attn_impl)
from lpbench.methods.tender.collector import Collector
from lpbench.methods.tender.exactness import exactness_on_model
from lpbench.methods.tender.groups import resolve_groups
from lpbench.methods.tender.quantizers import BatchContext, TenderActQuant, TenderLinear, input_sites, site_policy
from lpbench.quant import QuantSpec, fake_quant, replace_module, weight_quant


def _window_nll(model: nn.Module, window: torch.Tensor) -> float:
    logits = model(window, use_cache=False).logits[:, :-1].float()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1),
                           reduction="sum").item()


@register
class Tender(Method):
    """Tender decomposed quantization (what was verified in the official code: docs/papers/tender.md).

    Parameters: ``bits`` (activation width), ``groups`` (G; None → official per-model table, else the
    family default, see :func:`resolve_groups`), ``chunk`` (rows per chunk), ``scope`` ("linear" | "all"),
    ``scheme`` ("auto" → chosen by NLL on the first calibration window when ``static``; "round_up";
    "round_down"), ``weight_bits`` (None → ``bits``), ``static`` (True: calibrated TMax and channel groups
    as in the paper's Table 2; False: only the bias is calibrated, TMax/CMax/groups at runtime),
    ``calib_windows`` (None → every shared calibration window; N → the first N), ``w_clip`` ("none":
    absmax RTN weights, official; "mse": MSE clip-searched per-row scales, not official).
    """
    kind = "tender"
    defaults = {"bits": 8, "groups": None, "chunk": 256, "scope": "linear", "scheme": "auto",
                "weight_bits": None, "static": True, "calib_windows": None, "w_clip": "none"}
    spec = {"bits": BITS, "weight_bits": Int(2, 16, none=True), "groups": Int(1, none=True), "chunk": Int(1),
            "scope": Choice("linear", "all"), "scheme": Choice("auto", "round_up", "round_down"), "static": Bool,
            "calib_windows": Int(1, none=True), "w_clip": Choice("none", "mse")}

    def __init__(self, name: str = "", **params):
        super().__init__(name, **params)
        self.resolved_groups: int | None = None
        self.groups_source = ""
        self._wq_cache: dict = {}          # MSE-clipped weights by (name, storage): one search per job

    # ---- helpers ----------------------------------------------------------------------------------
    def groups_for_model(self, model: nn.Module, arch: ArchSpec) -> int:
        if self.params["groups"] is not None:
            self.resolved_groups, self.groups_source = self.params["groups"], "configured"
        else:
            c = model.config
            self.resolved_groups, self.groups_source = resolve_groups(
                self.params["bits"], c.model_type, c.hidden_size, c.num_hidden_layers,
                getattr(c, "intermediate_size", None) or getattr(c, "ffn_dim", None),
                getattr(c, "max_position_embeddings", None), arch.mlp_kind)
        return self.resolved_groups

    def _check_scope(self, arch: ArchSpec) -> None:
        if self.params["scope"] == "all" and arch.family not in ALL_FAMILIES:
            raise NotImplementedError(
                f"method '{self.name}': Tender scope 'all' (quantized Q/K/V/probabilities) is implemented "
                f"through a transformers attention function for the plain attention of {ALL_FAMILIES}; "
                f"family '{arch.family}' is not supported ("
                + ("gemma3's attention adds soft-capping and per-layer scaling choices this function does "
                   "not reproduce" if arch.family == "gemma3" else
                   "BERT is an encoder whose attention module does not dispatch to that interface")
                + "). Use scope 'linear'.")

    def _attn_prefix(self, arch: ArchSpec) -> str:
        return arch.attn["q"].rpartition(".")[0]

    def _install(self, model, arch, G, artifact: dict, scheme: str, collect: bool):
        """Replace every block linear by a TenderLinear (and attach attention states for "all").
        Returns what :meth:`_uninstall` needs to restore the model."""
        bits, chunk = self.params["bits"], self.params["chunk"]
        wspec = QuantSpec(bits=self.params["weight_bits"] or bits, granularity="per_row")
        use_static = bool(int(artifact.get("meta/static", torch.tensor(0)))) if artifact else False
        originals, quantizers, states = {}, {}, {}
        ctx = BatchContext()
        hook = model.register_forward_pre_hook(ctx.hook, with_kwargs=True)
        for i in range(len(arch.blocks(model))):
            prefix = f"{arch.layers}.{i}"
            for label, roles in input_sites(arch):
                use_bias, unsigned = site_policy(arch, model, label)
                site = f"{prefix}:{label}"
                q = TenderActQuant(bits, G, chunk, unsigned, use_bias, scheme, consumers=len(roles))
                if f"site/{site}/bias" in artifact and q.use_bias:
                    q.bias_cal = artifact[f"site/{site}/bias"].float()
                if use_static and f"site/{site}/tmax" in artifact:
                    q.tmax_cal = artifact[f"site/{site}/tmax"].float()
                    q.group_cal = tender_group_index(artifact[f"site/{site}/cmax"].float(), q.tmax_cal, G, scheme)
                if collect:
                    q.collector = Collector()
                quantizers[site] = q
                for role in roles:
                    name = f"{prefix}.{arch.block_linears()[role]}"
                    lin = get_submodule(model, name)
                    w = lin.weight.detach()
                    if self.params["w_clip"] == "none":
                        wq = fake_quant(w, wspec)
                    else:
                        key = (name, w.data_ptr(), tuple(w.shape))
                        if key not in self._wq_cache:
                            self._wq_cache[key] = weight_quant(w, wspec.bits, self.params["w_clip"])
                        wq = self._wq_cache[key]
                    new = TenderLinear(lin, wq, q, fp_weight=w, batch_ctx=ctx)
                    replace_module(model, name, new)
                    originals[name] = lin
            if self.params["scope"] == "all":
                attn = get_submodule(model, f"{prefix}.{self._attn_prefix(arch)}")
                st = TenderAttention(bits, G, chunk, scheme)
                key = f"attn/{prefix}"
                for b in ("q_bias", "k_bias"):
                    if f"{key}/{b}" in artifact:
                        setattr(st, b, artifact[f"{key}/{b}"].float())
                if use_static and f"{key}/q_tmax" in artifact:
                    for s in ("q", "s"):
                        tm = artifact[f"{key}/{s}_tmax"].float()
                        setattr(st, f"{s}_tmax", tm)
                        setattr(st, f"{s}_group",
                                tender_group_index(artifact[f"{key}/{s}_cmax"].float(), tm, G, scheme))
                    st.k_scale = artifact[f"{key}/k_scale"].float()
                    st.v_scale = artifact[f"{key}/v_scale"].float()
                if collect:
                    st.collector = Collector()
                attn.tender_attn = st
                states[key] = (attn, st)
        prev_impl = None
        if self.params["scope"] == "all":
            register_attention()
            prev_impl = model.config._attn_implementation
            set_attn_impl(model, ATTN_IMPL)
        return {"originals": originals, "quantizers": quantizers, "states": states, "prev_impl": prev_impl,
                "hook": hook}

    def _uninstall(self, model, handle) -> None:
        handle["hook"].remove()
        for name, lin in handle["originals"].items():
            replace_module(model, name, lin)
        for attn, _ in handle["states"].values():
            del attn.tender_attn
        if handle["prev_impl"] is not None:
            set_attn_impl(model, handle["prev_impl"])

    # ---- interface --------------------------------------------------------------------------------
    @torch.no_grad()
    def calibrate(self, model: nn.Module, arch: ArchSpec, stats: dict, windows: torch.Tensor) -> dict:
        """Own pass over ``windows`` (one at a time, like the official scripts) with the model quantized in
        runtime mode (runtime bias/TMax/CMax, round-up); records per chunk position the mean channel bias
        and the max TMax/CMax of every input site (and the attention statistics for scope "all"), then
        for ``scheme='auto'`` (static mode, causal LM) picks round-up vs round-down by the NLL of the
        first window with static TMax/groups and runtime bias (``select_best_scheme``). ``stats`` is not
        used: Tender needs per-chunk-position statistics of the *quantized* model."""
        windows = self.own_windows(windows)
        collected = self.collect_pass(model, arch, windows, [len(windows)])[len(windows)]
        return self.calibrate_from_pass(model, arch, collected, windows)

    def own_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """The calibration windows this configuration reads: the first ``calib_windows`` (all if None)."""
        return windows if self.params["calib_windows"] is None else windows[: self.params["calib_windows"]]

    def pass_key(self) -> str:
        """Name of the statistics pass this configuration's calibration makes: the pass (runtime mode,
        round-up) depends on everything but ``calib_windows``, ``static`` and ``scheme``, so configurations
        that differ only in those can share one pass over the most windows, read at each one's window count
        (rule ``shared_pass``; :meth:`collect_pass`)."""
        p = self.params
        return (f"tender-b{p['bits']}-w{p['weight_bits'] or p['bits']}-g{p['groups'] or 'auto'}-c{p['chunk']}-"
                f"{p['scope']}-clip{p['w_clip']}")

    @torch.no_grad()
    def collect_pass(self, model: nn.Module, arch: ArchSpec, windows: torch.Tensor, at: list[int]) -> dict:
        """The statistics pass over ``windows`` (one window at a time), read after each window count in
        ``at``: ``{k: {statistic: tensor}}``. The reading after k windows is what a pass over the first k
        alone records (running sums and maxima in window order; nothing depends on later windows)."""
        self._check_scope(arch)
        G = self.groups_for_model(model, arch)
        want = sorted(set(at))
        if not want or want[0] < 1 or want[-1] > len(windows):
            raise ValueError(f"method '{self.name}': pass readings {want} outside 1..{len(windows)} windows")
        out: dict[int, dict] = {}
        handle = self._install(model, arch, G, {}, "round_up", collect=True)
        try:
            for i in range(want[-1]):
                activations_pass(model, arch, windows[i: i + 1])
                if i + 1 in want:
                    out[i + 1] = self._collected(handle)
        finally:
            self._uninstall(model, handle)
        return out

    @staticmethod
    def _collected(handle) -> dict[str, dict]:
        return {"sites": {site: q.collector.result() for site, q in handle["quantizers"].items()},
                "states": {key: st.collector.result() for key, (_, st) in handle["states"].items()}}

    @torch.no_grad()
    def calibrate_from_pass(self, model: nn.Module, arch: ArchSpec, collected: dict, windows: torch.Tensor) -> dict:
        """The artifact from a pass's statistics (:meth:`collect_pass`) over this configuration's ``windows``
        (static or runtime mode, and the ``scheme='auto'`` choice on the first window)."""
        G = self.groups_for_model(model, arch)
        static = bool(self.params["static"])
        art: dict[str, torch.Tensor] = {}
        for site, r in collected["sites"].items():
            if "bias" in r:
                art[f"site/{site}/bias"] = r["bias"]
            if static:
                art[f"site/{site}/tmax"] = r["tmax"]
                art[f"site/{site}/cmax"] = r["cmax"]
        for key, r in collected["states"].items():
            for b in ("q_bias", "k_bias"):
                art[f"{key}/{b}"] = r[b]
            if static:
                for k in ("q_tmax", "q_cmax", "s_tmax", "s_cmax", "k_scale", "v_scale"):
                    art[f"{key}/{k}"] = r[k]
        scheme = self.params["scheme"]
        nll = {}
        if scheme == "auto":
            if static and arch.causal and len(windows):
                # official select_best_scheme: static scales + groups, runtime bias (no bias file loaded)
                no_bias = {k: v for k, v in art.items() if not k.endswith("_bias") and not k.endswith("/bias")}
                no_bias["meta/static"] = torch.tensor(1)
                for cand in ("round_down", "round_up"):
                    h = self._install(model, arch, G, no_bias, cand, collect=False)
                    try:
                        nll[cand] = _window_nll(model, windows[:1])
                    finally:
                        self._uninstall(model, h)
                scheme = "round_down" if nll["round_down"] <= nll["round_up"] else "round_up"
            else:
                scheme = "round_up"          # runtime grouping (official runtime path) or no LM loss
        art["meta/groups"] = torch.tensor(G)
        art["meta/bits"] = torch.tensor(self.params["bits"])
        art["meta/chunk"] = torch.tensor(self.params["chunk"])
        art["meta/static"] = torch.tensor(int(static))
        art["meta/calib_windows"] = torch.tensor(int(len(windows)))
        art["meta/scheme_round_down"] = torch.tensor(int(scheme == "round_down"))
        for cand, v in nll.items():
            art[f"meta/select_nll_{cand}"] = torch.tensor(v, dtype=torch.float64)
        return art

    @torch.no_grad()
    def apply(self, model: nn.Module, arch: ArchSpec, artifact: dict) -> nn.Module:
        """Replace every block linear by a :class:`TenderLinear` (RTN per-output-channel weights, Tender
        activations) using the artifact's bias / static scales / scheme; with an empty artifact everything
        is computed at runtime with round-up (or the configured scheme). Scope "all" also installs the
        Tender attention function."""
        self._check_scope(arch)
        artifact = artifact or {}
        G = self.groups_for_model(model, arch)
        if "meta/groups" in artifact and int(artifact["meta/groups"]) != G:
            raise ValueError(f"method '{self.name}': artifact was calibrated with G={int(artifact['meta/groups'])}"
                             f", configuration resolves to G={G}")
        if self.params["scheme"] in SCHEMES:                 # an explicit scheme wins
            scheme = self.params["scheme"]
        elif "meta/scheme_round_down" in artifact:            # "auto": what calibration selected
            scheme = "round_down" if int(artifact["meta/scheme_round_down"]) else "round_up"
        else:                                                 # "auto" without calibration: runtime default
            scheme = "round_up"
        if not self.params["static"]:
            artifact = {k: v for k, v in artifact.items() if k != "meta/static"}
        self.applied_scheme = scheme
        self._install(model, arch, G, artifact, scheme, collect=False)
        return model

    # ---- hardware ops -----------------------------------------------------------------------------
    def _groups_for_dims(self, dims: ModelDims) -> int:
        if self.params["groups"] is not None:
            return self.params["groups"]
        if self.resolved_groups is not None:
            return self.resolved_groups
        kind = "gated" if dims.mlp_matrices == 3 else "standard"
        return resolve_groups(self.params["bits"], "llama" if kind == "gated" else "opt", dims.hidden,
                              dims.layers, dims.intermediate, None, kind)[0]

    def ops_breakdown(self, dims: ModelDims) -> dict[str, dict]:
        """Per-token op counts, split into what any per-tensor INT linear needs and what Tender adds:
        ``{item: {"count", "op" (cost-table name), "tender_only", "note"}}``. Linear scope only (the
        attention matmuls depend on the sequence length, which ModelDims does not carry)."""
        d, L, G, chunk = dims, dims.layers, self._groups_for_dims(dims), self.params["chunk"]
        static = bool(self.params["static"])
        gated = d.mlp_matrices == 3
        q_out = (d.heads + 2 * d.kv_heads) * d.head_dim
        # (C_in, out, has_bias) per site
        sites = [(d.hidden, q_out, True), (d.heads * d.head_dim, d.hidden, not gated),
                 (d.hidden, (d.mlp_matrices - 1) * d.intermediate, True), (d.intermediate, d.hidden, False)]
        n_in = L * sum(c for c, _, _ in sites)
        n_out = L * sum(o for _, o, _ in sites)
        mac_op = "int8" if max(self.params["bits"], self.params["weight_bits"] or self.params["bits"]) <= 8 else "int32"
        out = {
            "gemm_mult": {"count": d.gemm_macs, "op": f"{mac_op}_mult", "tender_only": False,
                          "note": "integer MACs (INT4 charged as INT8)"},
            "gemm_acc": {"count": d.gemm_macs, "op": "int32_add", "tender_only": False, "note": "INT32 accumulate"},
            "input_quant": {"count": float(n_in), "op": "fp32_mult", "tender_only": False,
                            "note": "one scale multiply per input element"},
            "output_dequant": {"count": float(n_out), "op": "fp32_mult", "tender_only": False,
                               "note": "one multiply by s_w*s_min per output element"},
            "shift": {"count": float(n_out * (G - 1)), "op": "int32_add", "tender_only": True,
                      "note": f"G-1={G - 1} accumulator shifts per output (all groups non-empty: upper bound); "
                              "a shift is charged as an INT32 add (no shift energy in the cost table)"},
        }
        bias_in = L * sum(c for c, _, b in sites if b)
        bias_out = L * sum(o for _, o, b in sites if b)
        bias_macs = L * sum(c * o for c, o, b in sites if b) / chunk
        out["bias_subtract"] = {"count": float(bias_in), "op": "fp32_add", "tender_only": True,
                                "note": "X - b per biased input element"}
        out["bias_add"] = {"count": float(bias_out), "op": "fp32_add", "tender_only": True,
                           "note": "+ b.W^T per biased output element"}
        if not static:
            out["bias_gemv_mult"] = {"count": bias_macs, "op": "fp32_mult", "tender_only": True,
                                     "note": "b.W^T once per chunk (amortized per token); offline when static"}
            out["bias_gemv_add"] = {"count": bias_macs, "op": "fp32_add", "tender_only": True, "note": ""}
            out["bias_minmax"] = {"count": float(2 * bias_in), "op": "fp32_add", "tender_only": True,
                                  "note": "runtime max/min per channel for (max+min)/2"}
            out["cmax_compare"] = {"count": float(n_in), "op": "fp32_add", "tender_only": True,
                                   "note": "running |x| max per channel (CMax; TMax from CMax per chunk)"}
            out["group_compare"] = {"count": float(L * sum(c for c, _, _ in sites) * (G - 1) / chunk),
                                    "op": "fp32_add", "tender_only": True,
                                    "note": "CMax vs G-1 thresholds once per chunk (amortized per token)"}
        return out

    def exactness_on_model(self, model: nn.Module, arch: ArchSpec, artifact: dict, window: torch.Tensor,
                           blocks: list[int] | None = None, acc_bits: int = 32) -> list[dict]:
        """TENDER-2 on real layers with this method's calibrated artifact
        (:func:`lpbench.methods.tender.exactness.exactness_on_model`)."""
        return exactness_on_model(self, model, arch, artifact, window, blocks, acc_bits)

    def ops_per_token(self, dims: ModelDims) -> dict[str, float]:
        ops: dict[str, float] = {}
        for item in self.ops_breakdown(dims).values():
            ops[item["op"]] = ops.get(item["op"], 0.0) + float(item["count"])
        return ops
