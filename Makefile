# The two commands (each sets up .venv on first use):
#   make run    the default pipeline, offline, on this machine (results/, report at results/report.html)
#   make test   the test suite (unit tests + one end-to-end Snakemake run on config/test.yaml + the same
#               through profiles/slurm on a one-node SLURM cluster it starts, where it is root with apt)
#   make slurm-deps   the optional SLURM executor plugin (envs/requirements-slurm.txt) for profiles/slurm
VENV   ?= .venv
PY     := $(VENV)/bin/python
SMK    := $(VENV)/bin/snakemake
CORES  ?= 2
CONFIG ?= config/config.yaml
SMKFLAGS ?=
# every network step has a timeout and retries: pip gives up on a request unanswered for 60 s, 5 tries
PIPNET ?= --timeout 60 --retries 5

.PHONY: run test report lint bench clean-results slurm-deps

$(VENV)/.installed: envs/requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIPNET) --upgrade pip
	$(PY) -m pip install --quiet $(PIPNET) -r envs/requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.slurm-installed: $(VENV)/.installed envs/requirements-slurm.txt
	$(PY) -m pip install --quiet $(PIPNET) -r envs/requirements-slurm.txt
	touch $@

slurm-deps: $(VENV)/.slurm-installed

# The config check is a stamp (rerun when the config, the schema or the code that checks it changes), so
# a no-op `make run` does not pay a second interpreter importing torch (~2 s).
CONFIG_OK := .snakemake/config-checked/$(subst /,_,$(CONFIG))
LIB_SOURCES := $(wildcard src/lpbench/*.py src/lpbench/*/*.py src/lpbench/*/*/*.py)
$(CONFIG_OK): $(CONFIG) workflow/schemas/config.schema.yaml $(LIB_SOURCES) | $(VENV)/.installed
	$(PY) -m lpbench.config $(CONFIG)
	@mkdir -p $(@D) && touch $@

# `--configfile $(CONFIG)` is the whole config (the Snakefile merges nothing into it): `make run
# CONFIG=config/test.yaml` runs exactly what the end-to-end test runs. The config is checked first so a
# YAML syntax error names its file and line (Snakemake's own message names neither); see CONFIG_OK.
# The rule scripts run in a pre-loaded worker (lpbench.worker: torch + transformers imported once, one fork
# per job) instead of a fresh interpreter each; results are the same either way (tests/test_worker.py).
run: $(VENV)/.installed $(CONFIG_OK)
	$(PY) -m lpbench.worker -- $(SMK) --cores $(CORES) --configfile $(CONFIG) --rerun-incomplete $(SMKFLAGS)
	$(if $(filter -n --dry-run --dryrun,$(SMKFLAGS)),@echo "dry run: no report",@$(MAKE) --no-print-directory report)

# The HTML report is rebuilt only when a result is newer than it.
report: $(VENV)/.installed
	@if [ ! -f results/report.html ] || [ -n "$$(find results -newer results/report.html -type f ! -name report.html | head -1)" ]; then \
		$(SMK) --cores 1 --configfile $(CONFIG) --report results/report.html; \
	else echo "results/report.html is up to date"; fi

test: $(VENV)/.installed $(VENV)/.slurm-installed
	$(PY) -m pytest -q

# the config check, ruff (pycodestyle + pyflakes, pyproject.toml), snakefmt --check and Snakemake's own lint
lint: $(VENV)/.installed
	$(PY) -m lpbench.config $(CONFIG)
	$(VENV)/bin/ruff check src scripts tests benchmarks
	$(VENV)/bin/snakefmt --check Snakefile workflow
	$(SMK) --lint --configfile $(CONFIG)

bench: $(VENV)/.installed
	$(PY) benchmarks/quant_overhead.py
