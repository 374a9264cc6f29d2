"""Method interface and registry. One module per method kind in this package.

A method is configured in ``config.yaml`` as ``methods: {<name>: {method: <kind>, <params>}}``. The
pipeline drives every kind through the same three steps:

1. ``calibrate(model, arch, stats, windows)`` — offline, once per (model, calibration corpus): returns
   the method's artifact (a dict of tensors / numbers: scales, rotations, groupings), which the
   ``method_artifact`` rule saves to ``resources/artifacts/`` so it is computed once and shared.
   ``stats`` is the shared calibration statistics file (see :mod:`lpbench.calibration`), ``windows``
   the calibration token windows for methods that need their own pass (GPTQ, Tender, ...).
2. ``apply(model, arch, artifact)`` — turns the FP32 model into the evaluated model (in place).
3. ``ops_per_token(dims)`` — what the method adds per token, as ``{op_name: count}`` with op names of
   ``config/hw_costs.yaml`` (e.g. ``int8_mult``); :mod:`lpbench.hwcost` turns it into energy.

Adding a kind = one new module here with a subclass decorated by :func:`register` (it is imported
automatically) plus a config entry. Parameters are checked in ``__init__``: an unknown one, or one that
breaks its declared type/range in the class's ``spec`` (``{"w_bits": Int(2, 16), "alpha": Real(0, 1)}``),
raises an error that names the method — :func:`lpbench.config.check_references` builds every configured
method, so this happens in the dry run, before any job.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from lpbench.archs import ArchSpec, spec_for_model_type

METHOD_KINDS: dict[str, type["Method"]] = {}


@dataclass(frozen=True)
class ModelDims:
    """Shapes a per-token op count needs."""
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    mlp_matrices: int = 3   # 3 for a gated MLP (gate, up, down), 2 for a standard one (fc1, fc2)

    @classmethod
    def from_config(cls, cfg, arch: ArchSpec | None = None) -> "ModelDims":
        heads = cfg.num_attention_heads
        hidden = cfg.hidden_size
        return cls(hidden=hidden, intermediate=getattr(cfg, "intermediate_size", None) or cfg.ffn_dim,
                   layers=cfg.num_hidden_layers, heads=heads,
                   kv_heads=getattr(cfg, "num_key_value_heads", None) or heads,
                   head_dim=getattr(cfg, "head_dim", None) or hidden // heads, vocab=cfg.vocab_size,
                   mlp_matrices=3 if arch is None or arch.mlp_kind == "gated" else 2)

    @property
    def gemm_macs(self) -> float:
        """Multiply-accumulates per token in the blocks' linears (embedding and LM head excluded)."""
        attn = (self.heads + 2 * self.kv_heads) * self.head_dim * self.hidden + self.heads * self.head_dim * self.hidden
        return float(self.layers * (attn + self.mlp_matrices * self.hidden * self.intermediate))


def model_dims(model_files) -> tuple[dict[str, ModelDims], dict[str, ArchSpec]]:
    """Dims and architecture of each materialized model, by id, from its ``lpbench_model.json`` paths (the
    id is the file's directory name; the config beside it is read, the weights are not)."""
    from transformers import AutoConfig

    dims, archs = {}, {}
    for meta in model_files:
        cfg = AutoConfig.from_pretrained(Path(meta).parent)
        name = Path(meta).parent.name
        archs[name] = spec_for_model_type(cfg.model_type)
        dims[name] = ModelDims.from_config(cfg, archs[name])
    return dims, archs


@dataclass(frozen=True)
class Param:
    """Declared type and range of one method parameter (see :class:`Method.spec`).

    ``type``: "int" | "real" | "bool" | "str" | "choice"; ``lo``/``hi`` inclusive bounds (``open_lo`` /
    ``open_hi`` make them exclusive); ``choices`` for "choice"; ``none``: None is accepted too.
    Booleans are never accepted as numbers, and strings never as numbers ("four" is not 4).
    """
    type: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    none: bool = False
    open_lo: bool = False
    open_hi: bool = False

    def problem(self, value) -> str | None:
        """What is wrong with ``value`` (None if it is acceptable)."""
        if value is None:
            return None if self.none else f"must not be null ({self.describe()})"
        if self.type == "choice":
            return None if value in self.choices else f"must be one of {list(self.choices)}, got {value!r}"
        if self.type == "bool":
            return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
        if self.type == "str":
            return None if isinstance(value, str) else f"must be a string, got {value!r}"
        numeric = (int,) if self.type == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return f"must be {self.describe()}, got {value!r}"
        if value != value:  # NaN
            return f"must be {self.describe()}, got NaN"
        low_bad = self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo)
        high_bad = self.hi is not None and (value >= self.hi if self.open_hi else value > self.hi)
        return f"must be {self.describe()}, got {value!r}" if low_bad or high_bad else None

    def describe(self) -> str:
        if self.type == "choice":
            return f"one of {list(self.choices)}"
        if self.type in ("bool", "str"):
            return {"bool": "true or false", "str": "a string"}[self.type]
        kind = "an integer" if self.type == "int" else "a number"
        if self.lo is not None and self.hi is not None:
            rng = f"in {'(' if self.open_lo else '['}{self.lo:g}, {self.hi:g}{')' if self.open_hi else ']'}"
        elif self.lo is not None:
            rng = f"{'>' if self.open_lo else '>='} {self.lo:g}"
        elif self.hi is not None:
            rng = f"{'<' if self.open_hi else '<='} {self.hi:g}"
        else:
            rng = ""
        return " ".join(filter(None, [kind, rng, "or null" if self.none else ""]))


def Int(lo=None, hi=None, none=False) -> Param:
    return Param("int", lo, hi, none=none)


def Real(lo=None, hi=None, none=False, open_lo=False, open_hi=False) -> Param:
    return Param("real", lo, hi, none=none, open_lo=open_lo, open_hi=open_hi)


def Choice(*choices, none=False) -> Param:
    return Param("choice", choices=tuple(choices), none=none)


Bool = Param("bool")
Str = Param("str")
#: bit widths of the integer formats the suite emulates (16 = "not quantized" where a method allows it)
BITS = Int(2, 16)


class Method:
    """Base class. Subclasses set ``kind``, ``defaults`` (every accepted parameter with its default)
    and override what they need."""

    kind: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    #: declared type and range of parameters (a subset of ``defaults``), checked when the method is built
    spec: ClassVar[dict[str, Param]] = {}
    #: dtype the evaluated model runs in (fp16/bf16 baselines override it)
    eval_dtype: torch.dtype = torch.float32

    def __init__(self, name: str = "", **params):
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ValueError(f"method '{name or self.kind}' (kind {self.kind}): unknown parameter(s) "
                             f"{unknown}; accepted: {sorted(self.defaults)}")
        self.name = name or self.kind
        self.params = {**self.defaults, **params}
        bad = [f"{key} {problem}" for key, p in self.spec.items()
               if (problem := p.problem(self.params.get(key))) is not None]
        if bad:
            raise ValueError(f"method '{self.name}' (kind {self.kind}): {'; '.join(bad)}")

    def require(self, checks: list[tuple[bool, str]]) -> None:
        """Raise one error naming the method and every failed ``(condition, message)`` check."""
        bad = [msg for ok, msg in checks if not ok]
        if bad:
            raise ValueError(f"method '{self.name}' (kind {self.kind}): {'; '.join(bad)}; got {self.params}")

    def calibrate(self, model: nn.Module, arch: ArchSpec, stats: dict, windows: torch.Tensor) -> dict:
        return {}

    def pass_key(self) -> str | None:
        """Name of a statistics pass that configurations of this kind can share (rule ``shared_pass``), or
        None. A kind that returns one also defines ``own_windows(windows)``, ``collect_pass(model, arch,
        windows, at)`` (the pass read after each window count in ``at``) and ``calibrate_from_pass(model,
        arch, reading, windows)``, with ``calibrate`` equal to a pass over its own windows then the finish."""
        return None

    def apply(self, model: nn.Module, arch: ArchSpec, artifact: dict) -> nn.Module:
        return model

    def ops_per_token(self, dims: ModelDims) -> dict[str, float]:
        return {}

    def describe(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.params.items())})"


def register(cls: type[Method]) -> type[Method]:
    if not cls.kind:
        raise TypeError(f"{cls.__name__} must set a 'kind'")
    if cls.kind in METHOD_KINDS and METHOD_KINDS[cls.kind] is not cls:
        raise TypeError(f"method kind '{cls.kind}' registered twice")
    METHOD_KINDS[cls.kind] = cls
    return cls


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


def build_method(name: str, entry: dict) -> Method:
    """Build the method configured as ``methods[name] = entry`` (``entry['method']`` is the kind)."""
    _import_all()
    entry = dict(entry)
    kind = entry.pop("method", None)
    if kind not in METHOD_KINDS:
        raise ValueError(f"method '{name}': unknown kind '{kind}'; known kinds: {sorted(METHOD_KINDS)}")
    return METHOD_KINDS[kind](name=name, **entry)


def has_offline_step(entry: dict) -> bool:
    """Whether the method configured by ``entry`` overrides ``calibrate`` (needs an artifact job)."""
    _import_all()
    return METHOD_KINDS[entry["method"]].calibrate is not Method.calibrate


def known_kinds() -> list[str]:
    _import_all()
    return sorted(METHOD_KINDS)
