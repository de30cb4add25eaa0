"""Paper figures (seaborn on matplotlib's Agg backend): one drawn from each results table, and learning curves
drawn from run folders.

    python paper_figures/fig_table1.py results/table1.csv paper_figures/table1.png paper_figures/table1.pdf
    python paper_figures/fig_claims.py results/claims_check.csv paper_figures/claims.png paper_figures/claims.pdf
    python paper_figures/fig_learning_curves.py --runs runs/quick/main/*/*/*/seed*/summary.json \
        --out paper_figures/learning_curves.png paper_figures/learning_curves.pdf

Every `paper_figures/fig_<name>.py` calls `script(<name>)`: a table figure takes the table, then one or more
outputs whose suffix (.png | .pdf) picks the format; the learning curves take `--runs` (run folders or files in
them) and `--out`. Each file is written atomically. Intervals drawn are the tables' own 95% CIs (nothing is
re-estimated here), except the learning curves' seed bands (min-max over seeds); titles carry the budget the
numbers were measured at.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from qhyer.data.registry import DATASETS, get_spec
from qhyer.errors import ConfigError, DataError, cli_main
from qhyer.io import atomic_path
from qhyer.report import claims, verdicts
from qhyer.report.stats import AGGREGATES
from qhyer.report.tables import (
    BACKBONES,
    CONDITIONINGS,
    MAIN_VARIANT,
    METHODS,
    SCORES,
    distinct,
    read_csv,
    run_episodes,
)
from qhyer.runs import METRICS_FILE, read_metrics, read_records

matplotlib.use("Agg")  # files only, no display

KINDS = ["play", "noisy"]
DT_FAMILY = "ogbench"  # the family of the card's play/noisy Mamba statistics
DT_COLUMNS = ("level", "variant", "family", "kind", "layer", "metric", "mean", "ci_low", "ci_high", "budget")
LABELS = {"delta_mean": r"mean $\Delta_t$", "abar_slowest_state": r"mean $\bar A_t$ (slowest state per channel)",
          "memory_tokens_slowest_state": r"memory $1/(1-\bar A_t)$ (tokens; 3 per env step)",
          "gate_attention_share": "gate share to attention",
          "iqm": "IQM", "mean": "mean", "optimality_gap": "optimality gap"}
sns.set_theme(style="whitegrid", context="paper", rc={"figure.constrained_layout.use": True})


def _in_order(names: Iterable[str], known: Sequence[str]) -> list[str]:
    """`names` once each: those in `known` in its order, then the rest in input order."""
    names = list(dict.fromkeys(names))
    return [k for k in known if k in names] + [n for n in names if n not in known]


def _colors(names: list[str]) -> dict[str, tuple]:
    ordered = _in_order(names, METHODS)
    return dict(zip(ordered, sns.color_palette("colorblind", len(ordered)), strict=True))


def _rows(frame: pd.DataFrame, what: str, **conditions) -> pd.DataFrame:
    for column, value in conditions.items():
        frame = frame[frame[column].isin(value if isinstance(value, list) else [value])]
    if frame.empty:
        raise DataError(f"the table has no rows for {what}", "check that the DAG produced it at this budget")
    return frame


def _yerr(frame: pd.DataFrame, value: str = "mean") -> np.ndarray:
    """Asymmetric error bars from the CI columns (zero where no interval was estimated)."""
    return np.nan_to_num(np.vstack([frame[value] - frame["ci_low"], frame["ci_high"] - frame[value]]))


def _bars(ax: Axes, series: dict[str, pd.DataFrame], x: str, order: list, colors: dict) -> None:
    """Grouped bars with CI whiskers: one bar per `series` entry at each `x` value."""
    width = 0.8 / len(series)
    for j, (label, frame) in enumerate(series.items()):
        frame = frame.set_index(x).reindex(order)
        positions = np.arange(len(order)) + (j - (len(series) - 1) / 2) * width
        ax.bar(positions, frame["mean"], width, yerr=_yerr(frame), capsize=2, label=label, color=colors[label])
    ax.set_xticks(range(len(order)), [str(o) for o in order], rotation=20, ha="right")


def _title(fig: Figure, text: str, frame: pd.DataFrame) -> None:
    fig.suptitle(f"{text} (budget {distinct(frame['budget'])})")


def table1_bars(table: pd.DataFrame) -> Figure:
    """Table 1: success rate per dataset and method, bars with 95% CIs."""
    datasets = list(dict.fromkeys(table["dataset"]))
    methods = list(dict.fromkeys(table["method"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(datasets)), 3.5))
    _bars(ax, {m: table[table["method"] == m] for m in methods}, "dataset", datasets, _colors(methods))
    ax.set(ylabel="success rate (%)", ylim=(0, 100))
    ax.legend(ncol=len(methods), fontsize="small", loc="upper right")
    _title(fig, "OGBench manipulation", table)
    return fig


def ablation_heatmap(table: pd.DataFrame) -> Figure:
    """Ablation: success rate of each backbone x conditioning, one heatmap per dataset; a row per backbone and
    share of random training goals (the 'rtg' variant's goal mix and its control apart from future goals only)."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3), squeeze=False)
    table = table.assign(row=[b if p == 0 else f"{b} ({100 * p:.0f}% random goals)"
                              for b, p in zip(table["backbone"], table["random_goals"], strict=True)])
    rows = list(dict.fromkeys(table.assign(order=table["backbone"].map(list(BACKBONES).index))
                              .sort_values(["order", "random_goals"])["row"]))
    for ax, dataset in zip(axes[0], datasets, strict=True):
        grid = table[table["dataset"] == dataset].pivot(index="row", columns="conditioning", values="mean")
        grid = grid.reindex(index=[r for r in rows if r in grid.index],
                            columns=[c for c in CONDITIONINGS if c in grid.columns])
        sns.heatmap(grid, ax=ax, annot=True, fmt=".0f", vmin=0, vmax=100, cmap="viridis", cbar=ax is axes[0][-1])
        ax.set_title(dataset)
    _title(fig, "Ablation, success rate (%)", table)
    return fig


def tau_curve(table: pd.DataFrame) -> Figure:
    """Expectile tau sweep: success rate against tau with its 95% CI band, one line per dataset."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for dataset, frame in table.sort_values("tau").groupby("dataset", sort=False):
        ax.plot(frame["tau"], frame["mean"], marker="o", label=dataset)
        ax.fill_between(frame["tau"], frame["ci_low"].fillna(frame["mean"]), frame["ci_high"].fillna(frame["mean"]),
                        alpha=0.2)
    ax.set(xlabel=r"expectile $\tau$", ylabel="success rate (%)", ylim=(0, 100))
    ax.legend(fontsize="small")
    _title(fig, r"Expectile $\tau$", table)
    return fig


def _kind_points(ax: Axes, table: pd.DataFrame, metric: str) -> None:
    """Run points (per layer when logged) and the all-layer kind mean with its CI, OGBench play vs noisy (the data
    the card's statistics are about; AntMaze also has play datasets)."""
    table = _rows(table, "OGBench runs", family=DT_FAMILY)
    runs = _rows(table, f"run-level {metric}", variant=MAIN_VARIANT, level="run", metric=metric)
    layered = runs[runs["layer"] != "all"]
    points = layered if len(layered) else runs
    sns.stripplot(points, x="kind", y="mean", hue="layer", order=KINDS, dodge=True, alpha=0.7, ax=ax)
    summary = _rows(table, f"{metric} per kind", variant=MAIN_VARIANT, level="kind", layer="all", metric=metric)
    summary = summary.set_index("kind").reindex(KINDS)
    ax.errorbar(range(len(KINDS)), summary["mean"], yerr=_yerr(summary), fmt="D", color="black", capsize=4,
                label="mean, 95% CI")
    ax.set(xlabel="", ylabel=LABELS[metric])
    ax.legend(fontsize="x-small", title="layer")


def dt_distributions(table: pd.DataFrame) -> Figure:
    """Mamba step size, decay and effective memory on play vs noisy data (per layer and seed)."""
    metrics = ("delta_mean", "abar_slowest_state", "memory_tokens_slowest_state")  # the definitions claims use
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2))
    for ax, metric in zip(axes, metrics, strict=True):
        _kind_points(ax, table, metric)
    _title(fig, r"Mamba $\Delta_t$, $\bar A_t$ and memory, last validation step", table)
    return fig


def gate_share(table: pd.DataFrame) -> Figure:
    """Gate share to the attention branch, play vs noisy (0.5 = equal split)."""
    fig, ax = plt.subplots(figsize=(4, 3.2))
    _kind_points(ax, table, "gate_attention_share")
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_ylim(0, 1)
    _title(fig, "Gate allocation", table)
    return fig


def aggregate_intervals(table: pd.DataFrame) -> Figure:
    """rliable-style interval estimates of IQM, mean and optimality gap per method."""
    metrics = list(AGGREGATES)
    rows = _rows(table, "aggregate metrics", metric=metrics)
    methods = list(dict.fromkeys(rows["method"]))
    colors = _colors(methods)
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 0.45 * len(methods) + 1.2), sharey=True)
    for ax, metric in zip(axes, metrics, strict=True):
        frame = rows[rows["metric"] == metric].set_index("method").reindex(methods)
        y = np.arange(len(methods))
        low, high = frame["ci_low"].fillna(frame["estimate"]), frame["ci_high"].fillna(frame["estimate"])
        palette = [colors[m] for m in methods]
        ax.barh(y, high - low, left=low, height=0.6, color=palette, alpha=0.5)
        ax.scatter(frame["estimate"], y, color=palette, edgecolor="black", zorder=3)
        ax.set(title=LABELS[metric], yticks=y, yticklabels=methods, xlabel="success rate (fraction, 0-1)",
               xlim=(0, 1))
    _title(fig, "Aggregate metrics, 95% stratified-bootstrap CIs", rows)
    return fig


def performance_profiles(table: pd.DataFrame) -> Figure:
    """Performance profiles: fraction of runs x tasks with success above each threshold."""
    rows = _rows(table, "performance profiles", metric="performance_profile")
    colors = _colors(list(dict.fromkeys(rows["method"])))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for method, frame in rows.groupby("method", sort=False):
        ax.plot(frame["threshold"], frame["estimate"], label=method, color=colors[method], drawstyle="steps-post")
        ax.fill_between(frame["threshold"], frame["ci_low"], frame["ci_high"], color=colors[method], alpha=0.15,
                        step="post")
    ax.set(xlabel="success-rate threshold (fraction, 0-1)", ylabel="fraction of seed x dataset scores above it",
           ylim=(0, 1))
    ax.legend(fontsize="small")
    _title(fig, "Performance profiles", rows)
    return fig


# --- claims forest plot -------------------------------------------------------------------------------------------

# One fixed colour per verdict (colorblind palette; reversed in black, apart from above's orange), so a verdict
# looks the same in every claims figure. `missing` and `unmeasured` have no estimate and are never drawn.
_CB = sns.color_palette("colorblind")
VERDICT_COLORS = {"reproduced": _CB[2], "below": _CB[0], "above": _CB[1], "inconclusive": _CB[4],
                  "reversed": (0.1, 0.1, 0.1), claims.NOT_COMPARABLE: _CB[7]}
BAND_TYPES = ("value", "total")          # band = claimed ± tolerance: drawn as (x − claimed) / tolerance
DIFFERENCE_TYPES = ("ordering", "gain")  # band (0, inf): drawn as the decisive difference in the claim's units
NORMALISED_VIEW = 10.0  # display choice: the normalised panel shows ±10 tolerances; beyond, an arrow at the edge


def _checked_claims(check: pd.DataFrame) -> pd.DataFrame:
    """Rows of claims_check.csv that have an estimate; a DataError for verdicts or types the figure cannot draw."""
    unknown = sorted(set(check["verdict"]) - set(claims.VERDICTS))
    if unknown:
        raise DataError(f"claims check has unknown verdict(s) {', '.join(map(str, unknown))}",
                        "re-run `python -m qhyer.report claims`")
    drawn = check[check["estimate"].notna()]
    odd = sorted(set(drawn["type"]) - {*BAND_TYPES, *DIFFERENCE_TYPES})
    bad_tolerance = drawn[drawn["type"].isin(BAND_TYPES) & ~(drawn["tolerance"] > 0)]
    if odd or len(bad_tolerance):
        raise DataError(f"claims check rows cannot be drawn: type(s) {', '.join(map(str, odd)) or '-'}, "
                        f"no positive tolerance: {', '.join(bad_tolerance['id']) or '-'}",
                        "re-run `python -m qhyer.report claims`")
    return drawn


def _number(value) -> float:
    """A cell that may be empty or text in a hand-made table: NaN unless it is a number."""
    return float(pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0])


def _decided_on(row: pd.Series) -> str:
    """What the verdict rests on: the seeds (and, in a staged check, the stage of its last look); for `inconclusive`
    the seeds the plug-in estimate says would decide it and the verdict it expects (claims_check.md's
    `to decide (plug-in)`; verdicts.seeds_to_decide)."""
    stage, seeds, to_decide = (_number(row.get(key)) for key in ("stage", "n_seeds", "seeds_to_decide"))
    parts = [f"stage {stage:.0f}" if not np.isnan(stage) else "", f"{seeds:.0f} seeds" if not np.isnan(seeds) else ""]
    if row["verdict"] == verdicts.INCONCLUSIVE and not np.isnan(to_decide):
        expected = row.get("expected")
        parts.append(f"{'∞' if np.isinf(to_decide) else f'{to_decide:.0f}'} seeds to decide"
                     + (f" → {expected}" if isinstance(expected, str) and expected else ""))
    return ", ".join(p for p in parts if p)


def _measured_text(row: pd.Series) -> str:
    interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
    decided_on = _decided_on(row)
    return f"{row['estimate']:.4g}{interval}" + (f"  ({decided_on})" if decided_on else "")


def _forest(ax: Axes, rows: pd.DataFrame, x: pd.DataFrame, view: tuple[float, float] | None) -> None:
    """One row per claim: the 95% interval `x.low`-`x.high` as a line and `x.estimate` as a point, coloured by
    verdict; at the right the measured values in the claim's units and what the verdict rests on (stage, seeds,
    seeds to decide). With a `view`, values beyond it are drawn at its edge as arrows."""
    y = np.arange(len(rows))
    colors = np.array([VERDICT_COLORS[v] for v in rows["verdict"]])
    low, high = view or (-np.inf, np.inf)
    x = x.clip(low, high)
    ax.hlines(y, x["low"], x["high"], colors=colors, linewidth=2.5)
    estimate = x["estimate"].to_numpy()
    markers = np.where(estimate <= low, "<", np.where(estimate >= high, ">", "o"))
    for marker in set(markers):
        at = markers == marker
        ax.scatter(estimate[at], y[at], c=colors[at], marker=marker, edgecolor="black", zorder=3, s=30)
    ax.set_yticks(y, rows["label"])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    for yi, text in zip(y, rows.apply(_measured_text, axis=1), strict=True):
        ax.annotate(text, (1.01, yi), xycoords=("axes fraction", "data"), va="center", fontsize="x-small")
    if view is not None:
        ax.set_xlim(*view)


def claims_forest(check: pd.DataFrame) -> Figure:
    """Claims check as a forest plot: one row per claim with an estimate, coloured by verdict.

    Claims on different scales share one figure by normalising each to its band: value and total claims are drawn
    as (measured − claimed) / tolerance, so the paper's value ± tolerance is the shaded span [−1, 1]; ordering and
    gain claims on their own panel as the decisive difference in the claim's units, the claimed side (> 0) shaded.
    Claims without an estimate (`missing`, `unmeasured`) are not drawn; the title counts them by verdict. A gain
    claim's label gives its claimed gain; each row's right-hand text its seeds (and stage, from a staged check:
    results/verify_check.csv) and, when `inconclusive`, the seeds that would decide it and toward which verdict."""
    drawn = _checked_claims(check)
    missing = len(check) - len(drawn)
    undrawn = ", ".join(f"{n} {v}" for v, n in check["verdict"].drop(index=drawn.index).value_counts().items())
    if drawn.empty:  # a legitimate state (nothing measured yet): say so rather than fail the DAG
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no claim has an estimate ({undrawn})", ha="center", va="center")
        _title(fig, "Claims check", check)
        return fig
    bands = drawn[drawn["type"].isin(BAND_TYPES)]
    bands = bands.assign(label=[f"{r.id}  ({r.claimed:.4g} ± {r.tolerance:.4g})" for r in bands.itertuples()])
    diffs = drawn[drawn["type"].isin(DIFFERENCE_TYPES)]
    diffs = diffs.assign(label=[f"{r.id}  (+{_number(r.claimed):.4g})" if r.type == "gain" and
                                not np.isnan(_number(r.claimed)) else r.id for r in diffs.itertuples()])
    panels = [p for p in (bands, diffs) if len(p)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 0.28 * len(drawn) + 1.2 * len(panels) + 1.0),
                             height_ratios=[len(p) + 2 for p in panels], squeeze=False)
    for ax, rows in zip(axes[:, 0], panels, strict=True):
        if rows is bands:
            scaled = pd.DataFrame({key: (rows[col] - rows["claimed"]) / rows["tolerance"] for key, col in
                                   (("estimate", "estimate"), ("low", "ci_low"), ("high", "ci_high"))})
            ax.axvspan(-1, 1, color="grey", alpha=0.2)
            ax.axvline(0, color="grey", linewidth=1)
            _forest(ax, rows, scaled.fillna({"low": scaled["estimate"], "high": scaled["estimate"]}),
                    (-NORMALISED_VIEW, NORMALISED_VIEW))
            ax.set(title="Value and total claims: paper value ± tolerance shaded; measured mean and 95% CI",
                   xlabel="(measured − claimed) / tolerance")
        else:
            measured = rows[["estimate", "ci_low", "ci_high"]].set_axis(["estimate", "low", "high"], axis=1)
            _forest(ax, rows, measured.fillna({"low": measured["estimate"], "high": measured["estimate"]}), None)
            ax.axvspan(0, max(ax.get_xlim()[1], 1e-9), color="grey", alpha=0.2)
            ax.axvline(0, color="black", linewidth=1)
            ax.set(title="Ordering and gain claims: decisive difference and its 95% CI; claimed side (> 0) shaded",
                   xlabel="difference (claim's units: success points, normalised score, ...)")
    present = [v for v in VERDICT_COLORS if v in set(drawn["verdict"])]
    handles = [Line2D([], [], color=VERDICT_COLORS[v], marker="o", markeredgecolor="black", linewidth=2.5, label=v)
               for v in present] + [Patch(color="grey", alpha=0.2, label="paper's band")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize="small", title="verdict")
    _title(fig, f"Claims check: {len(drawn)} claims drawn, {missing} without an estimate ({undrawn}) not drawn; "
                f"values beyond ±{NORMALISED_VIEW:g} tolerances at the edge", drawn)
    return fig


# --- learning curves (from run folders) -------------------------------------------------------------------------

# Display choice: each method's minimised loss terms as its `update` returns them (the trainer logs them with
# split `train`); `loss` alone where it is the only term. A QHyer variant without a critic logs only loss_bc.
LOSS_TERMS = {"qhyer": ("loss_bc", "loss_critic", "loss_q"), "dt": ("loss",), "qt": ("critic_loss", "actor_loss"),
              "lsdt": ("loss",), "gciql": ("value_loss", "critic_loss", "actor_loss"),
              "hiql": ("value_loss", "low_actor_loss", "high_actor_loss"), "gcbc": ("loss",),
              "iql": ("value_loss", "actor_loss", "critic_loss")}
EVALUATION = "evaluation"
SCORE_LABELS = {"success_x100": "success rate (%)", "normalized_score": "normalised score"}


def _run_curves(record: dict) -> pd.DataFrame:
    """A run's training-loss rows (metrics.csv, split train, the method's LOSS_TERMS) and its evaluation score at
    each evaluated checkpoint (eval_episodes.csv, when present), as rows (source, series, step, value)."""
    run = Path(record["run_dir"])
    metrics = read_metrics(run)
    terms = LOSS_TERMS[record["method"]]
    losses = metrics[(metrics["split"] == "train") & metrics["metric"].isin(terms)]
    if losses.empty:
        raise DataError(f"{run / METRICS_FILE} has no training rows of {', '.join(terms)}",
                        "the run logged nothing: retrain it")
    parts = [losses.groupby(["metric", "step"], as_index=False)["value"].mean()
             .rename(columns={"metric": "series"}).assign(source="loss")]
    if (run / "eval_episodes.csv").is_file():
        column, scale, metric = SCORES[get_spec(record["dataset"]).family]
        episodes = run_episodes(run, record)
        # a checkpoint's score as the claims and tables make it: mean over tasks of the per-task mean
        per_step = episodes.groupby(["step", "task"])[column].mean().groupby("step").mean() * scale
        parts.append(per_step.rename("value").reset_index().assign(source=EVALUATION, series=metric))
    label = record["method"] if record["variant"] == MAIN_VARIANT else f"{record['method']} ({record['variant']})"
    return pd.concat(parts, ignore_index=True).assign(
        method=record["method"], label=label, dataset=record["dataset"], seed=record["seed"], budget=record["budget"])


def load_curves(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Tidy learning-curve rows of every run folder (or file inside one) given: method, label (method, and variant
    when not the main one), dataset, seed, budget, source (`loss` | `evaluation`), series, step, value."""
    return pd.concat([_run_curves(r) for r in read_records(paths)], ignore_index=True)


def _seed_band(ax: Axes, rows: pd.DataFrame, label: str, color, marker: str | None = None) -> None:
    """Mean over seeds at each step, the min-max range over seeds shaded (a lone step as a point)."""
    band = rows.groupby("step")["value"].agg(["mean", "min", "max"])
    marker = marker or ("o" if len(band) == 1 else None)
    ax.plot(band.index, band["mean"], label=label, color=color, marker=marker, markersize=3, linewidth=1)
    ax.fill_between(band.index, band["min"], band["max"], color=color, alpha=0.2, linewidth=0)


def learning_curves(curves: pd.DataFrame) -> Figure:
    """Training losses and evaluation score over updates: one row per dataset, one column per method (its loss
    terms) after an evaluation column (every method's score) when some run evaluated several checkpoints."""
    datasets = _in_order(curves["dataset"], tuple(DATASETS))
    labels = _in_order(curves["label"], METHODS)
    evaluations = curves[curves["source"] == EVALUATION]
    several = evaluations.groupby(["label", "dataset", "seed"])["step"].nunique().gt(1).any()
    columns = ([EVALUATION] if several else []) + labels
    fig, axes = plt.subplots(len(datasets), len(columns), figsize=(2.8 * len(columns), 2.1 * len(datasets) + 0.8),
                             squeeze=False)
    method_colors = _colors(labels)
    for (i, dataset), (j, column) in ((a, b) for a in enumerate(datasets) for b in enumerate(columns)):
        ax = axes[i, j]
        if column == EVALUATION:
            rows = evaluations[evaluations["dataset"] == dataset]
            for label in _in_order(rows["label"], labels):
                _seed_band(ax, rows[rows["label"] == label], label, method_colors[label], marker="o")
            ax.set_ylabel(SCORE_LABELS[distinct(rows["series"])] if len(rows) else "")
        else:
            rows = curves[(curves["source"] == "loss") & (curves["dataset"] == dataset) & (curves["label"] == column)]
            terms = _in_order(rows["series"], LOSS_TERMS.get(distinct(rows["method"]), ()))
            term_colors = dict(zip(terms, sns.color_palette("dark", len(terms)), strict=True))
            for term in terms:
                _seed_band(ax, rows[rows["series"] == term], term, term_colors[term])
            ax.set_ylabel("training loss" if j == len(columns) - len(labels) else "")
        if rows.empty:
            ax.set_axis_off()
            continue
        if i == 0 or column == EVALUATION:
            ax.legend(fontsize="xx-small")
        ax.set_title(f"{column} · {dataset}", fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[-1]:
        ax.set_xlabel("updates")
    seeds = distinct(curves.groupby(["label", "dataset"])["seed"].nunique())
    _title(fig, f"Learning curves: mean over seeds, band = min-max over {seeds} seed(s)", curves)
    return fig


# name -> (plot, columns the table must have)
FIGURES: dict[str, tuple[Callable[[pd.DataFrame], Figure], tuple[str, ...]]] = {
    "table1": (table1_bars, ("dataset", "method", "mean", "ci_low", "ci_high", "budget")),
    "ablation": (ablation_heatmap, ("dataset", "backbone", "random_goals", "conditioning", "mean", "budget")),
    "tau": (tau_curve, ("dataset", "tau", "mean", "ci_low", "ci_high", "budget")),
    "dt": (dt_distributions, DT_COLUMNS),
    "gate": (gate_share, DT_COLUMNS),
    "aggregate": (aggregate_intervals, ("metric", "method", "estimate", "ci_low", "ci_high", "budget")),
    "profiles": (performance_profiles, ("metric", "method", "threshold", "estimate", "ci_low", "ci_high", "budget")),
    "claims": (claims_forest, ("id", "type", "verdict", "claimed", "tolerance", "estimate", "ci_low", "ci_high",
                               "budget")),
}
LEARNING_CURVES = "learning_curves"  # drawn from run folders, not a table


def save(fig: Figure, outputs: list[Path]) -> None:
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def _outputs(paths: list[Path]) -> list[Path]:
    wrong = [str(p) for p in paths if p.suffix not in (".png", ".pdf")]
    if wrong:
        raise ConfigError(f"figure outputs must end in .png or .pdf: {', '.join(wrong)}")
    return paths


def main(name: str, argv: list[str] | None = None) -> int:
    if name == LEARNING_CURVES:
        parser = argparse.ArgumentParser(prog=f"paper_figures/fig_{name}.py", description=learning_curves.__doc__)
        parser.add_argument("--runs", nargs="+", required=True, help="run folders (or files inside them)")
        parser.add_argument("--out", type=Path, nargs="+", required=True, help="figure files (.png and/or .pdf)")
        args = parser.parse_args(argv)
        outputs = _outputs(args.out)
        fig = learning_curves(load_curves(args.runs))
    else:
        plot, columns = FIGURES[name]
        parser = argparse.ArgumentParser(prog=f"paper_figures/fig_{name}.py", description=plot.__doc__)
        parser.add_argument("table", type=Path, help="the results table (.csv) to draw")
        parser.add_argument("outputs", type=Path, nargs="+", help="figure files to write (.png and/or .pdf)")
        args = parser.parse_args(argv)
        outputs = _outputs(args.outputs)
        fig = plot(read_csv(args.table, columns))
    save(fig, outputs)
    print("wrote " + ", ".join(map(str, outputs)))
    return 0


def script(name: str) -> None:
    """Entry point of `paper_figures/fig_<name>.py`."""
    cli_main(lambda: main(name))
