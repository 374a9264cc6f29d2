"""TENDER-2 on real layers: the integer-only execution of every input site of a model checked against the
fake-quant result with a calibrated artifact (the check itself is :func:`lpbench.accel.tender.exactness_check`)."""
from __future__ import annotations

import torch
import torch.nn as nn

from lpbench.accel.tender import SCHEMES, exactness_check, tender_group_index
from lpbench.archs import ArchSpec, activations_pass, get_submodule
from lpbench.methods.tender.quantizers import input_sites, site_policy


@torch.no_grad()
def exactness_on_model(method, model: nn.Module, arch: ArchSpec, artifact: dict, window: torch.Tensor,
                       blocks: list[int] | None = None, acc_bits: int = 32) -> list[dict]:
    """TENDER-2 on real layers: run the unmodified ``model`` on ``window`` (1, T), capture the input of
    the first linear of every input site (q for q/k/v, o, gate for gate/up (fc1), down (fc2)) in
    ``blocks`` (default: first, middle, last) and run :func:`exactness_check` on it with the method's
    calibrated artifact (channel bias, static TMax and groups, selected scheme) and the layer's weight.
    Linear scope only (the attention matmuls are not integer-emulated)."""
    if method.params["w_clip"] != "none":
        raise NotImplementedError(f"method '{method.name}': the integer emulation uses absmax weight codes")
    artifact = artifact or {}
    G = method.groups_for_model(model, arch)
    if method.params["scheme"] in SCHEMES:
        scheme = method.params["scheme"]
    else:
        scheme = "round_down" if int(artifact.get("meta/scheme_round_down", torch.tensor(0))) else "round_up"
    static = bool(int(artifact.get("meta/static", torch.tensor(0)))) and bool(method.params["static"])
    n = len(arch.blocks(model))
    blocks = sorted(set(blocks if blocks is not None else (0, n // 2, n - 1)))
    p = method.params
    bits, chunk, wb = p["bits"], p["chunk"], p["weight_bits"] or p["bits"]
    targets, captured, hooks = {}, {}, []
    for i in blocks:
        for label, roles in input_sites(arch):
            name = f"{arch.layers}.{i}.{arch.block_linears()[roles[0]]}"
            targets[name] = (i, label, roles[0])
            hooks.append(get_submodule(model, name).register_forward_pre_hook(
                lambda _m, args, name=name: captured.__setitem__(name, args[0].detach().float().clone())))
    try:
        activations_pass(model, arch, window)
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for name, (i, label, role) in targets.items():
        use_bias, unsigned = site_policy(arch, model, label)
        use_bias = use_bias and not unsigned
        site = f"{arch.layers}.{i}:{label}"
        bias = (artifact.get(f"site/{site}/bias") if use_bias else False)
        tmax = gi = None
        if static and f"site/{site}/tmax" in artifact:
            tmax = artifact[f"site/{site}/tmax"].float()
            gi = tender_group_index(artifact[f"site/{site}/cmax"].float(), tmax, G, scheme)
        lin = get_submodule(model, name)
        x = captured[name]
        if x.dim() == 2:
            x = x.unsqueeze(0)
        r = exactness_check(x, lin.weight.detach().float(), bits, G, chunk,
                            None if bias is None else bias, scheme, unsigned, weight_bits=wb,
                            tmax=tmax, group_index=gi, acc_bits=acc_bits)
        rows.append({"block": i, "site": label, "linear": role, "K": lin.in_features, "N": lin.out_features,
                     "tokens": int(x.shape[-2]), "bits": bits, "weight_bits": wb, "groups": G, "scheme": scheme,
                     "static": static, "channel_bias": bias is not False, "unsigned": unsigned, **r})
    return rows
