"""Reporting: tables (tidy CSV + Markdown + LaTeX), statistics, figures and the paper-claims check.

    python -m qhyer.report table1 --runs RUN_OR_EVAL_CSV ... --out results/table1.csv

See `python -m qhyer.report --help` and the modules: `stats` (bootstrap CIs, rliable-style aggregates),
`tables` (one builder per table), `claims` (claims.yaml vs the measured tables), `figures`.
"""
