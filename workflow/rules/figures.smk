# Figures (seaborn, PNG and PDF) drawn by thin scripts in paper_figures/: one per results table (rule `figure`), and
# the learning curves, drawn from the main runs' folders (rule `learning_curves`).
FIGURE_INPUTS = {
    "table1": "results/table1.csv",
    "ablation": "results/ablation.csv",
    "tau": "results/tau_sweep.csv",
    "dt": "results/dt_stats.csv",
    "gate": "results/dt_stats.csv",
    "aggregate": "results/aggregate.csv",
    "profiles": "results/aggregate.csv",
    "claims": "results/claims_check.csv",
}
FIGURES = [f"paper_figures/{name}.{ext}" for name in [*FIGURE_INPUTS, "learning_curves"] for ext in ("png", "pdf")]
MAIN_RUNS = MAIN_TABLE1 + MAIN_TABLE2


rule figure:
    input:
        table=lambda wc: FIGURE_INPUTS[wc.name],
        script="paper_figures/fig_{name}.py",
    output:
        png=report("paper_figures/{name}.png", category="Figures"),
        pdf="paper_figures/{name}.pdf",
    wildcard_constraints:
        name="|".join(FIGURE_INPUTS),
    log:
        f"{LOGS}/figures/{{name}}.log",
    conda:
        "../../environment.yml"
    shell:
        "python {input.script:q} {input.table:q} {output.png:q} {output.pdf:q} > {log:q} 2>&1"


# The evaluations are inputs too, so the curves are drawn after every checkpoint's score exists.
rule learning_curves:
    input:
        runs=[f"{run}/summary.json" for run in MAIN_RUNS],
        evaluations=eval_files(MAIN_RUNS),
        script="paper_figures/fig_learning_curves.py",
    output:
        png=report("paper_figures/learning_curves.png", category="Figures"),
        pdf="paper_figures/learning_curves.pdf",
    log:
        f"{LOGS}/figures/learning_curves.log",
    conda:
        "../../environment.yml"
    shell:
        "python {input.script:q} --runs {input.runs:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


localrules:
    learning_curves,
