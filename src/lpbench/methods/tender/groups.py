"""Tender's group count G per model (the official per-model table, else a family default) and the
non-empty groups per chunk measured on a calibrated artifact (what the accelerator cost model charges)."""
from __future__ import annotations

import torch

from lpbench.accel.tender import tender_group_index

# Group counts (decomp_factor) of the official scripts (scripts/utils.py; table_2.py uses 14 for LLaMA-1
# at both widths). Keyed by (model_type, hidden, layers, intermediate, max_position_embeddings or None).
_G_TABLE = {
    ("opt", 4096, 32, 16384, None): ("OPT-6.7B", {4: 8, 8: 4}),
    ("opt", 5120, 40, 20480, None): ("OPT-13B", {4: 8, 8: 4}),
    ("opt", 9216, 64, 36864, None): ("OPT-66B", {4: 10, 8: 8}),
    ("llama", 4096, 32, 11008, 4096): ("Llama-2-7B", {4: 14, 8: 8}),
    ("llama", 5120, 40, 13824, 4096): ("Llama-2-13B", {4: 16, 8: 14}),
    ("llama", 8192, 80, 28672, 4096): ("Llama-2-70B", {4: 20, 8: 16}),
    ("llama", 4096, 32, 11008, 2048): ("LLaMA-7B", {4: 14, 8: 14}),
    ("llama", 5120, 40, 13824, 2048): ("LLaMA-13B", {4: 14, 8: 14}),
}
# Default for models outside the table: the smallest model of the family in the paper
# (gated-MLP families → Llama-2-7B's 14/8, standard-MLP families → OPT-6.7B's 8/4).
_G_DEFAULT = {"gated": {4: 14, 8: 8}, "standard": {4: 8, 8: 4}}


def resolve_groups(bits: int, model_type: str | None = None, hidden: int | None = None,
                   layers: int | None = None, intermediate: int | None = None,
                   max_positions: int | None = None, mlp_kind: str = "gated") -> tuple[int, str]:
    """Number of groups G for a model: the official value when the model is in the paper's table,
    else the family default. Widths other than 4/8 use the INT4 column for bits <= 4, else INT8.
    Without ``max_positions`` a Llama shape matches Llama-2 first (LLaMA-1 has the same shapes).
    Returns (G, where it came from)."""
    col = 4 if bits <= 4 else 8
    for (mt, h, nl, inter, mp), (label, table) in _G_TABLE.items():
        if (mt == model_type and h == hidden and nl == layers and inter == intermediate
                and (mp is None or max_positions is None or mp == max_positions)):
            return table[col], f"official decomp_factor of {label} at INT{col}"
    return _G_DEFAULT[mlp_kind][col], f"default for {mlp_kind}-MLP families at INT{col} (model not in the paper)"


def artifact_nonempty_groups(artifact: dict, scheme: str | None = None) -> dict:
    """Non-empty channel groups per chunk of a calibrated (static) artifact: for every linear input site
    and chunk position, the number of distinct group indices of its channels. Returns mean / max / G
    (what the cost model's per-tile shift count needs); ``mean`` is None without static scales."""
    G = int(artifact["meta/groups"])
    if scheme is None:
        scheme = "round_down" if int(artifact.get("meta/scheme_round_down", torch.tensor(0))) else "round_up"
    counts = []
    for key, tmax in artifact.items():
        if key.startswith("site/") and key.endswith("/tmax"):
            gi = tender_group_index(artifact[key[: -len("tmax")] + "cmax"].float(), tmax.float(), G, scheme)
            onehot = torch.zeros(*gi.shape[:-1], G, dtype=torch.bool).scatter_(-1, gi, True)
            counts.append(onehot.sum(-1).flatten().double())
    if not counts:
        return {"groups": G, "mean": None, "max": None, "sites": 0}
    c = torch.cat(counts)
    return {"groups": G, "mean": float(c.mean()), "max": int(c.max()), "sites": len(counts)}
