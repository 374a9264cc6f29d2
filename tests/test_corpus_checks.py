"""Issue 28, cases 3 and 7: calibration and evaluation texts share nothing (either contained in the other,
or an identical run of ``shared_passage_words`` words), and an empty, whitespace-only or non-UTF-8 text is its
own error naming the file (and the byte offset)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lpbench.corpora import CorpusError, check_texts, materialize as materialize_corpus
from lpbench.data import calibration_windows

TINY_CORPUS = Path(__file__).parent / "data" / "tiny_corpus.txt"


def _two_files(tmp_path, cal: bytes | str, ev: bytes | str, **extra):
    paths = {}
    for split, text in (("calibration", cal), ("evaluation", ev)):
        paths[split] = tmp_path / f"{split}-src.txt"
        paths[split].write_bytes(text if isinstance(text, bytes) else text.encode())
    entry = {"source": "local", **{k: str(v) for k, v in paths.items()}, **extra}
    return entry, paths


def _materialize(tmp_path, entry):
    return materialize_corpus("c", entry, tmp_path / "out", tmp_path / "work")


SENTENCES = [f"Sentence number {i} talks about topic {i % 7} and the weather {i * 3}." for i in range(60)]


def test_evaluation_contained_in_calibration_is_an_error(tmp_path):
    ev = " ".join(SENTENCES[10:14])
    entry, paths = _two_files(tmp_path, " ".join(SENTENCES), ev)
    with pytest.raises(CorpusError) as err:
        _materialize(tmp_path, entry)
    assert f"the evaluation text (file {paths['evaluation']}) is contained in the calibration text" in str(err.value)
    assert not (tmp_path / "out" / "evaluation.txt").exists()


def test_shared_passage_is_an_error_naming_it(tmp_path):
    shared = " ".join(SENTENCES[20:24])             # 4 sentences of 11-12 words: >= 32 shared words
    entry, _ = _two_files(tmp_path, " ".join(SENTENCES[:30]), " ".join(SENTENCES[30:]) + " " + shared)
    with pytest.raises(CorpusError, match=r"share a passage of 32 or more words \(shared_passage_words: 32\): "
                                          r"\"Sentence number 2[01]"):
        _materialize(tmp_path, entry)
    entry["shared_passage_words"] = 64              # the limit is the entry's (stated in corpus.json)
    meta = _materialize(tmp_path, entry)
    assert meta["shared_passage"]["limit_words"] == 64 and meta["shared_passage"]["longest_run_words"] >= 32


def test_shared_passage_check_on_the_tiny_corpus_records_the_longest_run(tmp_path):
    meta = _materialize(tmp_path, {"source": "local", "path": str(TINY_CORPUS), "evaluation_fraction": 0.5})
    assert meta["shared_passage"]["limit_words"] == 32
    assert meta["shared_passage"]["longest_run_words"] < 32  # template sentences: 16 words
    assert json.loads((tmp_path / "out" / "corpus.json").read_text())["shared_passage"] == meta["shared_passage"]


def test_shared_passage_finds_the_longest_run():
    texts = {"calibration": "a b c d e f g h i j k l", "evaluation": "x c d e f g y"}
    assert check_texts("c", texts, {"calibration": "x", "evaluation": "y"}, 8)["longest_run_words"] == 5


@pytest.mark.parametrize("cal, ev, message", [
    ("", "some text", "the calibration text (file {calibration}) is empty"),
    ("some text", " \n\t\n ", "the evaluation text (file {evaluation}) contains only whitespace (5 characters)"),
    (b"caf\xe9 au lait\nand more", "other text", "{calibration}: not UTF-8 text: byte offset 3 (line 1) holds 0xe9"),
    ("text", b"line one\nline two \xff\xfe", "{evaluation}: not UTF-8 text: byte offset 18 (line 2) holds 0xff"),
])
def test_empty_whitespace_and_non_utf8_texts_are_named(tmp_path, cal, ev, message):
    entry, paths = _two_files(tmp_path, cal, ev)
    with pytest.raises(CorpusError) as err:
        _materialize(tmp_path, entry)
    assert message.format(**paths) in str(err.value)


def test_whitespace_only_single_file_is_not_reported_as_overlap(tmp_path):
    src = tmp_path / "blank.txt"
    src.write_text("\n\n   \n\n\n\n")
    with pytest.raises(CorpusError, match=rf"the calibration text \(the head of file {src}\) (is empty|contains only)"):
        _materialize(tmp_path, {"source": "local", "path": str(src)})


def test_too_short_calibration_names_the_token_file():
    with pytest.raises(ValueError, match=r"^resources/tokens/m/c/calibration.pt: calibration text has 5 tokens"):
        calibration_windows(torch.arange(5), 64, 4, 0, source="resources/tokens/m/c/calibration.pt")
