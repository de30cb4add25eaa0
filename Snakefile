# QHyer harness DAG: data → train → evaluate → aggregate → figures → claims.
#   snakemake --cores all main_tables                              # the main job: Tables 1 and 2 and their claims
#   snakemake --cores all --config budget=smoke all               # everything, tiny
#   snakemake --profile workflow/profiles/slurm --config budget=paper all   # GPU cluster
#   snakemake --cores all --config budget=paper -- verify         # the selected claims (`claims:`), seeds in stages
# Target rules live in this file because an included file's default target is lost (Snakemake #2056, #2773).
# They list every run's outputs besides the tables: Snakemake 9 reruns a job whose output was deleted only when
# a job downstream has to run, and a target rule without outputs has to run when one of its inputs is missing.
# So after deleting one run's files, `main_tables`/`all` redo that run and what depends on it; asking for
# results/table1.csv alone does nothing while the table exists.
from snakemake.utils import min_version

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
include: "workflow/rules/verify.smk"


rule all:
    input:
        TABLES,
        FIGURES,
        CLAIMS_CHECKS,
        run_outputs(MAIN_TABLE1 + MAIN_TABLE2 + SOURCE + ABLATION + TAU),
    default_target: True


rule main_tables:
    input:
        [f"results/{table}.{ext}" for table in ("table1", "table2") for ext in ("csv", "md", "tex")],
        "results/claims_check_main.csv",
        "results/claims_check_main.md",
        run_outputs(MAIN_TABLE1 + MAIN_TABLE2 + SOURCE),


# The staged claims check (workflow/rules/verify.smk): its runs are known only stage by stage (checkpoints), so the
# target lists the final check; a rerun re-reads every stage's decision and does nothing when all exist.
rule verify:
    input:
        "results/verify_check.csv",
        "results/verify_check.md",
        "results/verify_citations.csv",
        "results/verify_citations.md",
        "paper_figures/verify_claims.png",
