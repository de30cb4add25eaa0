# Tables: tidy CSV plus Markdown and LaTeX renderings (best entry bold); every row carries profile and budget.
TABLE_INPUTS = {
    "table1": eval_files(MAIN_TABLE1),
    "table2": eval_files(MAIN_TABLE2 + SOURCE),
    "ablation": eval_files(ABLATION),
    "tau_sweep": eval_files(TAU),
    "dt_stats": [f"{run}/summary.json" for run in MAIN_TABLE1 + ABLATION if "/qhyer/" in run],
    "aggregate": eval_files(MAIN_TABLE1),
}
TABLE_EXTRA_ARGS = {"table2": " ".join(f"--absent {d}" for d in ABSENT_TABLE2)}
TABLES = [f"results/{name}.{ext}" for name in TABLE_INPUTS for ext in ("csv", "md", "tex")]

for _table, _inputs in TABLE_INPUTS.items():

    rule:
        name:
            _table
        input:
            runs=_inputs,
        output:
            csv=report(f"results/{_table}.csv", category="Tables"),
            md=f"results/{_table}.md",
            tex=f"results/{_table}.tex",
        params:
            target=_table,
            extra=TABLE_EXTRA_ARGS.get(_table, ""),
        log:
            f"{LOGS}/aggregate/{_table}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m qhyer.report {params.target} --runs {input.runs:q} {params.extra} --out {output.csv:q} > {log:q} 2>&1"
