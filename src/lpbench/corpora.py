"""Corpus sources and the calibration / evaluation split.

Every corpus entry becomes two text files, ``calibration.txt`` and ``evaluation.txt``, plus
``corpus.json`` with provenance. The split is part of the entry and is checked so that calibration text
and evaluation text never overlap. Sources (``corpora.<id>.source``; every key: config/README.md):

``debian``  a Debian package fetched with ``apt-get download`` (checked against the archive's SHA256),
            unpacked with ``dpkg-deb -x``. Reader ``janeaustenr``: the R lazy-load database of the
            ``r-cran-janeaustenr`` package (six public-domain Jane Austen novels), read with ``rdata``.
            Splits name novels, e.g. evaluation ``[persuasion]``, calibration the others.
``hf``      a Hugging Face dataset repo at a pinned revision: parquet files per split, text column joined
            the way the quantization literature does (WikiText-2: rows joined with "\\n\\n").
``local``   a text file; split at a paragraph boundary by ``evaluation_fraction`` (the tail is the
            evaluation text, the head calibration), or two files ``calibration`` / ``evaluation``.

Checks before anything is written (:func:`check_texts`), each a :class:`CorpusError` naming the corpus and
where the text came from: an empty or whitespace-only text; calibration text contained in the evaluation
text or the evaluation text in the calibration text; a **shared passage** — an identical run of
``shared_passage_words`` whitespace-separated words (default :data:`SHARED_PASSAGE_WORDS` = 32) in both.
:func:`verify_text` checks a text against the sha256 and size recorded in ``corpus.json`` (``files``).

Why 32 words, how novels are joined, the file checks and the network limits: docs/data.md.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path

SPLITS = ("calibration", "evaluation")
SHARED_PASSAGE_WORDS = 32   # an identical run of this many words in both texts is a shared passage (see docs/data.md)
NET_TIMEOUT = 60.0
NET_RETRIES = 3


class CorpusError(RuntimeError):
    pass


# -------------------------------------------------------------------------------------------- debian
def _run(cmd: list[str], timeout: float, **kw) -> subprocess.CompletedProcess:
    """A subprocess with a hard time limit; an expired one is a failed run stating the wait."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"`{' '.join(cmd)}` did not finish within {timeout:g} s")


def _apt_opts(timeout: float) -> list[str]:
    return ["-o", f"Acquire::http::Timeout={int(max(1, timeout))}",
            "-o", f"Acquire::https::Timeout={int(max(1, timeout))}",
            "-o", "Acquire::Retries=0"]


def _apt_sha256(package: str, version: str | None) -> tuple[str, str]:
    out = _run(["apt-cache", "show", package], 60)
    if out.returncode != 0 or not out.stdout.strip():
        raise CorpusError(f"apt-cache knows no package '{package}': {out.stderr.strip()}")
    for stanza in out.stdout.strip().split("\n\n"):
        fields = dict(re.findall(r"^(\S+): (.*)$", stanza, flags=re.M))
        if version is None or fields.get("Version") == version:
            return fields["Version"], fields["SHA256"]
    raise CorpusError(f"apt-cache has no version '{version}' of '{package}'")


def apt_download(package: str, dest: Path, version: str | None = None, retries: int = NET_RETRIES,
                 timeout: float = NET_TIMEOUT) -> Path:
    """``apt-get download`` into ``dest``, verified against the archive's SHA256; retries, and runs
    ``apt-get update`` if the package lists are missing. Every request gets ``timeout`` s to answer
    (apt's ``Acquire::*::Timeout``), and each apt run at most 20 × that."""
    dest.mkdir(parents=True, exist_ok=True)
    last = ""
    cap = 20 * timeout
    for attempt in range(1, retries + 1):
        try:
            ver, sha = _apt_sha256(package, version)
        except CorpusError as e:
            last = str(e)
            upd = _run(["apt-get", "update", "-qq", *_apt_opts(timeout)], cap)
            if upd.returncode != 0:
                last += f"; apt-get update: {upd.stderr.strip()[-500:]}"
            continue
        spec = f"{package}={ver}"
        proc = _run(["apt-get", "download", "-qq", *_apt_opts(timeout), spec], cap, cwd=dest)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if proc.returncode == 0 and debs:
            deb = debs[-1]
            if hashlib.sha256(deb.read_bytes()).hexdigest() == sha:
                return deb
            last = f"{deb.name}: sha256 mismatch with the Debian archive (expected {sha})"
            deb.unlink()
        else:
            last = proc.stderr.strip()
        time.sleep(2 * attempt)
    raise CorpusError(f"could not download Debian package '{package}' after {retries} attempts (request "
                      f"timeout {timeout:g} s): {last}")


def read_r_lazyload(base: Path) -> dict:
    """Read every object of an R lazy-load database (``base.rdx`` index + ``base.rdb`` blobs).

    The index is a gzip'd serialized R list ``variables -> (offset, length)``; each blob in the .rdb is a
    4-byte big-endian length followed by a zlib stream of a serialized R object.
    """
    import warnings

    import rdata

    def parse(raw: bytes):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # rdata warns "assumed RDS" for bare serializations
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    index = parse(gzip.decompress(base.with_suffix(".rdx").read_bytes()))
    blob = base.with_suffix(".rdb").read_bytes()
    out = {}
    for name, (off, length) in index["variables"].items():
        chunk = blob[int(off): int(off) + int(length)]
        raw = zlib.decompress(chunk[4:])
        if len(raw) != int.from_bytes(chunk[:4], "big"):
            raise CorpusError(f"{base}.rdb: object '{name}' has the wrong length (corrupt package?)")
        out[str(name)] = parse(raw)
    return out


def _janeaustenr(entry: dict, work: Path) -> tuple[dict[str, str], dict]:
    deb = apt_download(entry.get("package", "r-cran-janeaustenr"), work, entry.get("version"),
                       retries=int(entry.get("retries", NET_RETRIES)), timeout=float(entry.get("timeout", NET_TIMEOUT)))
    root = work / "root"
    if root.exists():
        shutil.rmtree(root)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    base = next(root.glob("usr/lib/R/site-library/janeaustenr/data/Rdata.rdx"), None)
    if base is None:
        raise CorpusError(f"{deb.name} has no janeaustenr data/Rdata.rdx")
    books = {name: "\n".join(str(line) for line in lines) for name, lines in read_r_lazyload(base).items()}
    return books, {"package": deb.name, "deb_sha256": hashlib.sha256(deb.read_bytes()).hexdigest()}


def _split_named(parts: dict[str, str], splits: dict) -> dict[str, str]:
    """Split named documents (novels) into calibration / evaluation lists, checked disjoint."""
    cal, ev = list(splits["calibration"]), list(splits["evaluation"])
    unknown = sorted(set(cal + ev) - set(parts))
    if unknown:
        raise CorpusError(f"unknown document(s) {unknown} in splits; available: {sorted(parts)}")
    overlap = sorted(set(cal) & set(ev))
    if overlap:
        raise CorpusError(f"calibration and evaluation splits overlap: {overlap}")
    return {"calibration": "\n\n".join(parts[n] for n in cal), "evaluation": "\n\n".join(parts[n] for n in ev)}


# ------------------------------------------------------------------------------------------------ hf
def _hf_dataset(entry: dict, work: Path) -> tuple[dict[str, str], dict]:
    import pandas as pd

    from lpbench.sources import hf_snapshot

    files = entry["files"]  # {"calibration": "wikitext-2-raw-v1/train-*.parquet", "evaluation": ...}
    snap = hf_snapshot(entry["repo_id"], entry["revision"], work / "hf", repo_type="dataset",
                       endpoint=entry.get("endpoint"), allow_patterns=list(files.values()),
                       timeout=float(entry.get("timeout", NET_TIMEOUT)),
                       retries=int(entry.get("retries", NET_RETRIES)), error=CorpusError)
    texts = {}
    for split, pattern in files.items():
        paths = sorted(snap.glob(pattern))
        if not paths:
            raise CorpusError(f"dataset '{entry['repo_id']}' has no file matching '{pattern}'")
        rows = pd.concat([pd.read_parquet(p) for p in paths])[entry.get("text_field", "text")]
        texts[split] = entry.get("joiner", "\n\n").join(rows.astype(str))
    return texts, {"repo_id": entry["repo_id"], "revision": entry["revision"]}


# --------------------------------------------------------------------------------------------- local
def read_utf8(path: Path) -> str:
    """A text file as UTF-8; anything else is an error naming the file, the byte offset and the line."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"local corpus file {path} does not exist")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise CorpusError(f"{path}: not UTF-8 text: byte offset {e.start} (line {line}) holds 0x{data[e.start]:02x} "
                          f"({e.reason}); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None


def _local(entry: dict) -> tuple[dict[str, str], dict]:
    if "calibration" in entry and "evaluation" in entry:
        texts = {s: read_utf8(Path(entry[s])) for s in SPLITS}
        return texts, {s: str(entry[s]) for s in SPLITS}
    path = Path(entry["path"])
    text = read_utf8(path)
    frac = float(entry.get("evaluation_fraction", 0.5))
    cut = text.rfind("\n\n", 0, int(len(text) * (1 - frac)))
    cut = cut if cut > 0 else int(len(text) * (1 - frac))
    return {"calibration": text[:cut], "evaluation": text[cut:].lstrip("\n")}, {"path": str(path)}


# --------------------------------------------------------------------------------------------- entry
def materialize(corpus_id: str, entry: dict, out: Path, work: Path) -> dict:
    """Write ``out/calibration.txt``, ``out/evaluation.txt`` and ``out/corpus.json``."""
    out, work = Path(out), Path(work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    source = entry["source"]
    if source == "debian":
        reader = entry.get("reader", "janeaustenr")
        if reader != "janeaustenr":
            raise CorpusError(f"corpus '{corpus_id}': unknown Debian reader '{reader}'; known: janeaustenr")
        parts, meta = _janeaustenr(entry, work)
        texts = _split_named(parts, entry["splits"])
        meta["splits"] = entry["splits"]
    elif source == "hf":
        texts, meta = _hf_dataset(entry, work)
    elif source == "local":
        texts, meta = _local(entry)
    else:
        raise CorpusError(f"corpus '{corpus_id}': unknown source '{source}'; known: debian, hf, local")
    meta["shared_passage"] = check_texts(corpus_id, texts, _origins(entry),
                                         int(entry.get("shared_passage_words", SHARED_PASSAGE_WORDS)))
    for split in SPLITS:
        (out / f"{split}.txt").write_text(texts[split], encoding="utf-8")
    meta.update(corpus_id=corpus_id, source=source, label=entry.get("label", corpus_id),
                chars={s: len(texts[s]) for s in SPLITS},
                files={f"{s}.txt": file_record(out / f"{s}.txt") for s in SPLITS})
    (out / "corpus.json").write_text(json.dumps(meta, indent=2, default=str))
    return meta


def _origins(entry: dict) -> dict[str, str]:
    """Where each split's text comes from, for messages."""
    source = entry["source"]
    if source == "local" and "calibration" in entry and "evaluation" in entry:
        return {s: f"file {entry[s]}" for s in SPLITS}
    if source == "local":
        return {s: f"the {'head' if s == 'calibration' else 'tail'} of file {entry['path']}" for s in SPLITS}
    if source == "debian":
        return {s: f"Debian package {entry.get('package')}, documents {entry['splits'][s]}" for s in SPLITS}
    return {s: f"dataset {entry.get('repo_id')}, files {entry.get('files', {}).get(s)}" for s in SPLITS}


def _word_runs(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i: i + n]) for i in range(len(words) - n + 1)}


def longest_shared_run(a: str, b: str, limit: int) -> tuple[int, str]:
    """(length, text) of the longest run of whitespace-separated words that occurs in both texts, searched
    up to ``limit`` words (a run of ``limit`` is reported as ``limit``)."""
    wa, wb = a.split(), b.split()
    small, large = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    lo, hi, best = 1, min(limit, len(small)), (0, "")
    while lo <= hi:                                 # a shared run of n words contains one of every n' < n
        n = (lo + hi) // 2
        runs = _word_runs(small, n)
        hit = next((large[i: i + n] for i in range(len(large) - n + 1) if tuple(large[i: i + n]) in runs), None)
        if hit is None:
            hi = n - 1
        else:
            best, lo = (n, " ".join(hit)), n + 1
    return best


def check_texts(corpus_id: str, texts: dict[str, str], origins: dict[str, str],
                shared_words: int = SHARED_PASSAGE_WORDS) -> dict:
    """The calibration / evaluation texts of a corpus are usable and share nothing; returns what
    ``corpus.json`` records of the shared-passage search. ``origins``: where each text came from."""
    where = {s: f"corpus '{corpus_id}': the {s} text ({origins[s]})" for s in SPLITS}
    for split in SPLITS:
        if not texts[split]:
            raise CorpusError(f"{where[split]} is empty")
        if not texts[split].strip():
            raise CorpusError(f"{where[split]} contains only whitespace ({len(texts[split])} characters)")
    cal, ev = texts["calibration"].strip(), texts["evaluation"].strip()
    if cal in ev:
        raise CorpusError(f"{where['calibration']} is contained in the evaluation text ({origins['evaluation']}): "
                          "calibration would see text that is evaluated")
    if ev in cal:
        raise CorpusError(f"{where['evaluation']} is contained in the calibration text ({origins['calibration']}): "
                          "calibration would see the very text that is evaluated")
    n, run = longest_shared_run(cal, ev, shared_words)
    if n >= shared_words:
        raise CorpusError(f"corpus '{corpus_id}': the calibration text ({origins['calibration']}) and the evaluation "
                          f"text ({origins['evaluation']}) share a passage of {n} or more words "
                          f"(shared_passage_words: {shared_words}): \"{run[:300]}\"; remove it from one of them "
                          f"(natural prose shares at most ~8-word phrases by chance; see lpbench.corpora)")
    return {"limit_words": shared_words, "longest_run_words": n, "longest_run": run}


def file_record(path: Path) -> dict:
    data = Path(path).read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def verify_text(text_path: Path, corpus_json: Path) -> dict:
    """Check a corpus text against the sha256 and size ``corpus.json`` recorded for it; return the record.
    A mismatch names the file and the rule to rerun."""
    text_path, corpus_json = Path(text_path), Path(corpus_json)
    meta = json.loads(corpus_json.read_text())
    fix = (f"rerun its download: snakemake --forcerun {corpus_json} (or delete {corpus_json.parent}/ and run "
           f"again); rule download_corpus, corpus '{meta.get('corpus_id', corpus_json.parent.name)}'")
    rec = meta.get("files", {}).get(text_path.name)
    if rec is None:
        raise CorpusError(f"{corpus_json} records no hash for {text_path.name} (written by an older lpbench); {fix}")
    got = file_record(text_path)
    if got != rec:
        raise CorpusError(f"{text_path}: {got['bytes']} bytes, sha256 {got['sha256']}, but {corpus_json} records "
                          f"{rec['bytes']} bytes, sha256 {rec['sha256']} (the text changed after download); {fix}")
    return rec
