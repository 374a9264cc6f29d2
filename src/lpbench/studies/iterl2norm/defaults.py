"""The IterL2Norm paper's numbers and the defaults of the ``iterl2norm`` config section."""
from __future__ import annotations

from typing import Any

#: The paper's numbers (digest ``shared/papers/iterl2norm.md``).
PAPER_ITERS = 5
PAPER_WINS = {"fp32": 6, "bf16": 5}
OPT_DIMS = (768, 1024, 2048, 2560, 4096, 5120, 7168, 9216, 12288)
SMALL_DIMS = (64, 128, 256, 512, 1024)

#: Defaults of the ``iterl2norm`` config section (the schema gives the section itself a default {}).
DEFAULTS: dict[str, Any] = {
    "dims": list(SMALL_DIMS),
    "opt_dims": list(OPT_DIMS),
    "formats": ["fp32", "bf16", "fp16"],
    "inputs": ["gaussian", "student_t3"],
    "max_iters": 10,
    "n_vectors": 256,
    "order": "pairwise",
    "block": 16,
    "win_iters": PAPER_ITERS,
    # the two compared algorithms and the "update-rate settings" studied beside them
    "variants": {
        "iterl2norm": {"algorithm": "iterl2norm", "lam": 0.5, "init": "pow2"},
        "fisr": {"algorithm": "fisr"},
        "iterl2norm-centred-init": {"algorithm": "iterl2norm", "lam": 0.5, "init": "centred"},
        "iterl2norm-magic-init": {"algorithm": "iterl2norm", "lam": 0.5, "init": "magic"},
        "iterl2norm-lam0.4": {"algorithm": "iterl2norm", "lam": 0.4, "init": "pow2"},
    },
    "record": {"windows": 2, "tokens_per_window": 32, "max_vectors": 512},
    "macro": {"lanes": 16, "mem_width": 16},
    "macro_lanes_sweep": [4, 8, 16, 32, 64],
    "macro_anchor_d": 64,
    "energy": {"div_sqrt_vs_mult": [1, 2, 4, 8, 16], "dims": [64, 256, 1024, 4096, 12288]},
}


def settings(section: dict | None) -> dict:
    """The config section merged over :data:`DEFAULTS` (one level of nested dicts merged)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULTS.items()}
    for k, v in (section or {}).items():
        if k not in DEFAULTS:
            raise ValueError(f"iterl2norm config: unknown key '{k}'; known: {sorted(DEFAULTS)}")
        if isinstance(v, dict) and isinstance(out[k], dict) and k != "variants":
            out[k].update(v)
        else:
            out[k] = v
    return out
