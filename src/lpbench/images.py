"""Image data sets for the training studies: Fashion-MNIST from Debian, and an IDX reader.

Sources (``source`` of an image-set entry):

``debian``  the Debian package ``dataset-fashion-mnist`` fetched with ``apt-get download`` (checked
            against the archive's SHA256 by :func:`lpbench.corpora.apt_download`) and unpacked with
            ``dpkg-deb -x``; the IDX files (gzip'd) are under ``usr/share/datasets/fashion-mnist/``.
``local``   a directory holding the four IDX files (plain or ``.gz``), e.g. hand-made ones for tests.

The official train (60,000) / test (10,000) split is kept: train for training, test for evaluation.
The result is one ``.pt`` file with uint8 images (N, 28, 28) and int64 labels per split, plus a JSON
with provenance (package file, its SHA256, per-file SHA256 of the IDX files).
"""
from __future__ import annotations

import gzip
import hashlib
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import torch

from lpbench.corpora import apt_download

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class ImageSetError(RuntimeError):
    pass


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzip'd): magic 0x0000 + dtype byte + ndim byte, big-endian uint32
    dimensions, then the data in C order."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ImageSetError(f"{path}: not an IDX file (bad magic {raw[:4].hex()})")
    code, ndim = raw[2], raw[3]
    if code not in _DTYPES:
        raise ImageSetError(f"{path}: unknown IDX data type 0x{code:02x}")
    dims = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    dtype = np.dtype(_DTYPES[code])
    count = int(np.prod(dims)) if ndim else 1
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise ImageSetError(f"{path}: {len(body)} data bytes, dimensions {dims} need {count * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an IDX file (uint8 or int32 data); used by tests and for small local data sets."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    arr = np.asarray(array)
    code = codes[arr.dtype]
    head = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    body = arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    data = head + body
    Path(path).write_bytes(gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


def _find(root: Path, stem: str) -> Path:
    for cand in (root / stem, root / f"{stem}.gz"):
        if cand.is_file():
            return cand
    raise ImageSetError(f"no IDX file '{stem}' (or .gz) in {root}")


def load_split(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor, dict]:
    img_p, lab_p = (_find(root, s) for s in IDX_FILES[split])
    images, labels = read_idx(img_p), read_idx(lab_p)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ImageSetError(f"{root} {split}: images {images.shape} do not match labels {labels.shape}")
    sha = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (img_p, lab_p)}
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64)), sha


def materialize(entry: dict, out: Path, work: Path) -> dict:
    """Write ``out`` (a .pt with train/test images and labels); return the provenance."""
    work = Path(work)
    source = entry["source"]
    if source == "debian":
        deb = apt_download(entry.get("package", "dataset-fashion-mnist"), work, entry.get("version"))
        root = work / "root"
        if root.exists():
            shutil.rmtree(root)
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
        data_dir = root / entry.get("subdir", "usr/share/datasets/fashion-mnist")
        meta = {"package": deb.name, "deb_sha256": hashlib.sha256(deb.read_bytes()).hexdigest()}
    elif source == "local":
        data_dir = Path(entry["path"])
        meta = {"path": str(data_dir)}
    else:
        raise ImageSetError(f"unknown image source '{source}'; known: debian, local")
    blob, files = {}, {}
    for split in IDX_FILES:
        x, y, sha = load_split(data_dir, split)
        blob[split] = {"images": x, "labels": y}
        files.update(sha)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    meta.update(source=source, label=entry.get("label", ""), files=files,
                sizes={s: int(blob[s]["labels"].numel()) for s in blob})
    return meta
