# Staged verification (target `verify`): only the runs the selected claims need (`claims:` in the config), seeds in
# stages. Stage 1 trains `verify.first_seeds` seeds of every selected claim's runs; the checkpoint `verify_stage`
# then decides the claims (qhyer/report/verify.py) and writes the next stage's seed plan, which adds
# `verify.step_seeds` seeds only to the runs of claims still inconclusive, up to `verify.max_seeds`. Snakemake
# re-evaluates the DAG after each checkpoint, so one `snakemake verify` runs every stage; a rerun finds every
# stage's outputs and does nothing; a killed stage resumes (its finished runs are kept, a killed training resumes
# from its checkpoint). Runs live in the budget's run folders: a run shared by claims, stages or the fixed targets
# is trained once. What a claim needs: qhyer/report/plan.py.
include: "verify_plan.smk"


checkpoint verify_stage:
    input:
        unpack(verify_stage_inputs),
        claims=VERIFY_CONFIG["claims_file"],
        published=VERIFY_CONFIG["published_file"],
    output:
        csv=f"{VERIFY}/stage{{stage}}/claims_check.csv",
        md=f"{VERIFY}/stage{{stage}}/claims_check.md",
        next=f"{VERIFY}/stage{{stage}}/next_plan.json",
    wildcard_constraints:
        stage=r"[1-9]\d*",
    params:
        select=config["claims"],
        design=f"--first-seeds {VERIFY_DESIGN.first_seeds} --step-seeds {VERIFY_DESIGN.step_seeds} "
        f"--max-seeds {VERIFY_DESIGN.max_seeds}",
        baselines=VERIFY_CONFIG["baselines"],
        previous=lambda wc, input: f"--previous {input.previous[0]}" if input.previous else "",
        allow_mixed=" --allow-mixed-provenance" if config.get("allow_mixed_provenance") else "",
    log:
        f"{LOGS}/verify/stage{{stage}}.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report verify-stage --stage {wildcards.stage} {params.previous} --runs {input.runs:q} "
        "--claims-file {input.claims:q} --select {params.select:q} {params.design} --baselines {params.baselines} "
        "--published {input.published:q} --out {output.csv:q} --next {output.next:q}{params.allow_mixed} "
        "> {log:q} 2>&1"


rule verify_check:
    input:
        verify_final_stage,
    output:
        csv=report("results/verify_check.csv", category="Claims"),
        md="results/verify_check.md",
    params:
        md=lambda wc, input: os.path.splitext(input[0])[0] + ".md",
    log:
        f"{LOGS}/verify/verify_check.log",
    conda:
        "../../environment.yml"
    shell:
        "(cp {input:q} {output.csv:q} && cp {params.md:q} {output.md:q}) > {log:q} 2>&1"


rule verify_citations:
    input:
        claims=VERIFY_CONFIG["claims_file"],
        published=VERIFY_CONFIG["published_file"],
    output:
        csv="results/verify_citations.csv",
        md="results/verify_citations.md",
    log:
        f"{LOGS}/verify/verify_citations.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report citations --claims-file {input.claims:q} --published {input.published:q} "
        "--out {output.csv:q} > {log:q} 2>&1"


# The staged check's forest plot: the fixed targets' `claims` figure reads results/claims_check.csv, which has no
# stages; this one shows each claim's stage and seeds, and for an inconclusive claim the seeds that would decide it.
rule verify_figure:
    input:
        table="results/verify_check.csv",
        script="paper_figures/fig_claims.py",
    output:
        png=report("paper_figures/verify_claims.png", category="Figures"),
        pdf="paper_figures/verify_claims.pdf",
    log:
        f"{LOGS}/figures/verify_claims.log",
    conda:
        "../../environment.yml"
    shell:
        "python {input.script:q} {input.table:q} {output.png:q} {output.pdf:q} > {log:q} 2>&1"


localrules:
    verify_stage,
    verify_check,
    verify_citations,
