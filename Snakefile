# lpbench: reproduce SLaNC, Rotated Runtime Smooth, IterL2Norm, Unified Normalization and Tender.
# Run: `make run` (default config) or `snakemake --cores 2 --configfile config/test.yaml`.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/download.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/hwcost.smk"
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
