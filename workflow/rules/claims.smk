# Every number the paper claims, checked against the runs that measure it (verdict per claim, decided over per-seed
# scores). `claims` reads every run (target `all`); `claims_main` the Tables 1 and 2 runs only (target
# `main_tables`), so its other claims are `missing`. Runs of mixed provenance (commits, dataset hashes, package
# versions) fail these rules with one line naming them; `--config allow_mixed_provenance=True` (never the default)
# checks them anyway and the .md says so.
CLAIM_SETS = {
    "claims": ("results/claims_check", MAIN_TABLE1 + MAIN_TABLE2 + SOURCE + ABLATION + TAU),
    "claims_main": ("results/claims_check_main", MAIN_TABLE1 + MAIN_TABLE2 + SOURCE),
}
CLAIMS_CHECKS = [f"{out}.{ext}" for out, _ in CLAIM_SETS.values() for ext in ("csv", "md")]

for _name, (_out, _runs) in CLAIM_SETS.items():

    rule:
        name:
            _name
        input:
            runs=eval_files(_runs),
            claims="qhyer/report/claims.yaml",
        params:
            allow_mixed=" --allow-mixed-provenance" if config.get("allow_mixed_provenance") else "",
        output:
            csv=report(f"{_out}.csv", category="Claims"),
            md=f"{_out}.md",
        log:
            f"{LOGS}/claims/{_name}.log",
        conda:
            "../../environment.yml"
        shell:
            "python -m qhyer.report claims --runs {input.runs:q} --claims {input.claims:q} --out {output.csv:q}"
            "{params.allow_mixed} > {log:q} 2>&1"


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
