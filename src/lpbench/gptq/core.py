"""GPTQ on one weight matrix: scales, the Hessian, the column loop (see :mod:`lpbench.gptq`)."""
from __future__ import annotations

import torch

from lpbench.quant import mse_clip_scale

_F64 = torch.float64


def weight_scale(w: torch.Tensor, bits: int, clip: str = "mse") -> torch.Tensor:
    """Per-output-channel symmetric scale (rows, 1), absmax/qmax or the MSE clip search."""
    qmax = 2 ** (bits - 1) - 1
    if clip == "mse":
        return mse_clip_scale(w, bits).to(w.dtype)
    if clip == "none":
        return (w.abs().amax(1, keepdim=True) / qmax).clamp(min=1e-8)   # all-zero row: any scale, codes 0
    raise ValueError(f"unknown weight clip '{clip}'; known: 'none', 'mse'")


class Hessian:
    """Running ``2/n Σ x xᵀ`` of a linear's inputs, float32 as the official ``add_batch`` (float64 for tests).

    Inputs wider than ``2·SYRK_BLOCK`` accumulate only the blocks on and above the diagonal (column blocks of
    :data:`SYRK_BLOCK`: 56–67 % of the full product for the suite's widths); ``H`` mirrors them below when
    read. The same sums as one ``xᵀx`` per block, up to float summation order."""

    def __init__(self, columns: int, dtype: torch.dtype = torch.float32):
        self._H = torch.zeros(columns, columns, dtype=dtype)
        self.n = 0
        self._mirrored = True

    @property
    def H(self) -> torch.Tensor:
        if not self._mirrored:                   # upper triangle mirrored below: exactly symmetric
            self._H.copy_(torch.triu(self._H) + torch.triu(self._H, 1).T)
            self._mirrored = True
        return self._H

    def add(self, x: torch.Tensor) -> None:
        x = x.reshape(-1, x.shape[-1]).to(self._H.dtype)
        m, c = x.shape
        self._H.mul_(self.n / (self.n + m))
        self.n += m
        alpha = 2.0 / self.n
        if c < 2 * SYRK_BLOCK:
            self._H.addmm_(x.T, x, alpha=alpha)
            return
        for a in range(0, c, SYRK_BLOCK):
            self._H[a: a + SYRK_BLOCK, a:].addmm_(x[:, a: a + SYRK_BLOCK].T, x[:, a:], alpha=alpha)
        self._mirrored = False


#: column block of the Hessian's upper-triangle accumulation
SYRK_BLOCK = 192


def _lower_inverse(L: torch.Tensor) -> torch.Tensor:
    """Inverse of a lower-triangular matrix, by halves: [[A, 0], [B, C]]⁻¹ = [[A⁻¹, 0], [−C⁻¹BA⁻¹, C⁻¹]]
    (n³/3 multiply-adds, mostly GEMMs; torch exposes no LAPACK trtri)."""
    n = L.shape[0]
    if n <= 192:
        return torch.linalg.solve_triangular(L, torch.eye(n, dtype=L.dtype), upper=False)
    k = n // 2
    out = torch.zeros_like(L)
    out[:k, :k], out[k:, k:] = _lower_inverse(L[:k, :k]), _lower_inverse(L[k:, k:])
    out[k:, :k] = -(out[k:, k:] @ (L[k:, :k] @ out[:k, :k]))
    return out


def inverse_cholesky_upper(H: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), what the official ``cholesky(cholesky_inverse(
    cholesky(H)), upper=True)`` computes, in one Cholesky and one triangular inverse: with J the reversal
    permutation and JHJ = LLᵀ, H⁻¹ = (JL⁻ᵀJ)(JL⁻¹J) and JL⁻¹J is upper triangular with a positive diagonal,
    so it is U. Half the arithmetic (2n³/3 instead of 4n³/3), closer to the float64 factor."""
    return torch.flip(_lower_inverse(torch.linalg.cholesky(torch.flip(H, (0, 1)))), (0, 1))


#: columns quantized between two GEMM updates inside a block (GPTQ's lazy batch updates, one level down)
SUB_BLOCK = 16


def _columns(W: torch.Tensor, Hinv: torch.Tensor, s: torch.Tensor, qmax: int, blocksize: int) -> torch.Tensor:
    """GPTQ's column loop on ``W`` (rows, cols) with the upper Cholesky factor ``Hinv`` of H⁻¹ and the row
    scales ``s``; returns the quantized weight transposed (cols, rows).

    The same updates as the official loop — after column i, ``W[:, k] -= (w_i − q_i)/Hinv_ii · Hinv_ik`` for
    every k > i —, organised for a CPU: the weight is held transposed (a column is a contiguous row), the
    rank-1 updates run only inside sub-blocks of :data:`SUB_BLOCK` columns, and each sub-block's errors reach
    the rest of its block in one GEMM (as the errors of a block reach the later blocks). Only the order of
    the floating-point sums differs from the one-level loop."""
    Wt = W.T.contiguous()
    Qt = torch.empty_like(Wt)
    cols = Wt.shape[0]
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, Hinv1 = Wt[i1:i2], Hinv[i1:i2, i1:i2]
        Err1 = torch.empty_like(W1)
        diag = Hinv1.diagonal().tolist()
        for j1 in range(0, i2 - i1, SUB_BLOCK):
            j2 = min(j1 + SUB_BLOCK, i2 - i1)
            for i in range(j1, j2):
                w, q, err = W1[i], Qt[i1 + i], Err1[i]
                torch.div(w, s, out=q).round_().clamp_(-qmax - 1, qmax).mul_(s)
                torch.sub(w, q, out=err).div_(diag[i])
                if i + 1 < j2:
                    W1[i + 1: j2].addr_(Hinv1[i, i + 1: j2], err, alpha=-1)
            if j2 < i2 - i1:
                W1[j2:].addmm_(Hinv1[j1:j2, j2:].T, Err1[j1:j2], alpha=-1)
        if i2 < cols:
            Wt[i2:].addmm_(Hinv[i1:i2, i2:].T, Err1, alpha=-1)
    return Qt


@torch.no_grad()
def gptq_quantize(w: torch.Tensor, H: torch.Tensor, bits: int = 4, clip: str = "mse", blocksize: int = 128,
                  percdamp: float = 0.01, act_order: bool = False, scale: torch.Tensor | None = None,
                  return_codes: bool = False):
    """GPTQ-quantized copy of ``w`` (out, in) for the input Hessian ``H`` (in, in); see the module docstring.

    Computed in float32 as the reference implementations (``dtype`` of ``w`` if float64, for tests).
    ``return_codes``: also return (integer codes as int8, scale (out, 1))."""
    dtype = w.dtype if w.dtype == _F64 else torch.float32
    W = w.detach().to(dtype).clone()
    H = H.detach().to(dtype).clone()
    cols = W.shape[1]
    qmax = 2 ** (bits - 1) - 1
    s = (weight_scale(W, bits, clip) if scale is None else scale.to(dtype))
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    idx = torch.arange(cols)
    H[idx, idx] += percdamp * torch.mean(torch.diag(H))
    Hinv = inverse_cholesky_upper(H)
    Q = _columns(W, Hinv, s.reshape(-1), qmax, blocksize).T
    if perm is not None:
        Q = Q[:, torch.argsort(perm)]
    Q = Q.to(w.dtype)
    if return_codes:
        codes = torch.round(Q.to(dtype) / s).clamp(-qmax - 1, qmax).to(torch.int8)
        return Q, codes, s.to(torch.float32)
    return Q


def layer_error(w: torch.Tensor, q: torch.Tensor, H: torch.Tensor) -> float:
    """Output error of a quantized layer on the calibration inputs: ``tr((W-Q) H (W-Q)ᵀ)/2 = mean ‖(W-Q)x‖²``."""
    d = (w - q).to(_F64)
    return float(torch.einsum("ij,jk,ik->", d, H.to(_F64), d) / 2)


def dequantize(packed: dict) -> dict[str, torch.Tensor]:
    """``{name: {"codes", "scale"}}`` → ``{name: fake-quantized float32 weight}``."""
    return {n: v["codes"].to(torch.float32) * v["scale"] for n, v in packed.items()}
