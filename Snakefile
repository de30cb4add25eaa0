# QHyer harness DAG: data → train → evaluate → aggregate → figures → claims.
#   snakemake --cores all results/table1.csv                       # the main job (profile `quick`)
#   snakemake --cores all --config profile=smoke all               # everything, tiny
#   snakemake --profile workflow/profiles/slurm --config profile=paper all   # GPU cluster
# Target rules live in this file because an included file's default target is lost (Snakemake #2056, #2773).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "workflow/config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/claims.smk"


rule all:
    input:
        TABLES,
        FIGURES,
        "results/claims_check.csv",
        "results/claims_check.md",
    default_target: True
