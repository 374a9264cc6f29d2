"""docs/extending.md, "Add a paper", followed once: a toy paper that writes one table from existing evaluations
(perplexity of each method over fp32's) and decides one claim, added to a copy of the workflow.

The test counts the places the toy touched in the copy (its own tests are this file): they must be the
recipe's required places, at most six with this file."""
import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "workflow", "scripts", "src", "config", "envs", "docs", "tests/data"]

# --- the toy paper, written as the recipe says ------------------------------------------------------------
STUDY = '''\
"""Toy paper: each evaluated method's perplexity over fp32's (targets only; the table is in .tables)."""
from __future__ import annotations

from dataclasses import dataclass

from lpbench.studies.selection import eval_paths, is_causal


@dataclass(frozen=True)
class Targets:
    triples: list

    @property
    def evals(self) -> list[str]:
        return eval_paths(self.triples)


def targets(config: dict, triples: list) -> Targets:
    """Every evaluation of a causal model on a corpus it is also evaluated on with fp32."""
    ref = {(m, c) for m, c, meth in triples if meth == "fp32"}
    return Targets([(m, c, meth) for m, c, meth in triples if (m, c) in ref and is_causal(config, m)])
'''
TABLES = '''\
"""The toy paper's table."""
import pandas as pd


def ratio_table(results: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame([{"model": r["model"]["id"], "corpus": r["corpus"]["id"], "method": r["method"]["name"],
                        "perplexity": r["metrics"]["perplexity"]} for r in results])
    ref = df[df["method"] == "fp32"].set_index(["model", "corpus"])["perplexity"]
    df["ratio"] = [p / ref[(m, c)] for m, c, p in zip(df["model"], df["corpus"], df["perplexity"])]
    return df
'''
RULES = '''\
# Rules of the toy paper (tests/test_toy_paper.py).

from lpbench.studies import toy as toy_study

TOY = toy_study.targets(config, TRIPLES)


rule toy_table:
    """Each method's perplexity over fp32's."""
    input:
        evals=TOY.evals,
    output:
        csv="results/tables/toy_ratio.csv",
        md="results/tables/toy_ratio.md",
    benchmark:
        "results/benchmarks/toy_table/toy.tsv"
    log:
        "logs/toy/table.log",
    conda:
        PAPER_ENV
    script:
        "../../../scripts/toy_table.py"


if TOY.triples:
    FINAL_OUTPUTS += outputs(rules.toy_table)
    CLAIM_TABLES += [rules.toy_table.output.csv]
'''
SCRIPT = '''\
"""Rule toy_table: evaluation JSONs -> results/tables/toy_ratio.{csv,md}."""
from lpbench.worker import delegate

delegate()  # under `make run`: this job runs in the pre-loaded worker (lpbench.worker)

from lpbench.jobs import setup
from lpbench.studies.toy.tables import ratio_table
from lpbench.tables import load_results, write_table

log = setup(snakemake)
write_table(ratio_table(load_results(snakemake.input.evals)), snakemake.output.csv, snakemake.output.md,
            "Toy paper: perplexity over fp32")
'''
CLAIM = {
    "id": "TOY-1", "paper": "toy", "statement": "8-bit RTN stays within 50 % of FP32 perplexity.",
    "paper_value": "ratio <= 1.5", "basis": "paper text", "basis_pointer": "tests/test_toy_paper.py",
    "deviations": "a tiny random model",
    "rule": {"kind": "table_check", "table": "toy_ratio", "column": "ratio", "op": "<=", "value": 1.5,
             "where": {"method": "rtn-w8a8"}},
    "not_run_reason": "no rtn-w8a8 and fp32 evaluations of a causal model",
}
DOC = "# Toy paper\n\nA test fixture (tests/test_toy_paper.py): one table, one claim.\n"

#: the recipe's required places (docs/extending.md) and the files the toy writes in each
RECIPE = {
    "src/lpbench/studies/<paper>/": {"src/lpbench/studies/toy/__init__.py": STUDY,
                                     "src/lpbench/studies/toy/tables.py": TABLES},
    "workflow/rules/papers/<paper>.smk": {"workflow/rules/papers/toy.smk": RULES},
    "scripts/<paper>_<step>.py": {"scripts/toy_table.py": SCRIPT},
    "config/claims.yaml": {},                                    # one claim appended
    "docs/papers/<paper>.md": {"docs/papers/toy.md": DOC},
}
TESTS_PLACE = "tests/test_<paper>.py"                            # this file


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _place(path: str) -> str:
    if path.startswith("src/lpbench/studies/toy/"):
        return "src/lpbench/studies/<paper>/"
    return {"workflow/rules/papers/toy.smk": "workflow/rules/papers/<paper>.smk",
            "scripts/toy_table.py": "scripts/<paper>_<step>.py", "docs/papers/toy.md": "docs/papers/<paper>.md",
            }.get(path, path)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A copy of the workflow with the toy paper added, and the places that changed."""
    wf = tmp_path_factory.mktemp("toy_paper")
    for name in WORKFLOW:
        src, dst = ROOT / name, wf / name
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    before = _tree(wf)
    for files in RECIPE.values():
        for rel, text in files.items():
            (wf / rel).parent.mkdir(parents=True, exist_ok=True)
            (wf / rel).write_text(text)
    with open(wf / "config" / "claims.yaml", "a") as f:
        f.write("\n" + textwrap.indent(yaml.safe_dump([CLAIM], sort_keys=False), "  "))
    after = _tree(wf)
    changed = {p for p in after if before.get(p) != after[p]} | (set(before) - set(after))
    return wf, changed


def _smk(wf: Path, *args, config: Path, worker: bool = False):
    """Snakemake on the copy (its src/ first on the path); ``worker``: through the pre-loaded worker, as
    ``make run`` runs it."""
    env = {**os.environ, "PYTHONPATH": f"{wf / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    prefix = [sys.executable, "-m", "lpbench.worker", "--socket", str(wf / ".snakemake" / "w.sock"), "--"]
    return subprocess.run([*(prefix if worker else []), sys.executable, "-m", "snakemake",
                           "--snakefile", str(wf / "Snakefile"), "--directory", str(wf), "--configfile", str(config),
                           *args], capture_output=True, text=True, env=env, cwd=wf)


def test_the_toy_touches_only_the_recipes_places(toy):
    _, changed = toy
    places = {_place(p) for p in changed}
    assert places == set(RECIPE), sorted(changed)
    assert len(places | {TESTS_PLACE}) == 6


def test_a_dry_run_plans_the_toy_rule_and_its_claim_reads_the_table(toy):
    wf, _ = toy
    proc = _smk(wf, "-n", "--cores", "1", config=wf / "config" / "test.yaml")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "rule toy_table:" in out
    claims_job = out[out.index("rule claims:"):].split("\n\n")[0]
    assert "results/tables/toy_ratio.csv" in claims_job


@pytest.mark.slow
def test_the_toy_claim_gets_a_computed_verdict(toy):
    """On test.yaml-sized results: one tiny model, fp32 and rtn-w8a8 (no training study)."""
    wf, _ = toy
    cfg = yaml.safe_load((wf / "config" / "test.yaml").read_text())
    cfg["experiments"] = [{"models": ["tiny-llama"], "corpora": ["tiny"], "methods": ["fp32", "rtn-w8a8"]}]
    cfg.pop("unified_norm")
    small = wf / "config" / "toy.yaml"
    small.write_text(yaml.safe_dump(cfg, sort_keys=False))
    proc = _smk(wf, "--cores", "2", "results/claims.csv", config=small, worker=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    table = pd.read_csv(wf / "results" / "tables" / "toy_ratio.csv")
    assert set(table["method"]) == {"fp32", "rtn-w8a8"} and (table["ratio"] > 0).all()
    claims = pd.read_csv(wf / "results" / "claims.csv").set_index("id")
    assert claims.loc["TOY-1", "verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    assert "ratio <= 1.5" in claims.loc["TOY-1", "reason"]
