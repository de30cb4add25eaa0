# QHyer harness DAG: data → train → evaluate → aggregate → figures → claims.
#   snakemake --cores all main_table                               # the main job: Table 1 (profile `quick`)
#   snakemake --cores all --config profile=smoke all               # everything, tiny
#   snakemake --profile workflow/profiles/slurm --config profile=paper all   # GPU cluster
# Target rules live in this file because an included file's default target is lost (Snakemake #2056, #2773).
# They list every run's outputs besides the tables: Snakemake 9 reruns a job whose output was deleted only when
# a job downstream has to run, and a target rule without outputs has to run when one of its inputs is missing.
# So after deleting one run's files, `main_table`/`all` redo that run and what depends on it; asking for
# results/table1.csv alone does nothing while the table exists.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "workflow/config/config.yaml"


report: "workflow/report/workflow.rst"


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
        run_outputs(MAIN_TABLE1 + MAIN_TABLE2 + ABLATION + TAU),
    default_target: True


rule main_table:
    input:
        [f"results/table1.{ext}" for ext in ("csv", "md", "tex")],
        run_outputs(MAIN_TABLE1),
