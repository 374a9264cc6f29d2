"""Issue 13: no silent wrong result. Every row of the issue's table, reproduced on the random / local
models and the test corpus, now ends in a clear error naming the file or key, or in a correct rerun.

| row | test |
|---|---|
| weights corrupted in place, same size | test_weights_corrupted_in_place_fail_naming_file_and_heal |
| weights truncated | test_truncated_weights_name_the_file_and_the_rule |
| model re-materialised with other weights | test_new_local_weights_rerun_exactly_the_dependents, \
test_hf_moved_branch_changes_the_model_record |
| evaluation.txt truncated | test_truncated_evaluation_text_stops_tokenize, \
test_fewer_windows_than_requested_is_an_error |
| typo inside a model/corpus entry | test_typos_in_entries_fail_the_dry_run_listing_allowed_keys |
| bad method parameters | test_bad_method_parameters_fail_the_dry_run_naming_the_method |
| hub that never answers | test_silent_hub_fails_within_the_stated_timeout |
| failing job, empty log | test_weights_corrupted_in_place_fail_naming_file_and_heal (log checks), \
test_errors_go_to_the_rule_log |
| --configfile merged into config/config.yaml | test_configfile_is_the_whole_config |
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from hub_standin import FAKE_SHA, SilentHub
from lpbench import sources
from lpbench.config import (CODE_ROOT, ConfigError, check_entries, check_references, expand_stacks, load_yaml,
                            method_facts)
from lpbench.corpora import CorpusError, materialize as materialize_corpus, verify_text
from lpbench.data import TokenFileError, eval_windows, load_tokens, token_record
from lpbench.sources import DownloadError, ModelIntegrityError, load_model, materialize

ROOT = Path(__file__).resolve().parents[1]
TINY_CFG = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}


def smk(workdir, configfile, *args, targets=()):
    cmd = [sys.executable, "-m", "snakemake", *targets, "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(configfile), *args]
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)


def flip_bytes_in_place(path: Path) -> None:
    """Corrupt a file without changing its size (as a bad disk or a stray write would)."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid: mid + 64] = bytes(b ^ 0xFF for b in data[mid: mid + 64])
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------------ library level
@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rand")
    return materialize("tiny", {"source": "random", "seed": 0, "config": TINY_CFG}, d / "m", d / "w")


def _copy(model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "m"
    shutil.copytree(model, out)  # copy2: mtimes kept, so the stamp's fast path applies
    return out


def test_model_record_holds_a_hash_of_every_file(random_model):
    meta = json.loads((random_model / sources.META_FILE).read_text())
    on_disk = {p.name for p in random_model.iterdir() if p.is_file()} - {sources.META_FILE, sources.STAT_FILE}
    assert set(meta["files"]) == on_disk and "model.safetensors" in on_disk and "tokenizer.json" in on_disk
    for name, rec in meta["files"].items():
        assert rec == {"sha256": sources.sha256_file(random_model / name),
                       "bytes": (random_model / name).stat().st_size}
    assert all(len(meta[k]) == 64 for k in ("content_sha256", "weights_sha256", "tokenizer_sha256"))


@pytest.mark.parametrize("name", ["model.safetensors", "config.json", "tokenizer.json"])
def test_weights_config_tokenizer_corrupted_same_size_are_named(random_model, tmp_path, name):
    m = _copy(random_model, tmp_path)
    load_model(m)  # fine before
    flip_bytes_in_place(m / name)
    with pytest.raises(ModelIntegrityError) as err:
        load_model(m)
    msg = str(err.value)
    assert str(m / name) in msg and "sha256" in msg
    assert "download_model" in msg and f"--forcerun {m / sources.META_FILE}" in msg


def test_truncated_weights_name_the_file_and_the_rule(random_model, tmp_path):
    m = _copy(random_model, tmp_path)
    w = m / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ModelIntegrityError, match="truncated or replaced") as err:
        load_model(m)
    assert str(w) in str(err.value) and "download_model" in str(err.value)
    # the stated fix heals: materialise again, same content as before
    materialize("tiny", {"source": "random", "seed": 0, "config": TINY_CFG}, m, tmp_path / "w")
    assert (m / sources.META_FILE).read_bytes() == (random_model / sources.META_FILE).read_bytes()
    load_model(m)


def test_touched_file_is_hashed_once_then_trusted(random_model, tmp_path, monkeypatch):
    m = _copy(random_model, tmp_path)
    os.utime(m / "model.safetensors")  # same content, new mtime (touch, cp without -p)
    hashed = []
    real = sources.sha256_file
    monkeypatch.setattr(sources.integrity, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    sources.verify_model_dir(m)
    assert hashed == ["model.safetensors"]
    hashed.clear()
    sources.verify_model_dir(m)
    assert hashed == []  # re-stamped: the fast path (a stat per file) again
    sources.verify_model_dir(m, full=True)
    assert sorted(hashed) == sorted(json.loads((m / sources.META_FILE).read_text())["files"])


def test_same_size_corruption_with_mtime_restored_needs_full_verification(random_model, tmp_path, monkeypatch):
    """The fast path trusts size + mtime; LPBENCH_VERIFY=full hashes everything (documented limit)."""
    m = _copy(random_model, tmp_path)
    w = m / "model.safetensors"
    st = w.stat()
    flip_bytes_in_place(w)
    os.utime(w, ns=(st.st_atime_ns, st.st_mtime_ns))
    sources.verify_model_dir(m)
    monkeypatch.setenv("LPBENCH_VERIFY", "full")
    with pytest.raises(ModelIntegrityError):
        sources.verify_model_dir(m)


def test_model_dir_without_hashes_is_refused(random_model, tmp_path):
    m = _copy(random_model, tmp_path)
    meta = json.loads((m / sources.META_FILE).read_text())
    del meta["files"]
    (m / sources.META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelIntegrityError, match="no file hashes"):
        load_model(m)


def test_local_source_directory_is_hashed(random_model, tmp_path):
    out = materialize("loc", {"source": "local", "path": str(random_model)}, tmp_path / "o", tmp_path / "w")
    meta = json.loads((out / sources.META_FILE).read_text())
    assert meta["source_sha256"] == sources.source_dir_sha256(random_model)


def test_hf_moved_branch_changes_the_model_record(hf_hub, random_model, tmp_path):
    """`revision: main` that moved upstream: the re-materialised model's record differs (so Snakemake's
    checksum trigger reruns every evaluation) instead of being byte-identical."""
    files = {p.name: p for p in random_model.iterdir() if p.is_file() and not p.name.startswith((".", "lpbench"))}
    hf_hub.add_repo("org/moving", files)
    entry = {"source": "hf", "repo_id": "org/moving", "revision": "main", "endpoint": hf_hub.endpoint}
    a = (materialize("mv", entry, tmp_path / "a", tmp_path / "wa") / sources.META_FILE).read_bytes()
    other = materialize("x", {"source": "random", "seed": 7, "config": TINY_CFG}, tmp_path / "r7", tmp_path / "w7")
    hf_hub.add_repo("org/moving", {**files, "model.safetensors": other / "model.safetensors"})
    b = (materialize("mv", entry, tmp_path / "b", tmp_path / "wb") / sources.META_FILE).read_bytes()
    assert a != b
    assert json.loads(a)["files"]["model.safetensors"] != json.loads(b)["files"]["model.safetensors"]
    assert json.loads(a)["tokenizer_sha256"] == json.loads(b)["tokenizer_sha256"]


def test_corpus_texts_are_hashed_and_checked(tmp_path):
    entry = {"source": "local", "path": str(ROOT / "tests" / "data" / "tiny_corpus.txt"), "evaluation_fraction": 0.5}
    meta = materialize_corpus("tiny", entry, tmp_path / "c", tmp_path / "w")
    ev = tmp_path / "c" / "evaluation.txt"
    assert meta["files"]["evaluation.txt"]["bytes"] == ev.stat().st_size
    verify_text(ev, tmp_path / "c" / "corpus.json")
    ev.write_text(ev.read_text()[:300])
    with pytest.raises(CorpusError) as err:
        verify_text(ev, tmp_path / "c" / "corpus.json")
    assert str(ev) in str(err.value) and "download_corpus" in str(err.value)


def test_token_file_swapped_or_stale_is_an_error(random_model, tmp_path):
    meta = json.loads((random_model / sources.META_FILE).read_text())
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps({"files": {"evaluation.txt": {"sha256": "a" * 64, "bytes": 3}}}))
    ids = torch.arange(100, dtype=torch.int32)
    tok, side = tmp_path / "evaluation.pt", tmp_path / "evaluation.json"
    torch.save(ids, tok)
    side.write_text(json.dumps({"tokenizer_sha256": meta["tokenizer_sha256"],
                                "text": {"file": "x/evaluation.txt", "sha256": "a" * 64, "bytes": 3},
                                "tokens": token_record(tok, ids)}))
    assert torch.equal(load_tokens(tok, side, meta, corpus)[0], ids)
    torch.save(ids[:50], tok)  # another token file in its place
    with pytest.raises(TokenFileError, match="changed after tokenization"):
        load_tokens(tok, side, meta, corpus)
    torch.save(ids, tok)
    with pytest.raises(TokenFileError, match="tokenizer"):
        load_tokens(tok, side, {**meta, "tokenizer_sha256": "b" * 64}, corpus)
    corpus.write_text(json.dumps({"files": {"evaluation.txt": {"sha256": "c" * 64, "bytes": 3}}}))
    with pytest.raises(TokenFileError, match="no longer records"):
        load_tokens(tok, side, meta, corpus)


def test_fewer_windows_than_requested_is_an_error():
    ids = torch.arange(64 * 3 + 10)
    with pytest.raises(ValueError, match="3 non-overlapping window.*fewer than the 4 requested.*n_windows: null"):
        eval_windows(ids, 64, 4)
    assert eval_windows(ids, 64, None).shape == (3, 64)  # null: all there are
    assert eval_windows(ids, 64, 2).shape == (2, 64)


def test_silent_hub_fails_within_the_stated_timeout(hf_hub, tmp_path, monkeypatch):
    """A hub that accepts connections and never answers: the hf source gives up after `timeout` per
    request × `retries` (plus the backoff between attempts) and says so."""
    monkeypatch.setattr(sources.hf, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    entry = {"source": "hf", "repo_id": "org/never", "revision": FAKE_SHA, "timeout": 1, "retries": 2}
    for revision in (FAKE_SHA, "main"):  # list_repo_tree (commit) and repo_info (branch) paths
        with SilentHub() as hub:
            t0 = time.monotonic()
            with pytest.raises(DownloadError) as err:
                materialize("never", {**entry, "revision": revision, "endpoint": hub.endpoint},
                            tmp_path / "o", tmp_path / "w")
            elapsed = time.monotonic() - t0
        msg = str(err.value)
        assert "after 2 attempt(s)" in msg and "1 s to answer" in msg and hub.endpoint in msg
        assert hub.connections >= 2
        assert elapsed < 15, elapsed  # two 1-s timeouts; the issue saw > 300 s


def test_pip_download_states_its_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setattr(sources.pypi, "time", type("T", (), {"sleep": staticmethod(lambda s: None)}))
    with SilentHub() as hub:
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match=r"after 1 attempts \(request timeout 1 s\)"):
            sources.pip_download(["lpbench-none"], tmp_path / "w", retries=1, timeout=1,
                                 pip_args=["--index-url", f"{hub.endpoint}/simple"])
        assert time.monotonic() - t0 < 60


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 0\nmodels:\n  a: {source: random\n  b: 1\n")
    with pytest.raises(ConfigError, match=rf"{bad}:4:4: YAML syntax error"):
        load_yaml(bad)
    proc = subprocess.run([sys.executable, "-m", "lpbench.config", str(bad)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == 1 and f"{bad}:4:4" in proc.stderr


@pytest.mark.parametrize("section, name, key, near", [
    ("models", "tiny-llama", "bos_per_windows", "bos_per_window"),
    ("models", "tiny-opt", "causl", "causal"),
    ("corpora", "tiny", "evaluation_fractoin", "evaluation_fraction"),
])
def test_unknown_entry_key_lists_the_allowed_ones(section, name, key, near):
    cfg = load_yaml(ROOT / "config" / "test.yaml")
    cfg[section][name][key] = True
    with pytest.raises(ConfigError) as err:
        check_entries(cfg)
    msg = str(err.value)
    assert f"{section}.{name}: unknown key '{key}'" in msg and f"did you mean '{near}'" in msg and "allowed: [" in msg


def test_shipped_configs_pass_every_check():
    for f in ("config.yaml", "test.yaml"):
        cfg = load_yaml(ROOT / "config" / f)
        check_entries(cfg)
        check_references(cfg)


def test_method_facts_are_what_the_methods_say_and_are_remembered(tmp_path):
    from lpbench.methods import build_method, has_offline_step
    from lpbench.methods.gptq import clip_scales_key, gptq_key

    cfg = load_yaml(ROOT / "config" / "config.yaml")
    resolved = expand_stacks(cfg["methods"])[0]                                    # stacks resolved

    def fact(n, e):
        m = build_method(n, resolved[n])
        seeded = "seed" in type(m).defaults
        return {"offline": has_offline_step(e), "gptq": gptq_key(m, cfg["seed"]),
                "clip_scales": clip_scales_key(m), "pass": m.pass_key(),
                "seed": (e.get("seed", cfg["seed"]) if seeded else None),
                **({"stack": m.facts()} if m.kind == "stack" else {})}
    direct = {n: fact(n, e) for n, e in cfg["methods"].items()}
    assert any(f["gptq"] for f in direct.values()) and any(f["offline"] for f in direct.values())
    # the RTN + clip rows read the plain GPTQ set's scales; Tender's window/mode variants share one pass
    assert direct["rtnclip-w4a4"]["clip_scales"] == direct["rtnclip-w4a4-kv4"]["clip_scales"] == \
        direct["gptq-w4a4"]["gptq"]
    assert len({direct[m]["pass"] for m in ("tender-int8", "tender-int8-c2", "tender-int8-c32",
                                            "tender-int8-dyn")}) == 1
    assert direct["tender-int4-g2"]["pass"] != direct["tender-int4"]["pass"] != direct["tender-int8"]["pass"]
    # a seeded method's GPTQ set names its seed: replicates never share a set
    assert direct["quarot-w4a4"]["gptq"] != direct["quarot-w4a4-s1"]["gptq"] == direct["rrs-w4a4-s1"]["gptq"]
    assert direct["quarot-w4a4"]["seed"] == cfg["seed"] and direct["rrs-w16a4-s3"]["seed"] == 3
    assert method_facts(cfg) == direct
    cache = tmp_path / "cache"
    assert method_facts(cfg, cache) == direct
    assert len(list(cache.glob("method-facts-*.json"))) == 1
    # a warm cache answers in a process that never imports torch, and answers the same
    probe = ("import json, sys; from lpbench.config import load_yaml, method_facts; "
             f"f = method_facts(load_yaml({str(ROOT / 'config' / 'config.yaml')!r}), {str(cache)!r}); "
             "print(json.dumps({'torch': 'torch' in sys.modules, 'facts': f}))")
    out = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                    check=True).stdout)
    assert out == {"torch": False, "facts": direct}


def test_method_facts_cache_never_hides_an_error(tmp_path):
    cfg = load_yaml(ROOT / "config" / "test.yaml")
    method_facts(cfg, tmp_path)
    bad = json.loads(json.dumps(cfg))
    bad["methods"][next(iter(bad["methods"]))] = {"method": "rtn", "w_bits": 17}
    with pytest.raises(ConfigError, match="w_bits must be an integer in \\[2, 16\\], got 17"):
        method_facts(bad, tmp_path)
    typo = json.loads(json.dumps(cfg))
    typo["experiments"][0]["methods"].append("no-such-method")
    with pytest.raises(ConfigError, match="unknown method name"):
        method_facts(typo, tmp_path)            # same methods section: the cache hit still checks names


def test_method_facts_cache_follows_the_code(tmp_path):
    code = tmp_path / "code"
    shutil.copytree(CODE_ROOT, code, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = load_yaml(ROOT / "config" / "test.yaml")
    method_facts(cfg, tmp_path / "c", code_root=code)
    (before,) = (tmp_path / "c").glob("method-facts-*.json")
    with open(code / "methods" / "rtn.py", "a") as f:
        f.write("\n# an edit\n")
    method_facts(cfg, tmp_path / "c", code_root=code)
    (after,) = (tmp_path / "c").glob("method-facts-*.json")     # a new key; the stale file is gone
    assert after.name != before.name


# ----------------------------------------------------------------------------------- pipeline level
def _faults_config(root: Path) -> Path:
    """Two models (random; local, from a directory we can edit) on a copy of the tiny corpus, FP32."""
    local_src = root / "local_src"
    if not local_src.exists():
        m = materialize("src", {"source": "random", "seed": 3, "config": TINY_CFG}, root / "mk", root / "mkw")
        local_src.mkdir()
        for p in m.iterdir():
            if p.is_file() and not p.name.startswith((".", "lpbench")):
                shutil.copy(p, local_src / p.name)
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["models"] = {"tiny-llama": cfg["models"]["tiny-llama"],
                     "tiny-local": {"source": "local", "path": str(local_src)}}
    cfg["corpora"]["tiny"]["path"] = str(ROOT / "tests" / "data" / "tiny_corpus.txt")
    cfg["experiments"] = [{"models": ["tiny-llama", "tiny-local"], "corpora": ["tiny"], "methods": ["fp32"]}]
    path = root / "faults.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


EVALS = ["results/evals/tiny-llama/tiny/fp32.json", "results/evals/tiny-local/tiny/fp32.json"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """One run of the two evaluations; each test works on a copy (mtimes and .snakemake kept)."""
    root = tmp_path_factory.mktemp("faults")
    cfg = _faults_config(root)
    work = root / "base"
    work.mkdir()
    proc = smk(work, cfg, "--cores", "2", targets=EVALS)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root, cfg, work


def _workcopy(pipeline, tmp_path) -> tuple[Path, Path]:
    """A copy of the base run (mtimes and .snakemake metadata kept, so it is up to date as is)."""
    root, cfg, work = pipeline
    dest = tmp_path / "work"
    shutil.copytree(work, dest, symlinks=True)
    return dest, cfg


def _metrics(work: Path, model: str) -> dict:
    return json.loads((work / f"results/evals/{model}/tiny/fp32.json").read_text())


@pytest.mark.slow
def test_weights_corrupted_in_place_fail_naming_file_and_heal(pipeline, tmp_path):
    work, cfg = _workcopy(pipeline, tmp_path)
    before = _metrics(work, "tiny-llama")
    weights = work / "resources/models/tiny-llama/model.safetensors"
    flip_bytes_in_place(weights)
    forced = smk(work, cfg, "--cores", "1", "--forcerun", EVALS[0], targets=[EVALS[0]])
    assert forced.returncode != 0
    log = (work / "logs/evaluate/tiny-llama/tiny/fp32.log").read_text()
    assert "ModelIntegrityError" in log and "Traceback" in log  # the error is in the rule's log
    assert "resources/models/tiny-llama/model.safetensors" in log and "download_model" in log
    assert not (work / EVALS[0]).exists()  # no number computed from the corrupted weights
    # the stated fix: rerun the download; the same content comes back, the evaluation gives the same number
    healed = smk(work, cfg, "--cores", "1", "--forcerun", "resources/models/tiny-llama/lpbench_model.json",
                 targets=EVALS)
    assert healed.returncode == 0, healed.stderr[-3000:]
    assert _metrics(work, "tiny-llama")["metrics"] == before["metrics"]


@pytest.mark.slow
def test_new_local_weights_rerun_exactly_the_dependents(pipeline, tmp_path):
    work, cfg = _workcopy(pipeline, tmp_path)
    before = {m: _metrics(work, m) for m in ("tiny-llama", "tiny-local")}
    weights = Path(yaml.safe_load(cfg.read_text())["models"]["tiny-local"]["path"]) / "model.safetensors"
    other = materialize("o", {"source": "random", "seed": 9, "config": TINY_CFG}, tmp_path / "o", tmp_path / "ow")
    original, st = weights.read_bytes(), weights.stat()
    try:
        shutil.copy(other / "model.safetensors", weights)  # the local source now holds other weights
        run = smk(work, cfg, "--cores", "1", targets=EVALS)
        assert run.returncode == 0, run.stderr[-3000:]
        ran = [ln.split(":", 1)[1] for ln in (run.stdout + run.stderr).splitlines() if ln.strip().startswith("output:")]
        assert any("resources/models/tiny-local/lpbench_model.json" in p for p in ran), ran
        assert any("results/evals/tiny-local" in p for p in ran), ran
        assert not any("tiny-llama" in p for p in ran), ran
    finally:  # the source is shared with the other tests' copies: put it back as it was
        weights.write_bytes(original)
        os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = {m: _metrics(work, m) for m in ("tiny-llama", "tiny-local")}
    assert after["tiny-llama"] == before["tiny-llama"]  # untouched: not rerun
    assert after["tiny-local"]["metrics"] != before["tiny-local"]["metrics"]
    new_in, old_in = after["tiny-local"]["provenance"]["inputs"], before["tiny-local"]["provenance"]["inputs"]
    assert new_in["weights_sha256"] != old_in["weights_sha256"]
    assert (new_in["tokenizer_sha256"] == old_in["tokenizer_sha256"]
            and new_in["tokens_sha256"] == old_in["tokens_sha256"])


@pytest.mark.slow
def test_truncated_evaluation_text_stops_tokenize(pipeline, tmp_path):
    work, cfg = _workcopy(pipeline, tmp_path)
    before = {e: (work / e).read_bytes() for e in EVALS}
    text = work / "resources/corpora/tiny/evaluation.txt"
    text.write_text(text.read_text()[:200])  # one window's worth instead of many
    proc = smk(work, cfg, "--cores", "1", "--keep-going", targets=EVALS)
    assert proc.returncode != 0
    log = (work / "logs/tokenize/tiny-llama/tiny/evaluation.log").read_text()
    assert "CorpusError" in log and str(Path("resources/corpora/tiny/evaluation.txt")) in log
    assert "corpus.json" in log and "download_corpus" in log
    assert all((work / e).read_bytes() == before[e] for e in EVALS)  # no re-evaluation on the short text


def _dry_run_with(tmp_path, mutate):
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, path, "-n")
    assert proc.returncode != 0
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_typos_in_entries_fail_the_dry_run_listing_allowed_keys(tmp_path):
    def typos(c):
        c["models"]["tiny-llama"]["bos_per_windows"] = True
        c["models"]["tiny-opt"]["causl"] = False
        c["corpora"]["tiny"]["evaluation_fractoin"] = 0.3
    out = _dry_run_with(tmp_path, typos)
    for where in ("models.tiny-llama: unknown key 'bos_per_windows'", "models.tiny-opt: unknown key 'causl'",
                  "corpora.tiny: unknown key 'evaluation_fractoin'"):
        assert where in out
    assert "allowed: ['source', 'label', 'causal', 'bos_per_window'" in out


@pytest.mark.slow
def test_bad_method_parameters_fail_the_dry_run_naming_the_method(tmp_path):
    bad = {"sq-a2": {"method": "smoothquant", "alpha": 2}, "rrs-g0": {"method": "rrs", "group_size": 0},
           "rtn-w17": {"method": "rtn", "w_bits": 17}, "rtn-four": {"method": "rtn", "w_bits": "four"},
           "il2-abc": {"method": "iterl2norm", "lam": "abc"}}
    out = _dry_run_with(tmp_path, lambda c: c["methods"].update(bad))
    for expected in ("method 'sq-a2' (kind smoothquant): alpha must be a number in [0, 1], got 2",
                     "method 'rrs-g0' (kind rrs): group_size must be an integer >= 1, got 0",
                     "method 'rtn-w17' (kind rtn): w_bits must be an integer in [2, 16], got 17",
                     "method 'rtn-four' (kind rtn): w_bits must be an integer in [2, 16], got 'four'",
                     "method 'il2-abc' (kind iterl2norm): lam must be a number in (0, 1), got 'abc'"):
        assert expected in out


@pytest.mark.slow
def test_configfile_is_the_whole_config(tmp_path):
    """`--configfile config/test.yaml` (the e2e test, `make run CONFIG=config/test.yaml`) runs that file
    alone: its 3 models, nothing merged in from config/config.yaml."""
    proc = smk(tmp_path, ROOT / "config" / "test.yaml", "-n")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "smollm2" not in out and "gemma3" not in out and "minilm" not in out
    counts = dict(line.split()[:2] for line in out.splitlines() if line.startswith("download_model "))
    assert counts == {"download_model": "3"}
    make = subprocess.run(["make", "-n", "run", "CONFIG=config/test.yaml"], capture_output=True, text=True, cwd=ROOT)
    assert "--configfile config/test.yaml" in make.stdout and "-m lpbench.config config/test.yaml" in make.stdout


@pytest.mark.slow
def test_errors_go_to_the_rule_log(tmp_path):
    """A job that fails for any reason writes type, message and traceback to its log."""
    cfg = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    cfg["models"] = {"gone": {"source": "local", "path": str(tmp_path / "no-such-model")}}
    cfg["experiments"] = [{"models": ["gone"], "corpora": ["tiny"], "methods": ["fp32"]}]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = smk(tmp_path, path, "--cores", "1", targets=["resources/models/gone/lpbench_model.json"])
    assert proc.returncode != 0
    log = (tmp_path / "logs/download_model/gone.log").read_text()
    assert "job failed: DownloadError" in log and "Traceback (most recent call last)" in log
    assert "no-such-model does not exist" in log
