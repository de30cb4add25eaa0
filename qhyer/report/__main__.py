"""Report CLI: one target per call, written atomically (tidy .csv plus .md and .tex beside it).

    python -m qhyer.report table1    --runs RUN... --out results/table1.csv
    python -m qhyer.report table2    --runs RUN... [--absent DATASET ...] --out results/table2.csv
    python -m qhyer.report ablation  --runs RUN... --out results/ablation.csv
    python -m qhyer.report tau_sweep --runs RUN... --out results/tau_sweep.csv
    python -m qhyer.report aggregate --runs RUN... --out results/aggregate.csv
    python -m qhyer.report dt_stats  --runs RUN... --out results/dt_stats.csv
    python -m qhyer.report claims    --runs RUN... --out results/claims_check.csv [--claims qhyer/report/claims.yaml]
                                     [--allow-mixed-provenance]
    python -m qhyer.report claims    --runs RUN... --explain CLAIM_ID
    python -m qhyer.report timing    --benchmarks logs/quick/benchmark --out results/timing_quick.csv
    python -m qhyer.report cost      --budget paper [--target verify [--claims ID_OR_GLOB...]] [--out FILE.csv]
    python -m qhyer.report plan      --budget paper [--claims ID_OR_GLOB...] [--baselines rerun|published]
    python -m qhyer.report verify-stage --stage K [--previous next_plan.json] --runs RUN... --select ID_OR_GLOB...
                                     --out STAGE/claims_check.csv --next STAGE/next_plan.json  (verify.smk)
    python -m qhyer.report citations --out results/verify_citations.csv

RUN is a run folder or a file inside it (`eval_episodes.csv`, `summary.json`); what the run is comes from its
summary.json record. Episode tables read eval_episodes.csv, dt_stats metrics.csv; the claims check reads both and
decides each claim over per-seed scores. `--reps` and `--seed` set the tables' bootstrap. Every output states
the runs' commits, dataset sha256 and package versions, and warns (stderr and .md) when they are mixed or differ
from the current checkout; the claims check refuses mixed runs unless given --allow-mixed-provenance.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qhyer.errors import ConfigError, cli_main
from qhyer.report import claims, cost, plan, published, stats, tables, timing, verdicts, verify
from qhyer.runs import workflow_config

EPISODE_TABLES = {"table1": tables.table1, "table2": tables.table2, "ablation": tables.ablation,
                  "tau_sweep": tables.tau_sweep, "aggregate": tables.aggregate}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qhyer.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="target", required=True)
    for name in (*EPISODE_TABLES, "dt_stats"):
        target = sub.add_parser(name, help=f"write results/{name}.csv, .md and .tex")
        target.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders or files inside them")
        target.add_argument("--out", type=Path, required=True, help="the .csv to write (.md and .tex beside it)")
        target.add_argument("--reps", type=int, default=stats.REPS, help="bootstrap replicates")
        target.add_argument("--seed", type=int, default=stats.SEED, help="bootstrap seed")
        if name == "table2":
            target.add_argument("--absent", nargs="+", action="extend", default=[], metavar="DATASET",
                                help="datasets whose files are absent: each becomes a row saying so")
    check = sub.add_parser("claims", help="check claims.yaml against the runs: claims_check.csv and .md")
    check.add_argument("--runs", nargs="+", type=Path, required=True, help="run folders or files inside them")
    check.add_argument("--claims", type=Path, default=claims.CLAIMS_FILE, help="claims file")
    check.add_argument(claims.ALLOW_MIXED, action="store_true",
                       help="check runs of mixed provenance (several commits, dataset hashes or package versions) "
                            "instead of refusing them; the .md says so")
    what = check.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, help="the .csv to write (.md beside it)")
    what.add_argument("--explain", metavar="CLAIM_ID", help="print one claim's protocol, rows, test and interval")
    jobs = sub.add_parser("timing", help="job time per method and stage from Snakemake's benchmark files")
    jobs.add_argument("--benchmarks", type=Path, required=True, help="logs/<profile>/benchmark")
    jobs.add_argument("--out", type=Path, required=True, help="the .csv to write (.md beside it)")
    estimate = sub.add_parser("cost", help="GPU- and CPU-hours per stage and method of a budget, before it runs")
    estimate.add_argument("--budget", required=True, help="a budget of workflow/config/budgets/ (e.g. paper)")
    estimate.add_argument("--cpu-table", type=Path, default=cost.RESULTS / "cpu_step_times.csv")
    estimate.add_argument("--eval-table", type=Path, default=cost.RESULTS / "eval_step_times.csv")
    estimate.add_argument("--gpu-table", type=Path, help="default: the newest benchmarks/results/gpu_*.csv")
    estimate.add_argument("--manifests", type=Path, nargs="+", help="folders with generation manifests "
                                                                     "(default: the budget's data folder)")
    estimate.add_argument("--assumed-gpu-speedup", type=float, default=cost.ASSUMED_GPU_SPEEDUP,
                          help="CPU/GPU time ratio assumed while no GPU table exists (an assumption, printed as one)")
    estimate.add_argument("--target", dest="cost_target", choices=("all", "verify"), default="all",
                          help="verify: the staged plan of the selected claims next to the fixed plan")
    estimate.add_argument("--claims", nargs="+", metavar="ID_OR_GLOB", help="claims of --target verify "
                                                                            "(default: the workflow config's)")
    estimate.add_argument("--out", type=Path, help="also write the estimate as CSV")
    runs_of = sub.add_parser("plan", help="the runs stage 1 of `verify` starts for the selected claims")
    runs_of.add_argument("--budget", required=True, help="a budget of workflow/config/budgets/")
    runs_of.add_argument("--claims", nargs="+", metavar="ID_OR_GLOB", help="default: the workflow config's")
    runs_of.add_argument("--baselines", choices=("rerun", "published"), help="default: the workflow config's")
    stage = sub.add_parser("verify-stage", help="decide the claims at one stage of `verify`; plan the next")
    stage.add_argument("--stage", type=int, required=True)
    stage.add_argument("--previous", type=Path, help="the previous stage's next_plan.json (stages after the first)")
    stage.add_argument("--runs", nargs="*", type=Path, default=[], help="every run of this stage's plan")
    stage.add_argument("--claims-file", type=Path, default=claims.CLAIMS_FILE)
    stage.add_argument("--select", nargs="+", default=["*"], metavar="ID_OR_GLOB")
    defaults = verdicts.SequentialDesign()
    stage.add_argument("--first-seeds", type=int, default=defaults.first_seeds)
    stage.add_argument("--step-seeds", type=int, default=defaults.step_seeds)
    stage.add_argument("--max-seeds", type=int, default=defaults.max_seeds)
    stage.add_argument("--baselines", choices=("rerun", "published"), default="rerun")
    stage.add_argument("--published", type=Path, default=published.PUBLISHED_FILE)
    stage.add_argument(claims.ALLOW_MIXED, action="store_true")
    stage.add_argument("--out", type=Path, required=True, help="this stage's claims check (.csv; .md beside it)")
    stage.add_argument("--next", type=Path, required=True, help="the next stage's plan (.json)")
    cite = sub.add_parser("citations", help="the baseline numbers the card quotes against their vendored sources")
    cite.add_argument("--claims-file", type=Path, default=claims.CLAIMS_FILE)
    cite.add_argument("--published", type=Path, default=published.PUBLISHED_FILE)
    cite.add_argument("--out", type=Path, required=True, help="the .csv to write (.md beside it)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.target == "claims":
        doc = claims.load_claims(args.claims)
        measured = claims.measure(args.runs)
        if args.explain:
            print(claims.explain(args.explain, doc, measured, args.allow_mixed_provenance), end="")
            return 0
        check = claims.check_claims(doc, measured, args.allow_mixed_provenance)
        written = claims.write_check(check, doc, args.out, measured, args.allow_mixed_provenance)
    elif args.target == "cost":
        text, written = cost.write_estimate(args.budget, args.out, cpu_table=args.cpu_table,
                                            eval_table=args.eval_table, gpu_table=args.gpu_table,
                                            manifest_dirs=args.manifests,
                                            assumed_gpu_speedup=args.assumed_gpu_speedup, target=args.cost_target,
                                            claims=args.claims)
        print(text, end="")
        if not written:
            return 0
    elif args.target == "plan":
        config = workflow_config(cost.CONFIG_DIR, args.budget)
        baselines = args.baselines or config["verify"]["baselines"]
        plans = plan.plan_claims(claims.load_claims(cost.ROOT / config["verify"]["claims_file"]), config,
                                 plan.claims_of(args.claims or config["claims"]),
                                 plan.load_summaries(baselines, cost.ROOT / config["verify"]["published_file"]))
        design = config["verify"]
        print(plan.render_plan(plans, plan.first_stage_seeds(plans, design["first_seeds"]), args.budget, design,
                               baselines), end="")
        return 0
    elif args.target == "verify-stage":
        design = verdicts.SequentialDesign(args.first_seeds, args.step_seeds, args.max_seeds)
        check, next_plan, doc = verify.decide_stage(args.stage, args.previous, args.runs, args.claims_file,
                                                    args.select, design, args.baselines, args.published,
                                                    args.allow_mixed_provenance)
        written = verify.write_stage(check, next_plan, doc, args.stage, args.out, args.next, args.baselines)
    elif args.target == "citations":
        found = published.load(args.published)
        written = published.write_citations(published.citation_check(claims.load_claims(args.claims_file), found),
                                            args.out, found)
    elif args.target == "timing":
        written = timing.write(args.benchmarks, args.out)
    else:
        if args.reps < 1:
            raise ConfigError(f"--reps must be at least 1 (got {args.reps})")
        if args.target == "dt_stats":
            table = tables.dt_stats(tables.load_dt_runs(args.runs))
        else:
            extra = {"absent": args.absent} if args.target == "table2" else {}
            table = EPISODE_TABLES[args.target](tables.load_episodes(args.runs), reps=args.reps, seed=args.seed,
                                                **extra)
        written = table.write(args.out)
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    cli_main(main)
