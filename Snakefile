# lpbench: reproduce SLaNC, Rotated Runtime Smooth, IterL2Norm, Unified Normalization and Tender.
# Run: `make run` (default config) or `snakemake --cores 2 --configfile config/test.yaml`.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from lpbench.config import check_entries, load_yaml


# One effective config: `--configfile X` means X alone (not X merged into config/config.yaml); without
# it, the default experiment. `--config key=value` still overlays single values on either.
if not workflow.overwrite_configfiles:
    load_yaml(Path(workflow.basedir) / "config" / "config.yaml")  # a syntax error names file and line

    configfile: "config/config.yaml"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
check_entries(config, load_yaml(SCHEMA))  # unknown keys in a model/corpus entry, listing the allowed ones
validate(config, str(SCHEMA))


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/stack.smk"
include: "workflow/rules/hwcost.smk"
include: "workflow/rules/energy.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/rrs.smk"
include: "workflow/rules/tender.smk"
include: "workflow/rules/slanc.smk"
include: "workflow/rules/iterl2norm.smk"
include: "workflow/rules/unified_norm.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        get_final_output(),
    default_target: True
