import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from lpbench.config import expand_stacks, experiment_triples, load_yaml, method_facts, window_settings
from lpbench.studies.selection import artifact_paths, eval_paths, model_paths

# unknown model/corpus/method names or bad method parameters: fail now. What the DAG needs of each method
# is remembered in .snakemake/lpbench/ for the same methods and code, so a no-op run does not import torch.
METHOD_FACTS = method_facts(config, cache_dir=".snakemake/lpbench")
# a stack's entry carries its methods' entries (lpbench.methods.stack): its params and config hash follow them
config["methods"] = expand_stacks(config["methods"])[0]


def resolve(path):
    """A relative path in the config means the working directory, else the workflow's directory."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(Path(workflow.basedir) / p)


for _section in ("models", "corpora"):
    for _entry in config[_section].values():
        for _key in ("path", "calibration", "evaluation"):
            if isinstance(_entry.get(_key), str):
                _entry[_key] = resolve(_entry[_key])
config["claims"] = resolve(config["claims"])
config["hw_costs"] = resolve(config["hw_costs"])
for _ledger in (config["claims"], config["hw_costs"]):
    load_yaml(_ledger)  # the claims ledger and the cost file, strictly: a key given twice names file and line

from lpbench.limits import check_device, check_positions

# seqlen within each model's position table where it is known now (random/local entries, downloaded models;
# the jobs check the others), and a usable `device` where the jobs run (see lpbench.limits)
check_positions(config)
check_device(config, local_exec=workflow.local_exec)


def warn_changed_models():
    """A stat per file: models whose files are missing or changed size since download_model wrote them
    (jobs that load them will stop with the fix; this says so even when there is nothing to run)."""
    import json

    for m in sorted({m for exp in config["experiments"] for m in exp["models"]}):
        meta = Path("resources/models") / m / "lpbench_model.json"
        try:
            files = json.loads(meta.read_text()).get("files", {})
        except (OSError, ValueError):
            continue
        for name, rec in files.items():
            p = meta.parent / name
            if not p.is_file() or p.stat().st_size != rec["bytes"]:
                print(
                    f"lpbench: WARNING {p} is missing or changed size since rule download_model wrote it; "
                    f"jobs that load model '{m}' will fail; fix: snakemake --forcerun {meta}",
                    file=sys.stderr,
                )
                break


warn_changed_models()

ENV = "../../envs/lpbench.yaml"  # for --use-conda; the Makefile's .venv is the default
PAPER_ENV = "../../../envs/lpbench.yaml"  # the same file, from workflow/rules/papers/

TRIPLES = experiment_triples(config)
MODELS = sorted({m for m, _, _ in TRIPLES})
CAUSAL = [m for m in MODELS if config["models"][m].get("causal", True)]


wildcard_constraints:
    model="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    corpus="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    method="[A-Za-z0-9][A-Za-z0-9_.+-]*",
    split="calibration|evaluation",


def local_source_input(section):
    """A `local` model directory's files / corpus text files are inputs of the download rule, so
    editing them re-materialises the entry (and, through the content hashes, exactly what depends on it)."""

    def files(wc):
        entry = config[section][wc.model if section == "models" else wc.corpus]
        if entry["source"] != "local":
            return {}
        if section == "models":
            from lpbench.sources import local_source_files

            return {"source": [str(p) for p in local_source_files(Path(entry["path"]))]}
        paths = [entry[k] for k in ("calibration", "evaluation") if k in entry] or [entry["path"]]
        return {"source": [p for p in paths if Path(p).is_file()]}

    return files


def method_entry(method):
    """A method's config entry as its jobs build it: a method that declares a ``seed`` gets the config's
    ``seed`` written in when its entry sets none (so the entry, its result JSON and its GPTQ set name
    all say which seed ran); a stack's methods are written in the same way."""
    entry = config["methods"][method]
    if "stack" in METHOD_FACTS[method]:
        return {
            **entry,
            "of": [
                {"name": c["name"], **method_entry(c["name"])} if c.get("name") in METHOD_FACTS else c
                for c in entry["of"]
            ],
        }
    seed = METHOD_FACTS[method].get("seed")
    return entry if seed is None or entry.get("seed") is not None else {**entry, "seed": seed}


def method_gptq_key(method):
    """Name of the shared GPTQ weight set a configured method reads (None: RTN weights)."""
    return METHOD_FACTS[method]["gptq"]


def gptq_entry(method):
    """The config entry whose transform defines a method's GPTQ set (a stack's: its GPTQ method's)."""
    stack = METHOD_FACTS[method].get("stack")
    return method_entry(stack["gptq_component"] if stack else method)


#: GPTQ weight set name -> the config entry of one method that uses it (its transform defines the set)
GPTQ_ENTRIES = {}
#: (model, corpus, GPTQ set name) of every set the evaluations need
GPTQ_SETS = set()
for _m, _c, _meth in TRIPLES:
    _key = method_gptq_key(_meth)
    if _key is not None:
        GPTQ_ENTRIES.setdefault(_key, gptq_entry(_meth))
        GPTQ_SETS.add((_m, _c, _key))


def own_window_count(wc, method):
    """How many calibration windows a method's offline step reads (``calib_windows``, else all shared)."""
    n = config["methods"][method].get("calib_windows")
    return n if n is not None else window_settings(config, wc.model, "calibration")["n_windows"]


#: (model, corpus, pass name) -> the methods whose calibrations share that statistics pass (two or more;
#: Method.pass_key): one pass over the most windows any of them reads, read at each one's count
SHARED_PASSES = {}
for _m, _c, _meth in TRIPLES:
    if METHOD_FACTS[_meth].get("pass") is not None:
        SHARED_PASSES.setdefault((_m, _c, METHOD_FACTS[_meth]["pass"]), []).append(_meth)
SHARED_PASSES = {k: v for k, v in SHARED_PASSES.items() if len(v) > 1}


def shared_pass_members(wc):
    return SHARED_PASSES[(wc.model, wc.corpus, wc.key)]


def method_artifact_input(wc):
    """The offline artifact an evaluation reads; none for methods without an offline step, so no
    job starts just to write an empty file. GPTQ weights come from the shared set of the method's
    transform (rule gptq_weights), computed once per (model, corpus, transform). An RTN + MSE-clip row
    reads its clip search's result from the scales of a GPTQ set of the same weights when that set is
    computed anyway (lpbench.methods.gptq.clip_scales_key); otherwise it searches itself."""
    out = {}
    if METHOD_FACTS[wc.method]["offline"]:
        out["artifact"] = f"resources/artifacts/{wc.model}/{wc.corpus}/{wc.method}.pt"
    key = method_gptq_key(wc.method)
    if key is not None:
        out["gptq"] = f"resources/gptq/{wc.model}/{wc.corpus}/{key}.pt"
    scales = METHOD_FACTS[wc.method].get("clip_scales")
    if scales is not None and (wc.model, wc.corpus, scales) in GPTQ_SETS:
        out["clip_scales"] = f"resources/gptq/{wc.model}/{wc.corpus}/{scales}.pt"
    return out


def artifact_windows(wc):
    """Calibration windows of a method's offline step: the shared ones, or a larger seeded set when the
    method asks for more (``calib_windows`` above ``calibration.n_windows``, e.g. the Tender sweep)."""
    return calib_windows_file(wc, [wc.method])


def artifact_pass_input(wc):
    """The shared statistics pass a method's offline step reads, if it shares one (SHARED_PASSES)."""
    key = METHOD_FACTS[wc.method].get("pass")
    if key is None or (wc.model, wc.corpus, key) not in SHARED_PASSES:
        return {}
    return {"shared_pass": f"resources/passes/{wc.model}/{wc.corpus}/{key}.pt"}


#: configured stacks (lpbench.methods.stack) and a wildcard pattern matching exactly their names
STACKS = sorted(name for name, f in METHOD_FACTS.items() if "stack" in f)
STACK_PATTERN = "|".join(re.escape(s) for s in STACKS) or "(?!)"


def calib_windows_file(wc, methods):
    """Calibration windows for the offline steps of ``methods``: the shared ones, or the larger seeded set
    the most demanding of them asks for (``calib_windows`` above ``calibration.n_windows``)."""
    n = max((config["methods"][m].get("calib_windows") or 0 for m in methods), default=0)
    if n > window_settings(config, wc.model, "calibration")["n_windows"]:
        return f"resources/calib_windows/{wc.model}/{wc.corpus}/n{n}.pt"
    return f"resources/calib/{wc.model}/{wc.corpus}.windows.pt"


def stack_artifact_input(wc):
    """A stack's artifact reads its methods' own artifact files where they are shared, and the model,
    statistics and windows (and the GPTQ set of its GPTQ method) where one is recalibrated."""
    facts = METHOD_FACTS[wc.method]["stack"]
    recal = facts["recalibrate"]
    shared = [
        f"resources/artifacts/{wc.model}/{wc.corpus}/{m}.pt"
        for m in facts["components"]
        if METHOD_FACTS[m]["offline"] and m not in recal
    ]
    out = {"shared": shared} if shared else {}
    if recal:
        out.update(
            model=f"resources/models/{wc.model}/lpbench_model.json",
            stats=f"resources/calib/{wc.model}/{wc.corpus}.pt",
            windows=calib_windows_file(wc, recal),
        )
        if facts["gptq_component"]:
            out["gptq"] = f"resources/gptq/{wc.model}/{wc.corpus}/{METHOD_FACTS[wc.method]['gptq']}.pt"
    return out


def eval_results():
    return eval_paths(TRIPLES)


def _reference_method():
    """The configured method whose evaluation is the FP32 reference: ``fp32`` if it is the plain fp32 kind,
    else the first such entry; None (no fidelity metrics) if there is none."""
    plain = [n for n, e in config["methods"].items() if e == {"method": "fp32"}]
    return "fp32" if "fp32" in plain else (plain[0] if plain else None)


#: evaluations of the causal models other than this one read its FP32 reference distribution (rule
#: evaluate_reference writes it); encoders compare with FP32 inside their own job
REFERENCE_METHOD = _reference_method()


def reference_path(model, corpus):
    return f"resources/reference/{model}/{corpus}/{REFERENCE_METHOD}.topk.pt"


def fidelity_reference_input(wc):
    """The FP32 reference distribution a causal evaluation compares with (a DAG edge to the reference's
    evaluation, which runs once per (model, corpus)); none for the reference itself and for encoders."""
    if REFERENCE_METHOD is None or wc.method == REFERENCE_METHOD or wc.model not in CAUSAL:
        return {}
    return {"reference": reference_path(wc.model, wc.corpus)}


# Extension points: a rule file appends what a run must produce to FINAL_OUTPUTS (`outputs(rules.<name>)`,
# after the rule is defined) and the tables its claims read to CLAIM_TABLES (a claim names a table by stem).
FINAL_OUTPUTS = []
CLAIM_TABLES = []


def outputs(*rule_objects):
    """Every file the given rules declare as output (``rules.<name>``), as plain paths."""
    return [str(f) for r in rule_objects for f in r.output]


def get_final_output():
    return FINAL_OUTPUTS


#: params of rules evaluate and evaluate_reference (the same job for a different method)
EVALUATE_PARAMS = {
    "entry": lambda wc: method_entry(wc.method),
    "settings": lambda wc: window_settings(config, wc.model, "evaluation"),
    "seed": config["seed"],
    "device": config["device"],
    "config_hash": lambda wc: config_slice_hash(wc),
}


def config_slice_hash(wc):
    """Hash of every config value one evaluation depends on (recorded in its result JSON)."""
    from lpbench.provenance import config_hash

    return config_hash(
        config["models"][wc.model],
        config["corpora"][wc.corpus],
        config["methods"][wc.method],
        window_settings(config, wc.model),
        config["calibration"],
        config["seed"],
    )
