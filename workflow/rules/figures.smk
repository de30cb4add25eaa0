# Figures (seaborn, PNG and PDF) drawn by thin scripts in paper_figures/ from the result tables.
FIGURE_INPUTS = {
    "table1": "results/table1.csv",
    "ablation": "results/ablation.csv",
    "tau": "results/tau_sweep.csv",
    "dt": "results/dt_stats.csv",
    "gate": "results/dt_stats.csv",
    "aggregate": "results/aggregate.csv",
    "profiles": "results/aggregate.csv",
}
FIGURES = [f"paper_figures/{name}.{ext}" for name in FIGURE_INPUTS for ext in ("png", "pdf")]


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
