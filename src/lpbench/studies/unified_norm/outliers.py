"""Injected activation outliers: the stress setting of UN-3 (``unified_norm.tasks.<name>.outliers``).

The paper's mechanism: activation statistics of a Transformer fluctuate across iterations and carry extreme
outliers; a BN-style norm that pools its statistics over the batch (and UN's smoothing window, unless the
outlier filtration catches the step) then normalizes every token of the step with a statistic inflated by a
few tokens. This module creates that situation on purpose, the same for every norm of a seed:

* **which steps**: each training step in ``[start_frac, stop_frac)`` of the run is an outlier step with
  probability ``step_prob`` (Bernoulli draws from a generator seeded by the run's seed only, independent of
  the generator of the data order, so a stress run sees the same batches as the clean run of that seed);
* **which tokens**: on an outlier step, ``token_frac`` of the batch's patch tokens (at least one), drawn
  without replacement from the same generator;
* **how large**: the pixels of each chosen patch are multiplied by ``scale`` (after standardization), so the
  patch embedding of that token, and with it every pre-norm input of the residual stream, is about
  ``scale`` times its usual magnitude.

With the defaults (1 % of the tokens at 100x) the batch statistic mean(x^2) of the first norm jumps by about
two orders of magnitude on an outlier step. No outlier is injected in the last ``1 - stop_frac`` of the run,
so that the running statistics used at inference are not the residue of the last injected step (their EMA
forgets 0.9^k) and the test measures what training did, on the clean test split.
"""
from __future__ import annotations

import numpy as np
import torch

from lpbench.studies.unified_norm import OUTLIER_DEFAULTS, outlier_settings  # noqa: F401 (re-exported)

_STREAM = 0x5EED  # fixed sub-stream id: the outlier draws never share the data-order stream


def outlier_schedule(cfg: dict, steps: int, batch: int, tokens: int, seed: int) -> dict[int, np.ndarray]:
    """{step (1-based): (k, 2) int array of (sample, token) positions} for one run; deterministic in
    (cfg, steps, batch, tokens, seed)."""
    cfg = outlier_settings(cfg)
    rng = np.random.default_rng([int(seed), _STREAM])
    lo = int(np.ceil(cfg["start_frac"] * steps)) + 1
    hi = int(np.ceil(cfg["stop_frac"] * steps))
    k = max(1, int(round(cfg["token_frac"] * batch * tokens)))
    out = {}
    for step in range(1, steps + 1):
        hit = rng.random() < cfg["step_prob"]          # one draw per step, in range or not: stable stream
        if hit and lo <= step <= hi:
            flat = rng.choice(batch * tokens, size=min(k, batch * tokens), replace=False)
            out[step] = np.stack([flat // tokens, flat % tokens], axis=1)
    return out


def inject_patches(images: torch.Tensor, positions: np.ndarray, patch: int, scale: float) -> torch.Tensor:
    """Copy of (B, C, H, W) ``images`` with the patches at ``positions`` (sample, patch index in row-major
    order of the (H/p) x (W/p) grid) multiplied by ``scale``."""
    out = images.clone()
    per_row = images.shape[-1] // patch
    for b, t in positions.tolist():
        r, c = divmod(t, per_row)
        out[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] *= scale
    return out


def schedule_summary(schedule: dict, steps: int) -> dict:
    n = sum(len(v) for v in schedule.values())
    return {"outlier_steps": len(schedule), "outlier_tokens": n, "outlier_step_share": len(schedule) / max(1, steps)}
