"""Corpus sources of ``lpbench.corpora`` and the calibration / evaluation split.

The R lazy-load database is built here byte by byte (format documented at :func:`serialize_xdr`), so
the reader is checked against the format rather than against a writer that shares its library.
"""
from __future__ import annotations

import gzip
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from hub_standin import FAKE_SHA
from lpbench.corpora import CorpusError, _split_named, materialize, read_r_lazyload

DATA = Path(__file__).parent / "data"


# ------------------------------------------------------------------------------------------ local
def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.8])
def test_local_split_is_disjoint_at_a_paragraph_boundary(tmp_path, fraction):
    paras = [f"Paragraph {i}: " + " ".join(f"w{i}_{j}" for j in range(5 + i % 7)) + "." for i in range(40)]
    src = tmp_path / "corpus.txt"
    src.write_text("\n\n".join(paras) + "\n")
    meta = materialize("c", {"source": "local", "path": str(src), "evaluation_fraction": fraction},
                       tmp_path / "out", tmp_path / "work")
    cal = (tmp_path / "out" / "calibration.txt").read_text()
    ev = (tmp_path / "out" / "evaluation.txt").read_text()
    text = src.read_text()
    # calibration is the head, evaluation the tail, cut where a blank line separates two paragraphs
    assert text.startswith(cal) and text[len(cal):len(cal) + 2] == "\n\n"
    assert text[len(cal):].lstrip("\n") == ev
    assert _paragraphs(cal) + _paragraphs(ev) == paras  # whole paragraphs, none split or lost
    assert not set(_paragraphs(cal)) & set(_paragraphs(ev))
    assert abs(len(ev) / len(text) - fraction) < 0.1
    assert meta["chars"] == {"calibration": len(cal), "evaluation": len(ev)}
    assert json.loads((tmp_path / "out" / "corpus.json").read_text())["source"] == "local"


def test_local_split_of_the_shipped_tiny_corpus(tmp_path):
    materialize("tiny", {"source": "local", "path": str(DATA / "tiny_corpus.txt"), "evaluation_fraction": 0.5},
                tmp_path / "out", tmp_path / "work")
    cal = (tmp_path / "out" / "calibration.txt").read_text()
    ev = (tmp_path / "out" / "evaluation.txt").read_text()
    assert cal and ev and not cal.endswith("\n") and not ev.startswith("\n")
    assert (DATA / "tiny_corpus.txt").read_text().startswith(cal)


def test_local_two_files_and_errors(tmp_path):
    (tmp_path / "cal.txt").write_text("alpha beta")
    (tmp_path / "ev.txt").write_text("gamma delta")
    materialize("two", {"source": "local", "calibration": str(tmp_path / "cal.txt"),
                        "evaluation": str(tmp_path / "ev.txt")}, tmp_path / "out", tmp_path / "work")
    assert (tmp_path / "out" / "evaluation.txt").read_text() == "gamma delta"
    (tmp_path / "ev2.txt").write_text("gamma alpha beta delta")  # contains the calibration text
    with pytest.raises(CorpusError, match="contained in the evaluation"):
        materialize("leak", {"source": "local", "calibration": str(tmp_path / "cal.txt"),
                             "evaluation": str(tmp_path / "ev2.txt")}, tmp_path / "o2", tmp_path / "w2")
    with pytest.raises(CorpusError, match="does not exist"):
        materialize("gone", {"source": "local", "path": str(tmp_path / "nope.txt")},
                    tmp_path / "o3", tmp_path / "w3")
    with pytest.raises(CorpusError, match="unknown source 'ftp'; known: debian, hf, local"):
        materialize("x", {"source": "ftp"}, tmp_path / "o4", tmp_path / "w4")


# --------------------------------------------------------------------------------------------- hf
TRAIN = [["", " = Heading = ", "", " First line of train ."], [" Second shard , with a comma ."]]
TEST = ["", " = Test heading = ", " Test text @-@ here ."]


def _parquet(rows: list[str]) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame({"text": rows}).to_parquet(buf, engine="pyarrow", index=False)
    return buf.getvalue()


@pytest.fixture
def hub_with_dataset(hf_hub):
    hf_hub.add_repo("lpbench-test/wikitext-mini", {
        "wikitext-2-raw-v1/train-00000-of-00002.parquet": _parquet(TRAIN[0]),
        "wikitext-2-raw-v1/train-00001-of-00002.parquet": _parquet(TRAIN[1]),
        "wikitext-2-raw-v1/test-00000-of-00001.parquet": _parquet(TEST),
        "wikitext-103-raw-v1/test-00000-of-00001.parquet": _parquet(["other config"]),
        "README.md": "dataset card\n",
    }, repo_type="dataset")
    return hf_hub


def _hf_entry(hub, **extra) -> dict:
    return {"source": "hf", "repo_id": "lpbench-test/wikitext-mini", "revision": FAKE_SHA,
            "endpoint": hub.endpoint,
            "files": {"calibration": "wikitext-2-raw-v1/train-*.parquet",
                      "evaluation": "wikitext-2-raw-v1/test-*.parquet"}, **extra}


def test_hf_dataset_splits_joined_with_blank_lines(hub_with_dataset, tmp_path):
    meta = materialize("wt", _hf_entry(hub_with_dataset), tmp_path / "out", tmp_path / "work")
    assert (tmp_path / "out" / "calibration.txt").read_text() == "\n\n".join(TRAIN[0] + TRAIN[1])
    assert (tmp_path / "out" / "evaluation.txt").read_text() == "\n\n".join(TEST)
    assert meta["repo_id"] == "lpbench-test/wikitext-mini" and meta["revision"] == FAKE_SHA
    snap = tmp_path / "work" / "hf"
    assert not (snap / "wikitext-103-raw-v1").exists() and not (snap / "README.md").exists()
    assert all("/api/models/" not in p for _, p in hub_with_dataset.requests)  # asked as a dataset


def test_hf_dataset_wrong_revision_or_pattern(hub_with_dataset, tmp_path):
    with pytest.raises(CorpusError, match="(?s)at 'no-such-branch'.*Revision Not Found"):
        materialize("wt", _hf_entry(hub_with_dataset, revision="no-such-branch"), tmp_path / "o1", tmp_path / "w1")
    entry = _hf_entry(hub_with_dataset)
    entry["files"] = {**entry["files"], "evaluation": "wikitext-2-raw-v1/validation-*.parquet"}
    with pytest.raises(CorpusError, match="no file matching 'wikitext-2-raw-v1/validation-"):
        materialize("wt", entry, tmp_path / "o2", tmp_path / "w2")


# ------------------------------------------------------------------------------ R lazy-load database
# R's serialization, XDR flavour (``serialize(x, NULL, xdr = TRUE)``; see "R Internals", section 1.8):
#   b"X\n", then big-endian int32s: format version (2 or 3), the R version that wrote it, the oldest R
#   version that can read it; version 3 adds the native encoding (int32 length + bytes, e.g. "UTF-8").
#   Then one item. An item starts with an int32 of flags: bits 0-7 the SEXP type, bit 8 "is object",
#   bit 9 "has attributes", bit 10 "has tag", bits 12-27 the "levels" (gp field).
#     STRSXP (16): length, then that many CHARSXPs.
#     CHARSXP (9): length in bytes (-1 for NA) and the bytes; levels say the encoding
#                  (64 = ASCII, 8 = UTF-8).
#     INTSXP (13): length, then int32 values.
#     VECSXP (19, a list): length, then the items; attributes (if flagged) follow the elements.
#     LISTSXP (2, a pairlist node): [attributes] [tag, e.g. a SYMSXP] CAR CDR; a list of attributes
#                  such as names=... is a chain of these ending in NILVALUE_SXP (254).
#     SYMSXP (1): one CHARSXP, the symbol's name.
# A lazy-load database is ``<base>.rdb``, the concatenation of one blob per object (4-byte big-endian
# length of the serialization, then the serialization zlib-compressed), and ``<base>.rdx``, a gzip'd
# serialization of list(variables = list(<name> = c(offset, length)), references = list(),
# compressed = TRUE), offset and length locating each blob in the .rdb.
def _i32(value: int) -> bytes:
    return struct.pack(">i", value)


def _charsxp(s: str | None) -> bytes:
    if s is None:
        return _i32(9) + _i32(-1)
    raw = s.encode("utf-8")
    return _i32(9 | ((64 if s.isascii() else 8) << 12)) + _i32(len(raw)) + raw


def _strsxp(values: list[str | None]) -> bytes:
    return _i32(16) + _i32(len(values)) + b"".join(_charsxp(v) for v in values)


def _intsxp(values: list[int]) -> bytes:
    return _i32(13) + _i32(len(values)) + b"".join(_i32(v) for v in values)


def _lglsxp(values: list[bool]) -> bytes:
    return _i32(10) + _i32(len(values)) + b"".join(_i32(int(v)) for v in values)


def _named_list(items: dict[str, bytes]) -> bytes:
    names_attr = _i32(2 | 1 << 10) + _i32(1) + _charsxp("names") + _strsxp(list(items)) + _i32(254)
    return _i32(19 | 1 << 9) + _i32(len(items)) + b"".join(items.values()) + names_attr


def serialize_xdr(item: bytes, version: int = 2) -> bytes:
    head = b"X\n" + _i32(version) + _i32(0x040301)  # written by "R 4.3.1"
    if version == 2:
        return head + _i32(0x020300) + item
    return head + _i32(0x030500) + _i32(5) + b"UTF-8" + item


def write_lazyload(base: Path, objects: dict[str, bytes]) -> None:
    """Write ``base.rdb`` / ``base.rdx`` from already serialized objects."""
    blob, variables = b"", {}
    for name, ser in objects.items():
        chunk = len(ser).to_bytes(4, "big") + zlib.compress(ser)
        variables[name] = _intsxp([len(blob), len(chunk)])
        blob += chunk
    index = _named_list({"variables": _named_list(variables), "references": _named_list({}),
                         "compressed": _lglsxp([True])})
    base.with_suffix(".rdb").write_bytes(blob)
    base.with_suffix(".rdx").write_bytes(gzip.compress(serialize_xdr(index, version=3)))


EMMA = ["EMMA", "", "By Jane Austen", "", "Emma Woodhouse, handsome, clever, and rich,"]
PERSUASION = ["Persuasion", "", "Sir Walter Elliot, of Kellynch Hall — née Élliot?"]


def test_read_r_lazyload_reads_hand_built_database(tmp_path):
    base = tmp_path / "Rdata"
    write_lazyload(base, {"emma": serialize_xdr(_strsxp(EMMA), version=2),
                          "persuasion": serialize_xdr(_strsxp(PERSUASION), version=3)})
    books = read_r_lazyload(base.with_suffix(".rdx"))
    assert sorted(books) == ["emma", "persuasion"]
    assert [str(s) for s in books["emma"]] == EMMA
    assert [str(s) for s in books["persuasion"]] == PERSUASION


def test_read_r_lazyload_reads_rdata_written_objects(tmp_path):
    """The same database with the objects serialized by ``rdata``'s own writer, where it has one."""
    import numpy as np

    unparser = pytest.importorskip("rdata.unparser")
    conversion = pytest.importorskip("rdata.conversion")
    if not hasattr(unparser, "unparse_data") or not hasattr(conversion, "convert_python_to_r_data"):
        pytest.skip("this rdata cannot write R serializations")
    ser = {name: unparser.unparse_data(conversion.convert_python_to_r_data(np.array(lines, dtype=object)))
           for name, lines in {"emma": EMMA, "persuasion": PERSUASION}.items()}
    base = tmp_path / "Rdata"
    write_lazyload(base, ser)
    books = read_r_lazyload(base)
    assert [str(s) for s in books["persuasion"]] == PERSUASION and [str(s) for s in books["emma"]] == EMMA


def test_read_r_lazyload_detects_a_wrong_length(tmp_path):
    base = tmp_path / "Rdata"
    ser = serialize_xdr(_strsxp(EMMA))
    write_lazyload(base, {"emma": ser})
    rdb = bytearray(base.with_suffix(".rdb").read_bytes())
    rdb[:4] = (len(ser) + 1).to_bytes(4, "big")
    base.with_suffix(".rdb").write_bytes(bytes(rdb))
    with pytest.raises(CorpusError, match="'emma' has the wrong length"):
        read_r_lazyload(base)


# ------------------------------------------------------------------------------------ named splits
PARTS = {"emma": "Emma text", "persuasion": "Persuasion text", "mansfield": "Mansfield text"}


def test_split_named_joins_documents_in_order():
    out = _split_named(PARTS, {"calibration": ["mansfield", "emma"], "evaluation": ["persuasion"]})
    assert out == {"calibration": "Mansfield text\n\nEmma text", "evaluation": "Persuasion text"}


def test_split_named_rejects_overlap():
    with pytest.raises(CorpusError, match=r"overlap: \['emma'\]"):
        _split_named(PARTS, {"calibration": ["emma", "mansfield"], "evaluation": ["emma", "persuasion"]})


def test_split_named_rejects_unknown_documents_naming_the_known_ones():
    with pytest.raises(CorpusError) as err:
        _split_named(PARTS, {"calibration": ["emma"], "evaluation": ["sense"]})
    msg = str(err.value)
    assert "['sense']" in msg and "available: ['emma', 'mansfield', 'persuasion']" in msg
