"""Where a DAG's time went: Snakemake's per-job `benchmark:` files (`logs/<profile>/benchmark/`), one row per job,
and a Markdown summary of wall time per stage and method — what a budget (`quick` ≤ 60 min) or a cluster's
`runtime` resources are planned from.

    python -m qhyer.report timing --benchmarks logs/quick/benchmark --out results/timing_quick.csv

Layout written by workflow/rules/{data,train,evaluate}.smk:
    data/<dataset>.tsv
    {train,evaluate}/<study>/<variant>/<method>/<dataset>/seed<seed>.tsv
Each TSV holds Snakemake's columns; `s` (wall seconds) and `max_rss` (MB) are read. Run jobs overlap (`--cores`),
so the stage totals are CPU-seconds of jobs, not the DAG's wall time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qhyer.errors import DataError
from qhyer.io import write_text_atomic
from qhyer.report.tables import to_markdown, write_csv

RUN_KEYS = ("study", "variant", "method", "dataset", "seed")


def _job(root: Path, path: Path) -> dict:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[0] == "data" and len(parts) == 2:
        keys = {"dataset": parts[1]}
    elif parts[0] in ("train", "evaluate") and len(parts) == 6 and parts[5].startswith("seed"):
        keys = dict(zip(RUN_KEYS, (*parts[1:5], parts[5].removeprefix("seed")), strict=True))
    else:
        raise DataError(f"{path} is not a benchmark file of this workflow", "expected data/<dataset>.tsv or "
                        "{train,evaluate}/<study>/<variant>/<method>/<dataset>/seed<n>.tsv")
    frame = pd.read_csv(path, sep="\t")
    if not {"s", "max_rss"} <= set(frame.columns) or frame.empty:
        raise DataError(f"{path} has no Snakemake benchmark row (columns s, max_rss)")
    last = frame.iloc[-1]  # `benchmark: repeat(...)` writes one row per repeat; the last run is the kept one
    return {"stage": parts[0], **keys, "wall_s": float(last["s"]), "max_rss_mb": pd.to_numeric(last["max_rss"],
                                                                                                errors="coerce")}


def load_benchmarks(root: Path) -> pd.DataFrame:
    """One row per job: stage, study, variant, method, dataset, seed, wall_s, max_rss_mb."""
    paths = sorted(root.rglob("*.tsv")) if root.is_dir() else []
    if not paths:
        raise DataError(f"no benchmark files under {root}", "its jobs write them: run the DAG first")
    return pd.DataFrame([_job(root, p) for p in paths]).reindex(
        columns=["stage", *RUN_KEYS, "wall_s", "max_rss_mb"])


def summary(jobs: pd.DataFrame) -> pd.DataFrame:
    """Minutes of job time per method (rows; datasets' generation as 'data') and stage (columns), with totals."""
    who = jobs["method"].where(jobs["stage"] != "data", "(data)")
    minutes = jobs.assign(who=who).pivot_table(index="who", columns="stage", values="wall_s", aggfunc="sum",
                                               fill_value=0.0) / 60.0
    minutes["jobs"] = jobs.assign(who=who).groupby("who").size()
    minutes["total"] = minutes.drop(columns="jobs").sum(axis=1)
    minutes = minutes.sort_values("total", ascending=False)
    minutes.loc["all"] = minutes.sum()
    return minutes.reset_index(names="method")


def markdown(jobs: pd.DataFrame, source: Path) -> str:
    table = summary(jobs)
    display = table.assign(**{c: table[c].map("{:.1f}".format) for c in table.columns if c not in ("method", "jobs")},
                           jobs=table["jobs"].astype(int))
    return (f"# Job time by method and stage\n\nFrom {len(jobs)} Snakemake benchmark files under `{source}`. "
            f"Minutes of wall time summed over jobs (jobs run in parallel, so this is not the DAG's wall time); "
            f"peak memory of one job: {jobs['max_rss_mb'].max():.0f} MB.\n\n"
            f"{to_markdown(display, display.map(lambda _: False))}\n")


def write(root: Path, out: Path) -> list[Path]:
    jobs = load_benchmarks(root)
    out = write_csv(jobs, out)
    write_text_atomic(out.with_suffix(".md"), markdown(jobs, root))
    return [out, out.with_suffix(".md")]
