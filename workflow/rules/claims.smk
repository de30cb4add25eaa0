# Every number the paper claims, checked against what was measured (verdict per claim). `claims` reads every table
# (target `all`); `claims_main` reads Tables 1 and 2 only (target `main_tables`), its other claims are `missing`.
CLAIM_SETS = {
    "claims": ("results/claims_check", ["table1", "table2", "ablation", "tau_sweep", "dt_stats"]),
    "claims_main": ("results/claims_check_main", ["table1", "table2"]),
}
CLAIMS_CHECKS = [f"{out}.{ext}" for out, _ in CLAIM_SETS.values() for ext in ("csv", "md")]

for _name, (_out, _tables) in CLAIM_SETS.items():

    rule:
        name:
            _name
        input:
            tables=[f"results/{table}.csv" for table in _tables],
            claims="qhyer/report/claims.yaml",
        output:
            csv=report(f"{_out}.csv", category="Claims"),
            md=f"{_out}.md",
        log:
            f"{LOGS}/claims/{_name}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m qhyer.report claims --tables {input.tables} --claims {input.claims} --out {output.csv} "
            "> {log} 2>&1"


localrules:
    table1,
    table2,
    ablation,
    tau_sweep,
    dt_stats,
    aggregate,
    figure,
    claims,
    claims_main,
