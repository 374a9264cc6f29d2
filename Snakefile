# lpbench: reproduce SLaNC, Rotated Runtime Smooth, IterL2Norm, Unified Normalization and Tender.
# Run: `make run` (default config) or `snakemake --cores 2 --configfile config/test.yaml`.
import sys
from pathlib import Path

from snakemake.utils import min_version, update_config, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from lpbench.claims.ledger import check_ledger
from lpbench.config import check_entries, config_overrides, load_yaml

# One effective config: `--configfile X` means X alone (not X merged into config/config.yaml); without
# it, the default experiment. `--config key=value` still overlays single values on either.
# Every config file is read strictly first: a syntax error names file and line, a key given twice names
# file, line and key (Snakemake's own loader keeps the last of two equal keys without a word).
if not workflow.overwrite_configfiles:
    load_yaml(Path(workflow.basedir) / "config" / "config.yaml")

    configfile: "config/config.yaml"

else:
    for _configfile in workflow.overwrite_configfiles:
        load_yaml(_configfile)
# `--config key=value` overlays values on the config; a nested one is given as a YAML mapping, merged into
# the file's: --config 'evaluation={seqlen: 256}' or 'models={smollm2-135m: {eval: {seqlen: 256}}}'. Its
# values are typed as YAML here, as in a config file (Snakemake leaves nested values strings).
update_config(config, config_overrides(workflow.config_settings.config_args))


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
check_entries(config, load_yaml(SCHEMA))  # unknown keys in a model/corpus entry, listing the allowed ones
validate(config, str(SCHEMA))
check_ledger(config["claims"], workflow.basedir)  # config/claims.yaml against workflow/schemas/claims.schema.yaml


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stack.smk"
include: "workflow/rules/hwcost.smk"
include: "workflow/rules/fidelity.smk"
include: "workflow/rules/energy.smk"
include: "workflow/rules/report.smk"


# One rule file per paper, each with its own rules, target selection (lpbench.studies.<paper>) and
# FINAL_OUTPUTS / CLAIM_TABLES entries: docs/extending.md, "Add a paper".
for _paper in sorted((Path(workflow.basedir) / "workflow" / "rules" / "papers").glob("*.smk")):

    include: f"workflow/rules/papers/{_paper.name}"


rule all:
    default_target: True
    input:
        get_final_output(),
