"""Report tables: a tidy CSV plus Markdown and LaTeX renderings with the best entry per row in bold.

Inputs are run folders (`runs/<budget>/<study>/<variant>/<method>/<dataset>/seed<N>`) or files inside them. What a
run is (identity, protocol, resolved method fields such as τ or the backbone) is read from its `summary.json`
record (qhyer/runs.py), never from its path. Episode tables read `eval_episodes.csv`; `dt_stats` reads
`metrics.csv`. Every tidy row carries `budget` (its name), `protocol` (what was trained and evaluated) and the
provenance of its runs (`commit` with its `-dirty` flag, `dataset_sha256`, `versions` of the packages that change
numbers); the .md/.tex headers state the same per run and carry one WARNING line (also printed to stderr) when the
runs are of mixed provenance or differ from the current checkout. Numbers are computed as described in
`qhyer.report.stats`.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from qhyer.algorithm import ABAR_DEFINITIONS, CONDITIONINGS
from qhyer.data.registry import DATASETS, get_spec
from qhyer.errors import ConfigError, DataError
from qhyer.io import atomic_path, read_csv_checked, write_text_atomic
from qhyer.methods import METHODS as METHOD_REGISTRY
from qhyer.models.hybrid import BACKBONES
from qhyer.report import stats
from qhyer.runs import (
    IDENTITY_FIELDS,
    MAIN_VARIANT,
    PROVENANCE_COLUMNS,
    checkout_provenance,
    load_records,
    provenance_warning,
    read_metrics,
    read_summary,
    record_row,
    run_evaluation,
    run_folders,
)

METHODS = tuple(METHOD_REGISTRY)
SOURCE_SUFFIX = " (source)"  # Table 2 columns of runs under their authors' own protocol (study `source`)
# Mamba statistics QHyer logs (qhyer/algorithm.py): Δ_t, then Ā_t and its memory under each definition, then the gate.
DT_METRICS = ("delta_mean", *(f"abar_{d}" for d in ABAR_DEFINITIONS), *(f"memory_steps_{d}" for d in ABAR_DEFINITIONS),
              *(f"memory_tokens_{d}" for d in ABAR_DEFINITIONS), "gate_attention_share")
PROFILE_THRESHOLDS = np.linspace(0.0, 1.0, 21)
# family -> (episode column, scale, reported metric)
SCORES = {"ogbench": ("success", 100.0, "success_x100"), "antmaze": ("success", 100.0, "success_x100"),
          "maze2d": ("normalized_score", 1.0, "normalized_score")}
# sort keys, most significant first: rows follow these orders, values not listed go last in input order
ORDERS: dict[str, Sequence] = {"variant": (MAIN_VARIANT,), "level": ("run", "dataset", "kind"),
                               "kind": ("play", "noisy"), "dataset": tuple(DATASETS), "method": METHODS,
                               "backbone": BACKBONES, "conditioning": CONDITIONINGS, "layer": ("all",),
                               "metric": (*stats.AGGREGATES, *DT_METRICS)}
ABSENT_PROTOCOL = "n/a (dataset absent)"
BEST_ROW_NOTE = "Cells: estimate [95% CI]; best entry per row in bold."
INTERVAL_NOTE = ("Intervals: over two or more seeds the t-interval over seed scores, the one the claims' verdicts use; "
                 "a cell of one seed shows a bootstrap over its episodes, marked `(1 seed: episodes)`: evaluation "
                 "noise only, not seed-to-seed variance (qhyer/report/stats.py).")
ONE_SEED_MARK = " (1 seed: episodes)"


@dataclass
class Section:
    title: str
    display: pd.DataFrame      # strings, one row per table row
    bold: pd.DataFrame         # same shape, True where the cell is the row's best


COMMITS_LABEL = "Commits (`-dirty`: uncommitted changes to tracked files; `-archive`: an unpacked `git archive`)"
SHA_SHOWN = 16  # hex digits of a dataset's sha256 in .md/.tex headers (the tidy CSV has all 64)


def provenance_lines(runs: pd.DataFrame) -> list[str]:
    """Header lines stating the provenance of `runs` (one row per run): commits with their dirty flag, each
    dataset's sha256, the versions of the packages that change numbers — each value with its number of runs."""
    if runs.empty:
        return ["Provenance: no runs"]

    def counted(values: Iterable) -> str:
        return ", ".join(f"{v} ({n} run{'s' if n > 1 else ''})" for v, n in Counter(values).most_common())

    hashes = ", ".join(f"{d} {' | '.join(sorted({h[:SHA_SHOWN] for h in g['dataset_sha256']}))}"
                       for d, g in runs.groupby("dataset", sort=False))
    return [f"{COMMITS_LABEL}: {counted(runs['commit'])}",
            f"Dataset sha256 (first {SHA_SHOWN} hex digits): {hashes}",
            f"Package versions: {counted(runs['versions'])}"]


def run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (identity and provenance) of rows that carry their run's record, in the harness's order."""
    if frame.empty:
        return pd.DataFrame(columns=[*IDENTITY_FIELDS, *PROVENANCE_COLUMNS])
    runs = frame.drop_duplicates(["study", "variant", "method", "dataset", "seed"])
    return _sort(runs[[c for c in (*IDENTITY_FIELDS, *PROVENANCE_COLUMNS) if c in runs]])


@dataclass
class Table:
    title: str
    tidy: pd.DataFrame
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run held (`run_table`)

    @cached_property
    def warning(self) -> str | None:
        """One line when the runs are of mixed provenance or differ from the current checkout."""
        return provenance_warning(self.runs, checkout_provenance())

    def _header(self) -> list[str]:
        measured = self.tidy[self.tidy["status"] != "absent"] if "status" in self.tidy else self.tidy
        return [*([self.warning] if self.warning else []), f"Budget: {distinct(measured['budget'])}",
                f"Protocol: {distinct(measured['protocol'])}", *provenance_lines(self.runs), *self.notes]

    def markdown(self) -> str:
        parts = [f"# {self.title}", "\n\n".join(self._header())]
        for s in self.sections:
            parts += [f"## {s.title}", to_markdown(s.display, s.bold)]
        return "\n\n".join(parts) + "\n"

    def latex(self) -> str:
        parts = [f"% {self.title}", *(f"% {line}" for line in self._header())]
        for s in self.sections:
            parts += [f"% {s.title}", to_latex(s.display, s.bold)]
        return "\n".join(parts) + "\n"

    def write(self, out: str | Path) -> list[Path]:
        """Write `out` (.csv) and its .md and .tex siblings atomically (the provenance warning, if any, also to
        stderr); returns the three paths."""
        if self.warning:
            print(self.warning, file=sys.stderr)
        out = write_csv(self.tidy, out)
        write_text_atomic(out.with_suffix(".md"), self.markdown())
        write_text_atomic(out.with_suffix(".tex"), self.latex())
        return [out, out.with_suffix(".md"), out.with_suffix(".tex")]


def write_csv(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write `frame` atomically to `out`, which must name a .csv file (its .md/.tex siblings follow)."""
    out = Path(out)
    if out.suffix != ".csv":
        raise ConfigError(f"--out must name a .csv file (got '{out}')", "e.g. --out results/table1.csv")
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False)
    return out


# --- reading runs --------------------------------------------------------------------------------------------

def read_csv(path: Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV the DAG wrote, with the `required` columns, or a one-line DataError."""
    return read_csv_checked(path, required, DataError(f"{path} does not exist",
                                                      "run the DAG step that writes it, or fix the path"),
                            "delete it and re-run the step that writes it")


def run_episodes(run: Path, record: dict, fields: Iterable[str] | None = None) -> pd.DataFrame:
    """A run's `eval_episodes.csv`, checked complete and bound to the run's checkpoints by the one strict reader
    (qhyer.runs.run_evaluation), with its evaluated record (identity, protocol, method fields; only `fields` when
    given) on every row."""
    record, frame = run_evaluation({**record, "run_dir": str(run)})
    tags = record if fields is None else {f: record[f] for f in fields}
    return frame.drop(columns=[c for c in tags if c in frame]).assign(**tags)


def load_episodes(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every episode of the given run folders (or files inside them), each row carrying its run's record."""
    records = load_records(paths)
    frames = [run_episodes(Path(r["run_dir"]), r) for r in records.to_dict("records")]
    return pd.concat(frames, ignore_index=True)


def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


# --- helpers shared by the builders -------------------------------------------------------------------------

def distinct(values: Iterable) -> str:
    return " | ".join(sorted({str(v) for v in values if not pd.isna(v)})) or "unknown"


def _labels(group: pd.DataFrame) -> dict[str, str]:
    """What a tidy row states about the runs it summarises: budget, protocol and provenance."""
    return {column: distinct(group[column]) for column in ("budget", "protocol", *PROVENANCE_COLUMNS)}


def _order(frame: pd.DataFrame) -> pd.Index:
    """Index of `frame` in the harness's order (registry datasets, then methods, backbones, ...); unknown last."""
    keys = [c for c in ORDERS if c in frame]

    def rank(column: pd.Series) -> pd.Series:
        order = {v: i for i, v in enumerate(ORDERS[column.name])}
        return column.map(lambda v: order.get(v, len(order)))

    return frame.sort_values(keys, key=rank, kind="stable").index if keys else frame.index


def _sort(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.loc[_order(frame)].reset_index(drop=True)


def _select(episodes: pd.DataFrame, studies: str | set[str], families: set[str],
            allow_empty: bool = False) -> pd.DataFrame:
    studies = {studies} if isinstance(studies, str) else studies
    found = set(episodes["study"]) if len(episodes) else set()
    if found - studies:
        raise ConfigError(f"inputs include runs of study {', '.join(sorted(found - studies))}; "
                          f"this table takes study {', '.join(sorted(studies))} only",
                          "pass only that study's eval_episodes.csv files")
    if episodes.empty and not allow_empty:
        raise DataError(f"no runs of study {', '.join(sorted(studies))} among the inputs",
                        "pass that study's eval_episodes.csv files")
    wrong = sorted(d for d in episodes["dataset"].unique() if get_spec(d).family not in families)
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} do not belong in this table (it takes {', '.join(sorted(families))})",
                          "check the rule's input list")
    return episodes


def _summaries(episodes: pd.DataFrame, keys: list[str], reps: int, seed: int) -> pd.DataFrame:
    """One row per `keys` group: estimate and interval of the family's score (see SCORES)."""
    rows = []
    for key, group in episodes.groupby(keys, sort=False):
        column, scale, metric = SCORES[get_spec(group["dataset"].iloc[0]).family]
        if column not in group or group[column].isna().any():
            raise DataError(f"{dict(zip(keys, key, strict=True))}: episodes lack '{column}' values",
                            "re-run their evaluate step")
        summary = stats.summarize_episodes(group, column, reps, seed)
        for name in ("mean", "ci_low", "ci_high"):
            summary[name] *= scale
        rows.append({**dict(zip(keys, key, strict=True)), "metric": metric, **summary, **_labels(group)})
    return _sort(pd.DataFrame(rows))


def _cell(row: pd.Series, value: str, decimals: int) -> str:
    if pd.isna(row[value]):
        return str(row.get("note") or "n/a")
    if pd.isna(row["ci_low"]):
        return f"{row[value]:.{decimals}f}"
    mark = ONE_SEED_MARK if row.get("ci_method") == stats.EPISODE_BOOTSTRAP else ""
    return f"{row[value]:.{decimals}f} [{row['ci_low']:.{decimals}f}, {row['ci_high']:.{decimals}f}]{mark}"


def pivot(tidy: pd.DataFrame, rows: list[str], col: str, order: Sequence = (), *, value: str = "mean",
          decimals: int = 1, best: Callable[[tuple], str | None] = lambda key: "max",
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Display frame (rows x `col` values, then seeds/budget/protocol) and its bold mask.

    `best(row_key)` is 'max', 'min' or None; every cell equal to the row's best displayed value is bold.
    """
    present = list(dict.fromkeys(tidy[col]))
    columns = [c for c in order if c in present] + [c for c in present if c not in order]
    records, bold = [], []
    for key, group in tidy.groupby(rows, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        by_col = group.set_index(col)
        shown = by_col[value].round(decimals)
        rank = best(key)
        top = {"max": shown.max(), "min": shown.min()}.get(rank, np.nan)
        records.append({**dict(zip(rows, key, strict=True)),
                        **{str(c): _cell(by_col.loc[c], value, decimals) if c in by_col.index else "" for c in columns},
                        "seeds": distinct(group["n_seeds"]), "budget": distinct(group["budget"]),
                        "protocol": distinct(group["protocol"])})
        bold.append({str(c): bool(c in shown.index and shown[c] == top) for c in columns})
    display = pd.DataFrame(records)
    return display, pd.DataFrame(bold, index=display.index).reindex(columns=display.columns, fill_value=False)


def to_markdown(display: pd.DataFrame, bold: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; `|` inside cells is escaped."""
    lines = ["| " + " | ".join(map(str, display.columns)) + " |", "|" + "---|" * len(display.columns)]
    for i, row in display.iterrows():
        cells = [f"**{v}**" if bold.loc[i, c] and v else str(v) for c, v in row.items()]
        cells = [cell.replace("|", r"\|") for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "|": r"\textbar{}"}


def _tex(value: object) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(value))


def to_latex(display: pd.DataFrame, bold: pd.DataFrame) -> str:
    lines = [rf"\begin{{tabular}}{{{'l' * len(display.columns)}}}", r"\toprule",
             " & ".join(_tex(c) for c in display.columns) + r" \\", r"\midrule"]
    for i, row in display.iterrows():
        cells = [rf"\textbf{{{_tex(v)}}}" if bold.loc[i, c] and v else _tex(v) for c, v in row.items()]
        lines.append(" & ".join(cells) + r" \\")
    return "\n".join([*lines, r"\bottomrule", r"\end{tabular}"])


# --- the tables ---------------------------------------------------------------------------------------------

def table1(episodes: pd.DataFrame, reps: int = stats.REPS, seed: int = stats.SEED) -> Table:
    """OGBench manipulation: mean success x100 per dataset x method."""
    tidy = _summaries(_select(episodes, "main", {"ogbench"}), ["dataset", "method"], reps, seed)
    display, bold = pivot(tidy, ["dataset"], "method", METHODS)
    return Table("Table 1: OGBench manipulation, success rate (%)", tidy, [Section("Success rate (%)", display, bold)],
                 [BEST_ROW_NOTE, INTERVAL_NOTE],
                 run_table(episodes))


def table2(episodes: pd.DataFrame, absent: Sequence[str] = (), reps: int = stats.REPS,
           seed: int = stats.SEED) -> Table:
    """D4RL: Maze2d normalised score, AntMaze success x100; a dataset whose files are absent is a row saying so.

    Runs of the `source` study (DT, QT, LSDT under their authors' own D4RL protocols) are columns of their own,
    `<method> (source)`, beside the harness's uniform goal-relabelled protocol."""
    episodes = _select(episodes, {"main", "source"}, {"maze2d", "antmaze"}, allow_empty=bool(absent))
    source = episodes["study"] == "source"
    episodes = episodes.assign(method=episodes["method"].where(~source, episodes["method"] + SOURCE_SUFFIX))
    measured = _summaries(episodes, ["dataset", "method"], reps, seed).assign(status="measured", note="") \
        if len(episodes) else pd.DataFrame(columns=["dataset", "budget"])
    specs = [get_spec(name) for name in dict.fromkeys(absent)]
    clash = sorted({s.name for s in specs} & set(measured["dataset"]))
    if clash:
        raise ConfigError(f"{', '.join(clash)} passed with --absent but results for it were given too",
                          "drop it from --absent or from --runs")
    budget = distinct(measured["budget"])
    missing = pd.DataFrame([{"dataset": s.name, "method": "", "metric": SCORES[s.family][2], "status": "absent",
                             "note": f"absent: {s.train_file} not found"
                                     + ("" if s.regenerable else " (cannot be regenerated; supply the D4RL file)"),
                             "n_seeds": 0, "episodes": 0, "budget": budget, "protocol": ABSENT_PROTOCOL}
                            for s in specs])
    display, bold = pivot(measured, ["dataset"], "method", METHODS) if len(measured) else (None, None)
    if specs:
        display = pd.concat([display, missing[["dataset", "note", "budget", "protocol"]].assign(seeds="0")],
                            ignore_index=True).fillna("")
        bold = pd.DataFrame(False, index=display.index, columns=display.columns) if bold is None else \
            bold.reindex(index=display.index, columns=display.columns, fill_value=False)
    order = _order(display)
    section = Section("Score", display.loc[order].reset_index(drop=True), bold.loc[order].reset_index(drop=True))
    tidy = _sort(pd.concat([measured, missing], ignore_index=True))
    notes = [BEST_ROW_NOTE, INTERVAL_NOTE,
             "Columns `<method> (source)`: DT, QT and LSDT under their authors' own D4RL protocols (D4RL rewards "
             "and RTG targets, best evaluation over training); the others: the harness's uniform goal-relabelled "
             "protocol.",
             "Column `iql`: IQL (baselines/iql.py) under its authors' reward-based protocol (D4RL rewards r − 1, 1M "
             "updates, final evaluation), on AntMaze only; it is not goal-conditioned."]
    return Table("Table 2: D4RL (Maze2d normalised score, AntMaze success %)", tidy, [section], notes,
                 run_table(episodes))


# Recorded method fields a study's table shows, as {column: record field}.
# random_goals (the share of random goals the run trained on) separates the 'rtg' variant's goal mix and its control
# (workflow config ablation.rtg_goals) from the future-goal runs of the same backbone.
ABLATION_FIELDS = {"backbone": "method.backbone", "random_goals": "method.p_random",
                   "conditioning": "method.conditioning"}
TAU_FIELDS = {"tau": "method.expectile_tau"}


def _with_fields(episodes: pd.DataFrame, fields: dict[str, str]) -> pd.DataFrame:
    """The episodes with the recorded method fields as plain columns (what each run actually trained with)."""
    return episodes.assign(**{column: episodes[field] for column, field in fields.items()})


def ablation(episodes: pd.DataFrame, reps: int = stats.REPS, seed: int = stats.SEED) -> Table:
    """Backbone x conditioning on the ablation datasets, success x100."""
    episodes = _with_fields(_select(episodes, "ablation", {"ogbench"}), ABLATION_FIELDS)
    tidy = _summaries(episodes, ["dataset", "method", "variant", *ABLATION_FIELDS], reps, seed)
    display, bold = pivot(tidy, ["dataset", "backbone", "random_goals"], "conditioning", CONDITIONINGS)
    return Table("Ablation: backbone x conditioning, success rate (%)", tidy,
                 [Section("Success rate (%)", display, bold)], [BEST_ROW_NOTE, INTERVAL_NOTE], run_table(episodes))


def tau_sweep(episodes: pd.DataFrame, reps: int = stats.REPS, seed: int = stats.SEED) -> Table:
    """Expectile tau sweep, success x100."""
    episodes = _with_fields(_select(episodes, "tau", {"ogbench"}), TAU_FIELDS)
    tidy = _summaries(episodes, ["dataset", "method", "variant", *TAU_FIELDS], reps, seed)
    tidy = _sort(tidy.sort_values("tau", kind="stable"))
    display, bold = pivot(tidy, ["dataset"], "tau")
    return Table("Expectile tau sweep, success rate (%)", tidy, [Section("Success rate (%) by tau", display, bold)],
                 [BEST_ROW_NOTE, INTERVAL_NOTE], run_table(episodes))


def last_dt_metrics(run_dir: Path) -> pd.DataFrame:
    """Δ_t / Ā_t / memory / gate rows at the last step of the val split (train when a run logged no val split)."""
    metrics = read_metrics(run_dir)
    parts = metrics["metric"].astype(str).str.split("/layer", n=1, expand=True).reindex(columns=[0, 1])
    metrics = metrics.assign(metric=parts[0], layer=parts[1].fillna("all"))
    metrics = metrics[metrics["metric"].isin(DT_METRICS)]
    split = "val" if (metrics["split"] == "val").any() else "train"
    metrics = metrics[metrics["split"] == split]
    return metrics[metrics["step"] == metrics["step"].max()]


def load_dt_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Run-level rows (one per metric and layer) of every QHyer run folder given."""
    rows = []
    for run_dir in run_folders(paths):
        ident = record_row(read_summary(run_dir), run_dir)
        if ident["method"] != "qhyer":
            raise ConfigError(f"{run_dir} is a '{ident['method']}' run; dt_stats reads QHyer runs only",
                              "pass only runs/.../qhyer/... folders")
        last = last_dt_metrics(run_dir)
        if last.empty:
            _note(f"{run_dir} logged no Δ_t/Ā_t/gate metrics (a variant without that branch?); not in dt_stats")
        spec = get_spec(ident["dataset"])
        rows += [{"level": "run", "study": ident["study"], "variant": ident["variant"], "method": ident["method"],
                  "family": spec.family, "kind": spec.kind, "dataset": spec.name, "seed": int(ident["seed"]),
                  "layer": m.layer, "metric": m.metric, "mean": float(m.value), "ci_low": np.nan, "ci_high": np.nan,
                  "ci_method": "single run", "n_seeds": 1, "n_runs": 1, "split": m.split, "step": int(m.step),
                  **{c: ident[c] for c in ("budget", "protocol", *PROVENANCE_COLUMNS)}}
                 for m in last.itertuples()]
    if not rows:
        raise DataError("no input run logged Δ_t/Ā_t/gate metrics in metrics.csv",
                        "pass QHyer run folders whose metrics.csv has delta_mean, abar_mean, ... rows")
    return pd.DataFrame(rows)


def _over_seeds(runs: pd.DataFrame, keys: list[str], level: str) -> pd.DataFrame:
    """Per `keys` group: each seed's mean over the group's datasets, then the mean over seeds with the t-interval
    the verdicts use (`stats.seed_means_over_datasets`, `stats.t_interval`; no interval from one seed)."""
    rows = []
    for key, group in runs.groupby(keys, sort=False):
        per_seed, incomplete = stats.seed_means_over_datasets(group, "mean")
        if incomplete:
            _note(f"{dict(zip(keys, key, strict=True))}: seeds {incomplete} lack some dataset; left out")
        several = len(per_seed) > 1
        interval = stats.t_interval(per_seed) if several else stats.Interval(float(per_seed.mean()), np.nan, np.nan)
        rows.append({**dict(zip(keys, key, strict=True)), "level": level, "mean": interval.estimate,
                     "ci_low": interval.low, "ci_high": interval.high,
                     "ci_method": stats.SEED_T_INTERVAL if several else "one seed: no interval",
                     "n_seeds": len(per_seed), "n_runs": len(group), "split": distinct(group["split"]),
                     "step": distinct(group["step"]), **_labels(group)})
    return pd.DataFrame(rows)


def dt_stats(runs: pd.DataFrame) -> Table:
    """Δ_t, Ā_t, effective memory and gate share: per run, per dataset (over seeds), and per family and kind
    (`all ogbench play`: each seed's mean over those datasets, then over seeds; the claims' unit)."""
    group = ["study", "variant", "method", "family", "kind"]
    per_dataset = _over_seeds(runs, [*group, "dataset", "layer", "metric"], "dataset")
    per_kind = _over_seeds(runs, [*group, "layer", "metric"], "kind")
    per_kind["dataset"] = "all " + per_kind["family"] + " " + per_kind["kind"]
    tidy = pd.concat([runs, per_dataset, per_kind], ignore_index=True)[runs.columns].astype({"seed": "Int64"})
    tidy = _sort(tidy)
    shown = tidy[(tidy["level"] != "run") & (tidy["layer"] == "all")]
    display, bold = pivot(shown, ["variant", "dataset"], "metric", DT_METRICS, decimals=2, best=lambda key: None)
    return Table("Mamba step size Δ_t, decay Ā_t, effective memory and gate attention share", tidy,
                 [Section("Last validation step, all layers", display, bold)],
                 ["Cells: mean [95% t-interval over seeds]. Dataset rows: one run per seed. `all <family> <kind>` "
                  "rows: each seed's mean over those datasets first, so the interval is over seeds, not over "
                  "dataset x seed runs; seeds lacking a dataset are left out. Per-run and per-layer values are in "
                  "the CSV."], run_table(runs))


def _score_matrices(episodes: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per method a (seeds, datasets) matrix of success rates (each seed scored by its run's evaluation schedule,
    `stats.seed_scores`) over the datasets every method has."""
    per_seed = pd.concat({key: stats.seed_scores(group, "success")
                          for key, group in episodes.groupby(["method", "dataset"], sort=False)},
                         names=["method", "dataset"]).unstack("dataset")
    complete = [d for d in per_seed.columns if per_seed[d].notna().groupby(level="method").any().all()]
    shared = list(_sort(pd.DataFrame({"dataset": complete}))["dataset"])
    dropped = sorted(set(per_seed.columns) - set(shared))
    if dropped:
        _note(f"aggregate leaves out {', '.join(dropped)}: not every method has results there")
    per_seed = per_seed[shared].dropna()
    order = list(_sort(pd.DataFrame({"method": per_seed.index.unique("method")}))["method"])
    return {m: per_seed.loc[m].to_numpy(float) for m in order}, shared


def aggregate(episodes: pd.DataFrame, reps: int = stats.REPS, seed: int = stats.SEED) -> Table:
    """rliable-style aggregates over the Table 1 datasets: IQM, mean, optimality gap, P(QHyer > baseline), profiles."""
    episodes = _select(episodes, "main", {"ogbench"})
    scores, datasets = _score_matrices(episodes)
    if not datasets:
        raise DataError("no dataset has results for every method", "pass complete Table 1 inputs")
    common = {"n_tasks": len(datasets), "tasks": " ".join(datasets)}

    def row(metric: str, method: str, interval: stats.Interval, baseline: str = "", threshold: float = np.nan):
        both = [m for m in (method, baseline) if m]
        return {"metric": metric, "method": method, "baseline": baseline, "threshold": threshold,
                "estimate": interval.estimate, "ci_low": interval.low, "ci_high": interval.high,
                "n_seeds": min(len(scores[m]) for m in both), **common,
                **_labels(episodes[episodes["method"].isin(both)])}

    rows = [row(metric, m, interval) for m, s in scores.items()
            for metric, interval in stats.aggregate_intervals(s, reps, seed).items()]
    if "qhyer" in scores:
        rows += [row("probability_of_improvement", "qhyer", stats.probability_of_improvement(
            scores["qhyer"], s, reps, seed), baseline=m) for m, s in scores.items() if m != "qhyer"]
    rows += [row("performance_profile", m, interval, threshold=t) for m, s in scores.items()
             for t, interval in zip(PROFILE_THRESHOLDS, stats.performance_profile(s, PROFILE_THRESHOLDS, reps, seed),
                                    strict=True)]
    tidy = pd.DataFrame(rows)
    sections = [Section("Aggregate metrics (success rate in [0, 1]; optimality gap: lower is better)",
                        *pivot(tidy[tidy["metric"].isin(list(stats.AGGREGATES))], ["metric"], "method", METHODS,
                               value="estimate", decimals=2,
                               best=lambda key: "min" if key[0] in stats.LOWER_IS_BETTER else "max"))]
    improvement = tidy[tidy["metric"] == "probability_of_improvement"]
    if len(improvement):
        sections.append(Section("Probability of improvement P(QHyer > baseline)",
                                *pivot(improvement, ["method"], "baseline", METHODS, value="estimate", decimals=2,
                                       best=lambda key: None)))
    return Table("Aggregate performance over the Table 1 datasets (rliable metrics)", tidy, sections,
                 [f"Tasks: {', '.join(datasets)}.",
                  "Cells: estimate [95% stratified-bootstrap CI]; best per row in bold (optimality gap: lowest). "
                  "Performance-profile points are in the CSV (metric `performance_profile`)."],
                 run_table(episodes[episodes["dataset"].isin(datasets)]))
