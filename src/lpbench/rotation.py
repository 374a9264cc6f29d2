"""Hadamard and random orthogonal rotations, and QuaRot-style rotation of a model's residual stream.

QuaRot (Ashkboos et al., 2024) rotates the residual stream with an orthogonal ``Q`` (``x`` becomes ``xQ``)
and lets every linear reading the stream absorb ``Q``, so the full-precision network computes exactly the
same function. :func:`fuse_norms` first folds each pre-norm's gain γ into the linears it feeds (only for
pre-norm RMSNorm families; sandwich and LayerNorm/post-norm families raise ``NotImplementedError``), then
:func:`rotate_model` rewrites the weights (embedding ``E ← EQ``, readers ``W ← WQ``, writers ``W ← QᵀW``,
``b ← bQ``). Online rotations are :class:`OnlineHadamard` modules used as ``QuantLinear.input_transform``;
:func:`fold_online_rotation` pre-multiplies the consuming linear's weight so the pair is exactly invariant.

Hadamard matrices are QuaRot's constructions (Sylvester for 2^k, ``Kᵀ ⊗ H_{2^k}`` with the first of QuaRot's
``K`` that divides n), the ``K×K`` matrices read from compressed-tensors; a seeded Hadamard is QuaRot's random
``diag(s)·H``. Every matrix is normalized by 1/√n and checked to be orthonormal.

Why exactly these identities, the choice of ``K`` and where compressed-tensors' matrices come from:
docs/papers/rrs.md.
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Collection

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, get_submodule

logger = logging.getLogger(__name__)

_F64 = torch.float64
_WARNED_NO_HADAMARD: set[int] = set()


# ---- Hadamard and orthogonal matrices ------------------------------------------------------------------
def _ct():
    """compressed-tensors' Hadamard module, imported on first use: importing compressed-tensors costs
    ~6 CPU-seconds (it pulls in pydantic and transformers), which every pipeline job that builds a method
    would otherwise pay whether or not it rotates anything."""
    from compressed_tensors.transform.utils import hadamard

    return hadamard


#: QuaRot's search order for the factor ``K`` of a Hadamard order ``n = K·2^k`` (official get_hadK)
QUAROT_K_ORDER = (172, 156, 148, 140, 108, 60, 52, 36, 28, 40, 20, 12)


def _stored_hadamard(n: int) -> torch.Tensor | None:
    """compressed-tensors' stored ±1 Hadamard of the largest order K with n/K a power of two, or None."""
    fetch = getattr(_ct(), "_fetch_hadamard_divisor", None)
    if fetch is None:
        raise RuntimeError("this compressed-tensors version has no _fetch_hadamard_divisor; lpbench.rotation "
                           "needs its stored Hadamard matrices for sizes that are not powers of two")
    return fetch(n, _F64)


def _quarot_k(n: int) -> int | None:
    """QuaRot's ``K`` for order ``n``: the first of :data:`QUAROT_K_ORDER` dividing ``n``, if ``n/K`` is a
    power of two (QuaRot asserts that it is); None where QuaRot has no ``K``."""
    for k in QUAROT_K_ORDER:
        if n % k == 0:
            q = n // k
            return k if q & (q - 1) == 0 else None
    return None


def _hadamard_factors(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """±1 matrices ``(A, B)`` with ``A ⊗ B`` the (unnormalized, unsigned) Hadamard of order ``n``.

    Powers of two: two Sylvester factors (``H_a ⊗ H_b = H_{ab}``). Otherwise ``(Kᵀ, H_{n/K})`` with
    QuaRot's ``K`` (:func:`_quarot_k`), or compressed-tensors' largest stored ``K`` where QuaRot has none.
    Raises ValueError when no Hadamard of order ``n`` is known.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Hadamard order must be a positive integer, got {n!r}")
    ct = _ct()
    if ct.is_pow2(n):
        a = 2 ** (int(math.log2(n)) // 2)
        return ct.deterministic_hadamard_matrix(a, _F64), ct.deterministic_hadamard_matrix(n // a, _F64)
    k = _quarot_k(n)
    known = _stored_hadamard(k) if k is not None else _stored_hadamard(n)
    if known is None:
        raise ValueError(
            f"no Hadamard matrix of order {n} is known: the order must be 2^k or K·2^k with K one of the "
            "orders stored by compressed-tensors (multiples of 4 up to 256). Use rotation_matrix(n, "
            "kind='orthogonal') or rotation_matrix(n) (which falls back to a random orthogonal matrix).")
    return known.T.contiguous(), ct.deterministic_hadamard_matrix(n // known.shape[0], _F64)


def has_hadamard(n: int) -> bool:
    """Whether :func:`hadamard_matrix` can build an ``n × n`` Hadamard matrix."""
    try:
        _hadamard_factors(n)
    except ValueError:
        return False
    return True


def _random_signs(n: int, seed: int) -> torch.Tensor:
    """The ±1 signs of QuaRot's random Hadamard (its single draw ``randint(0, 2, (n,))``, ``2s - 1``) from
    ``manual_seed(seed)``; :class:`OnlineHadamard` applies them without materializing the matrix."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n,), generator=g, dtype=_F64) * 2 - 1


def _check_orthonormal(m: torch.Tensor, what: str, tol: float = 1e-8) -> None:
    """Cheap (O(n²)) check that ``m`` is orthonormal: ``mᵀ(m v) = v`` for a few random probes ``v``."""
    probe = torch.randn(m.shape[0], 4, generator=torch.Generator().manual_seed(0), dtype=_F64)
    err = (m.T @ (m @ probe) - probe).abs().max().item()
    if err > tol:
        raise RuntimeError(f"{what} is not orthonormal (probe error {err:.2e})")


def hadamard_matrix(n: int, seed: int | None = None, dtype: torch.dtype = _F64) -> torch.Tensor:
    """Orthonormal ``n × n`` Hadamard matrix ``H`` (``H Hᵀ = I``, every entry ``±1/√n``).

    ``seed=None``: QuaRot's deterministic matrix — Sylvester's construction for ``n = 2^k``, ``Kᵀ ⊗ H_{2^k}``
    with QuaRot's ``K`` otherwise (docs/papers/rrs.md). With a seed: QuaRot's random Hadamard ``diag(s)·H``
    with random signs ``s`` (same seed → same matrix). Built in float64, returned in ``dtype``. Raises
    ValueError when no Hadamard of order ``n`` is known (see :func:`has_hadamard`).
    """
    a, b = _hadamard_factors(n)
    h = torch.kron(a, b) / math.sqrt(n)
    if seed is not None:
        h = _random_signs(n, seed)[:, None] * h
    _check_orthonormal(h, f"Hadamard matrix of order {n}")
    return h.to(dtype)


def random_orthogonal(n: int, seed: int, dtype: torch.dtype = _F64) -> torch.Tensor:
    """Haar-distributed random orthogonal ``n × n`` matrix from a seeded Gaussian.

    ``Q`` of the QR decomposition of a standard Gaussian matrix, with each column's sign fixed so that
    ``R`` has a positive diagonal (without the fix the distribution is not uniform). float64, then ``dtype``.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"matrix order must be a positive integer, got {n!r}")
    gauss = torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=_F64)
    q, r = torch.linalg.qr(gauss)
    signs = torch.sign(torch.diagonal(r))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return (q * signs).to(dtype)


def rotation_matrix(n: int, kind: str = "hadamard", seed: int | None = 0,
                    dtype: torch.dtype = _F64) -> torch.Tensor:
    """An orthonormal ``n × n`` rotation for :func:`rotate_model`.

    ``kind="hadamard"``: :func:`hadamard_matrix` (random signs from ``seed``, deterministic if None); when
    no Hadamard of order ``n`` is known, falls back to :func:`random_orthogonal` (seed 0 if None) and warns
    once per ``n``. ``kind="orthogonal"``: :func:`random_orthogonal` (needs an integer seed).
    """
    if kind == "hadamard":
        if has_hadamard(n):
            return hadamard_matrix(n, seed, dtype)
        if n not in _WARNED_NO_HADAMARD:
            _WARNED_NO_HADAMARD.add(n)
            msg = f"no Hadamard matrix of order {n} is known; using a random orthogonal matrix instead"
            logger.warning(msg)
            warnings.warn(msg, stacklevel=2)
        return random_orthogonal(n, 0 if seed is None else seed, dtype)
    if kind == "orthogonal":
        if seed is None:
            raise ValueError("kind='orthogonal' needs an integer seed")
        return random_orthogonal(n, seed, dtype)
    raise ValueError(f"unknown rotation kind '{kind}'; known: 'hadamard', 'orthogonal'")


# ---- folding norms and rotating the residual stream ---------------------------------------------------
def _require_foldable(arch: ArchSpec) -> None:
    """Raise NotImplementedError unless the family is a pre-norm RMSNorm decoder with an LM head."""
    if arch.norm_kind == "rmsnorm" and arch.placement == "pre":
        if arch.final_norm is None or arch.lm_head is None:
            raise NotImplementedError(f"{arch.family}: needs a final norm and an LM head to fold into")
        return
    if arch.placement == "sandwich":
        reason = ("its sandwich norms (post-attention / post-feedforward) normalize each branch output "
                  "before the residual add, so their gain acts on the residual stream itself and cannot "
                  "be folded into any linear; the stream is then not invariant under a rotation")
    elif arch.norm_kind == "layernorm":
        reason = ("LayerNorm subtracts the mean, which does not commute with a rotation; it would first "
                  "have to be rewritten as RMSNorm (mean subtraction folded into the linears writing the "
                  "stream, as SliceGPT/QuaRot do for OPT), which is not implemented")
    else:
        reason = f"norm kind '{arch.norm_kind}' with placement '{arch.placement}' is not supported"
    raise NotImplementedError(
        f"norm fusion / rotation is implemented for pre-norm RMSNorm families (llama, qwen2) only; "
        f"'{arch.family}' is not supported: {reason}")


def _norm_consumers(arch: ArchSpec) -> dict[str, list[str]]:
    """norm role -> names (inside a block) of the linears reading that norm's output."""
    mlp_in = ["gate", "up"] if arch.mlp_kind == "gated" else ["fc1"]
    return {"attn_in": [arch.attn[r] for r in ("q", "k", "v")],
            "mlp_in": [arch.mlp[r] for r in mlp_in]}


def _stream_writers(arch: ArchSpec) -> list[str]:
    """Names (inside a block) of the linears writing to the residual stream."""
    return [arch.attn["o"], arch.mlp["down" if arch.mlp_kind == "gated" else "fc2"]]


def untie_lm_head(model: nn.Module, arch: ArchSpec) -> None:
    """Give the LM head its own weight if it shares the embedding's, and stop transformers re-tying it."""
    embed, head = get_submodule(model, arch.embed), get_submodule(model, arch.lm_head)
    if head.weight is not embed.weight and head.weight.data_ptr() != embed.weight.data_ptr():
        return
    head.weight = nn.Parameter(embed.weight.detach().clone(), requires_grad=embed.weight.requires_grad)
    configs = {id(c): c for c in (getattr(model, "config", None),) if c is not None}
    if hasattr(model.config, "get_text_config"):
        text = model.config.get_text_config()
        configs[id(text)] = text
    for cfg in configs.values():
        if hasattr(cfg, "tie_word_embeddings"):
            cfg.tie_word_embeddings = False
    if hasattr(model, "all_tied_weights_keys"):
        model.all_tied_weights_keys = {}


_NARROW = (torch.float32, torch.bfloat16, torch.float16)


@torch.no_grad()
def _fold_gain(norm: nn.Module, linears: list[nn.Linear]) -> None:
    """``W ← W·diag(γ)`` for every linear reading ``norm``'s output, then ``γ ← 1`` (float64 math).

    A float32 weight with a float32/bfloat16/float16 gain is multiplied in float32, in place: the float64
    product of two such numbers is exact (≤ 48 significant bits), so rounding it to float32 is the correctly
    rounded float32 product — the same bits, without two float64 copies of every weight."""
    if getattr(norm, "bias", None) is not None:
        raise NotImplementedError(f"{type(norm).__name__} has a bias; only a pure gain can be folded")
    gamma = norm.weight.detach()
    for lin in linears:
        if lin.weight.dtype == torch.float32 and gamma.dtype in _NARROW:
            lin.weight.mul_(gamma.to(torch.float32))
        else:
            lin.weight.copy_(lin.weight.to(_F64) * gamma.to(_F64))
    norm.weight.fill_(1.0)


def fuse_norms(model: nn.Module, arch: ArchSpec) -> None:
    """Fold every RMSNorm gain into the linears it feeds, in place, and set the gains to 1.

    Block norms: ``attn_in`` → q, k, v and ``mlp_in`` → gate, up; the final norm → lm_head. An LM head tied
    to the embedding is untied first (its weight cloned; ``config.tie_word_embeddings`` set to False), since
    the final gain must change the head but not the embedding. The model computes the same function
    afterwards. Only pre-norm RMSNorm families (llama, qwen2); others raise NotImplementedError.
    """
    _require_foldable(arch)
    untie_lm_head(model, arch)
    consumers = _norm_consumers(arch)
    for block in arch.blocks(model):
        for role, names in consumers.items():
            _fold_gain(get_submodule(block, arch.norms[role]), [get_submodule(block, n) for n in names])
    _fold_gain(get_submodule(model, arch.final_norm), [get_submodule(model, arch.lm_head)])


@torch.no_grad()
def rotate_model(model: nn.Module, arch: ArchSpec, Q: torch.Tensor, skip: Collection[nn.Module] = ()) -> None:
    """Rotate the residual stream by the orthogonal ``Q`` (``x → xQ``), in place (QuaRot's ``R1``).

    Must follow :func:`fuse_norms` (every norm gain must be 1, checked). Embedding ``E ← EQ``; q, k, v,
    gate, up and lm_head ``W ← WQ``; o and down ``W ← QᵀW``, bias ``b ← bQ``. Products are computed in
    float64 and stored back in each parameter's dtype; the full-precision model computes the same logits.
    ``skip``: linears whose weight is replaced afterwards (QuaRot's GPTQ weights): weight left as is, bias
    rotated.
    """
    _require_foldable(arch)
    embed = get_submodule(model, arch.embed)
    d = embed.weight.shape[1]
    if tuple(Q.shape) != (d, d):
        raise ValueError(f"rotation must be {d}×{d} (the hidden size), got {tuple(Q.shape)}")
    q64 = Q.detach().to(device="cpu", dtype=_F64)
    _check_orthonormal(q64, "rotation Q")
    for name in arch.norm_names(model):
        if not torch.all(get_submodule(model, name).weight == 1):
            raise ValueError(f"norm '{name}' has a gain ≠ 1: call fuse_norms(model, arch) "
                             "before rotate_model")

    readers = [embed.weight, get_submodule(model, arch.lm_head).weight]
    writers = []
    for block in arch.blocks(model):
        readers += [get_submodule(block, n).weight for names in _norm_consumers(arch).values() for n in names]
        writers += [get_submodule(block, n) for n in _stream_writers(arch)]

    # a weight shared by two modules is rotated once; one in ``skip`` not at all (copy_ casts to its dtype)
    done: set[int] = {id(m.weight) for m in skip}
    for w in readers:
        if id(w) not in done:
            done.add(id(w))
            w.copy_(w.to(_F64) @ q64.to(w.device))
    for lin in writers:
        qd = q64.to(lin.weight.device)
        if id(lin.weight) not in done:
            lin.weight.copy_(qd.T @ lin.weight.to(_F64))
        if lin.bias is not None:
            lin.bias.copy_(lin.bias.to(_F64) @ qd)


# ---- online Hadamard transforms ----------------------------------------------------------------------
class OnlineHadamard(nn.Module):
    """``x ↦ x·M`` over the last dim, for ``QuantLinear.input_transform``: ``OnlineHadamard(dim)``, ``M = H_dim``
    (e.g. before ``down_proj``); ``head_dim=h``, ``M = I ⊗ H_h`` (each head's slice); ``head_dim=h,
    across_heads=True``, ``M = H_{dim/h} ⊗ I_h`` (the heads mixed: QuaRot's online ``o_proj`` transform,
    ``online_partial_had`` with ``get_hadK(num_heads)``). ``H = hadamard_matrix(order, seed)``: ``seed=None``
    (default) is QuaRot's deterministic matrix, a seed adds random row signs. ``M`` is never materialized:
    ``H``'s Kronecker factors ``A ⊗ B`` (sizes ``K``, ``2^k``) act as ``Aᵀ X B`` on the input reshaped to
    ``(…, K, 2^k)``: ``(K + 2^k)`` multiply-adds per element. At least float32 inside, the input dtype out.
    Pair it with :func:`fold_online_rotation` on the consuming linear.
    """

    def __init__(self, dim: int, head_dim: int | None = None, seed: int | None = None,
                 across_heads: bool = False):
        super().__init__()
        if across_heads and not head_dim:
            raise ValueError("across_heads needs head_dim")
        if head_dim and dim % head_dim:
            raise ValueError(f"dim {dim} is not a multiple of head_dim {head_dim}")
        size = (dim // head_dim if across_heads else head_dim) if head_dim else dim
        a, b = _hadamard_factors(size)
        self.dim, self.head_dim, self.seed, self.across_heads = dim, head_dim, seed, across_heads
        # buffers: they follow .to(device); not persistent, they are rebuilt from (dim, head_dim, seed)
        self.register_buffer("left", a / math.sqrt(a.shape[0]), persistent=False)
        self.register_buffer("right", b / math.sqrt(b.shape[0]), persistent=False)
        signs = None if seed is None else _random_signs(size, seed).reshape(a.shape[0], b.shape[0])
        self.register_buffer("signs", signs, persistent=False)

    def _hadamard(self, y: torch.Tensor) -> torch.Tensor:
        a, b, shape = self.left.to(y.dtype), self.right.to(y.dtype), y.shape     # y·H over blocks of the last dim
        y = y.reshape(*shape[:-1], -1, a.shape[0], b.shape[0])                  # (..., blocks, K, 2^k)
        if self.signs is not None:
            y = y * self.signs.to(y.dtype)
        # Aᵀ·Y as (Yᵀ·A)ᵀ: a matmul with a 2-D right operand runs as one GEMM over all tokens, where
        # ``a.T @ y`` broadcasts into a batched GEMM of one tiny (K × K)·(K × 2^k) product per token
        # (2–4× slower here). The same products and sums: bit-identical output on this machine (every
        # rotated method's evaluation metrics compared before/after, see #15's note).
        y = (y.transpose(-1, -2) @ a).transpose(-1, -2)
        if b.shape[0] > 1:
            y = y @ b
        return y.reshape(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"OnlineHadamard expects last dim {self.dim}, got {x.shape[-1]}")
        dtype = torch.promote_types(x.dtype, torch.float32)
        y = x.to(dtype)
        if self.across_heads:                      # (..., heads, h) -> (..., h, heads): H over the heads
            y = y.reshape(*x.shape[:-1], -1, self.head_dim).transpose(-1, -2)
            return self._hadamard(y).transpose(-1, -2).reshape(x.shape).to(x.dtype)
        return self._hadamard(y).reshape(x.shape).to(x.dtype)

    def matrix(self) -> torch.Tensor:
        """The dense ``dim × dim`` float64 matrix ``M`` with ``forward(x) = x·M`` (for tests, small dims)."""
        return self(torch.eye(self.dim, dtype=_F64, device=self.left.device))

    def fold_into(self, weight: torch.Tensor) -> torch.Tensor:
        """``W·M`` for a weight ``W`` (out, dim) of the linear consuming this transform's output, computed
        in float64 and returned in ``weight``'s dtype; then ``(xM)(WM)ᵀ = xWᵀ``."""
        return self(weight.detach().to(_F64)).to(weight.dtype)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, head_dim={self.head_dim}, seed={self.seed}, across_heads={self.across_heads}"


@torch.no_grad()
def fold_online_rotation(linear: nn.Linear, rotation: OnlineHadamard) -> None:
    """Pre-multiply ``linear``'s weight, in place, so that ``linear(rotation(x)) = linear_before(x)``.

    Since ``H`` is orthonormal, ``(xH)(WH)ᵀ = xWᵀ``; the bias is untouched. Use the folded weight (quantized
    or not) in a ``QuantLinear`` with ``input_transform=rotation``.
    """
    if linear.in_features != rotation.dim:
        raise ValueError(f"linear has {linear.in_features} inputs, rotation acts on {rotation.dim}")
    linear.weight.copy_(rotation.fold_into(linear.weight))


def hadamard_ops(n: int) -> tuple[float, float]:
    """(adds, mults) per vector of length n for a fast Hadamard transform of order n = K·2^k as the online
    rotations apply it: a Walsh-Hadamard butterfly on the 2^k factor (n·k adds) and a dense K×K product on
    the K factor (n·K mult-adds), with the ``K`` of the matrix actually used (QuaRot's, see
    :func:`_hadamard_factors`: 12 for 1536, 36 for 576); where no Hadamard of order n is known, the odd
    part of n stands in for ``K``."""
    k2 = n & -n                       # largest power of two dividing n
    try:
        K = _hadamard_factors(n)[0].shape[0] if n != k2 else 1
    except ValueError:
        K = n // k2
    adds = n * math.log2(n // K) + (n * (K - 1) if K > 1 else 0)
    mults = n * K if K > 1 else 0.0
    return float(adds), float(mults + n)   # + n: the 1/sqrt(n) normalization (or sign flips), one mult each
