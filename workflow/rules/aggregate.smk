# Tables: tidy CSV plus Markdown and LaTeX renderings (best entry bold); every row carries profile and budget.
TABLE_NAMES = ["table1", "table2", "ablation", "tau_sweep", "dt_stats", "aggregate"]
TABLES = [f"results/{name}.{ext}" for name in TABLE_NAMES for ext in ("csv", "md", "tex")]


def _table_rule_outputs(name):
    return multiext(f"results/{name}", ".csv", ".md", ".tex")


rule table1:
    input:
        eval_files(MAIN_TABLE1),
    output:
        _table_rule_outputs("table1"),
    log:
        LOGS + "/aggregate/table1.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report table1 --runs {input} --out {output[0]} > {log} 2>&1"


rule table2:
    input:
        eval_files(MAIN_TABLE2),
    output:
        _table_rule_outputs("table2"),
    params:
        absent=" ".join(f"--absent {d}" for d in ABSENT_TABLE2),
    log:
        LOGS + "/aggregate/table2.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report table2 --runs {input} {params.absent} --out {output[0]} > {log} 2>&1"


rule ablation:
    input:
        eval_files(ABLATION),
    output:
        _table_rule_outputs("ablation"),
    log:
        LOGS + "/aggregate/ablation.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report ablation --runs {input} --out {output[0]} > {log} 2>&1"


rule tau_sweep:
    input:
        eval_files(TAU),
    output:
        _table_rule_outputs("tau_sweep"),
    log:
        LOGS + "/aggregate/tau_sweep.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report tau_sweep --runs {input} --out {output[0]} > {log} 2>&1"


rule dt_stats:
    input:
        [f"{run}/summary.json" for run in MAIN_TABLE1 + ABLATION if "/qhyer/" in run],
    output:
        _table_rule_outputs("dt_stats"),
    log:
        LOGS + "/aggregate/dt_stats.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report dt_stats --runs {input} --out {output[0]} > {log} 2>&1"


rule aggregate:
    input:
        eval_files(MAIN_TABLE1),
    output:
        _table_rule_outputs("aggregate"),
    log:
        LOGS + "/aggregate/aggregate.log",
    conda:
        "../../environment.yml"
    shell:
        "python -m qhyer.report aggregate --runs {input} --out {output[0]} > {log} 2>&1"
