# Every number the paper claims, checked against what was measured (verdict per claim).
CLAIM_TABLES = [f"results/{name}.csv" for name in ("table1", "table2", "ablation", "tau_sweep", "dt_stats")]


rule claims:
    input:
        tables=CLAIM_TABLES,
        claims="qhyer/report/claims.yaml",
    output:
        csv=report("results/claims_check.csv", category="Claims"),
        md="results/claims_check.md",
    log:
        f"{LOGS}/claims/claims.log",
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
