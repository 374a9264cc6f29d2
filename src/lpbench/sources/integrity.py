"""Content identity of a canonical model directory and its verification on load.

``lpbench_model.json`` records the sha256 and size of every file of the directory (``files``) and digests of
the whole model (``content_sha256``), its weights and its tokenizer (and, for ``local``, of the source
directory). Its bytes change exactly when the model's content changes, so Snakemake reruns what depends on
the model — and nothing else — after a re-materialisation. :func:`verify_model_dir` checks the files against
that record and names the bad file and the rule to rerun. Cheap by design: download_model also writes
``.lpbench_stat.json`` (size and mtime of each file as written); a file whose size and mtime still match is
trusted without reading it (a ``stat``), any other is hashed in full (then its new mtime is stamped, so a
merely touched or copied file is hashed once). ``LPBENCH_VERIFY=full`` hashes every file on every load.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from lpbench.sources.common import META_FILE, STAT_FILE, TOKENIZER_FILES, ModelIntegrityError, sha256_file


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


def write_stamp(model_dir: Path, files: dict) -> None:
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
            write_stamp(model_dir, meta["files"])
        except OSError:
            pass
    return meta
