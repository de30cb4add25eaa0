"""Paper figures, each drawn from one results table (seaborn on matplotlib's Agg backend).

    python paper_figures/fig_table1.py results/table1.csv paper_figures/table1.png paper_figures/table1.pdf

Every `paper_figures/fig_<name>.py` calls `script(<name>)`: the first argument is the table, then one or more
outputs whose suffix (.png | .pdf) picks the format; each file is written atomically. Intervals drawn are the
tables' own 95% CIs (nothing is re-estimated here); titles carry the budget the numbers were measured at.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from qhyer.errors import ConfigError, DataError, cli_main
from qhyer.io import atomic_path
from qhyer.report.stats import AGGREGATES
from qhyer.report.tables import BACKBONES, CONDITIONINGS, MAIN_VARIANT, METHODS, distinct, read_csv

matplotlib.use("Agg")  # files only, no display

KINDS = ["play", "noisy"]
LABELS = {"delta_mean": r"mean $\Delta_t$", "abar_first_state": r"mean $\bar A_t$ (slowest state dim)",
          "memory_tokens_first_state": r"memory $1/(1-\bar A_t)$ (tokens)",
          "gate_attention_share": "gate share to attention",
          "iqm": "IQM", "mean": "mean", "optimality_gap": "optimality gap"}
sns.set_theme(style="whitegrid", context="paper", rc={"figure.constrained_layout.use": True})


def _colors(names: list[str]) -> dict[str, tuple]:
    known = [m for m in METHODS if m in names] + [n for n in names if n not in METHODS]
    return dict(zip(known, sns.color_palette("colorblind", len(known)), strict=True))


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
    """Ablation: success rate of each backbone x conditioning, one heatmap per dataset."""
    datasets = list(dict.fromkeys(table["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        grid = table[table["dataset"] == dataset].pivot(index="backbone", columns="conditioning", values="mean")
        grid = grid.reindex(index=[b for b in BACKBONES if b in grid.index],
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
    """Run points (per layer when logged) and the all-layer kind mean with its CI, play vs noisy."""
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
    metrics = ("delta_mean", "abar_first_state", "memory_tokens_first_state")  # the definitions claims use
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
        ax.set(title=LABELS[metric], yticks=y, yticklabels=methods, xlabel="success rate", xlim=(0, 1))
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
    ax.set(xlabel="success-rate threshold", ylabel="fraction of run x task scores above it", ylim=(0, 1))
    ax.legend(fontsize="small")
    _title(fig, "Performance profiles", rows)
    return fig


# name -> (plot, columns the table must have)
FIGURES: dict[str, tuple[Callable[[pd.DataFrame], Figure], tuple[str, ...]]] = {
    "table1": (table1_bars, ("dataset", "method", "mean", "ci_low", "ci_high", "budget")),
    "ablation": (ablation_heatmap, ("dataset", "backbone", "conditioning", "mean", "budget")),
    "tau": (tau_curve, ("dataset", "tau", "mean", "ci_low", "ci_high", "budget")),
    "dt": (dt_distributions, ("level", "variant", "kind", "layer", "metric", "mean", "ci_low", "ci_high", "budget")),
    "gate": (gate_share, ("level", "variant", "kind", "layer", "metric", "mean", "ci_low", "ci_high", "budget")),
    "aggregate": (aggregate_intervals, ("metric", "method", "estimate", "ci_low", "ci_high", "budget")),
    "profiles": (performance_profiles, ("metric", "method", "threshold", "estimate", "ci_low", "ci_high", "budget")),
}


def save(fig: Figure, outputs: list[Path]) -> None:
    for out in outputs:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=out.suffix[1:], dpi=150, bbox_inches="tight")
    plt.close(fig)


def main(name: str, argv: list[str] | None = None) -> int:
    plot, columns = FIGURES[name]
    parser = argparse.ArgumentParser(prog=f"paper_figures/fig_{name}.py", description=plot.__doc__)
    parser.add_argument("table", type=Path, help="the results table (.csv) to draw")
    parser.add_argument("outputs", type=Path, nargs="+", help="figure files to write (.png and/or .pdf)")
    args = parser.parse_args(argv)
    wrong = [str(p) for p in args.outputs if p.suffix not in (".png", ".pdf")]
    if wrong:
        raise ConfigError(f"figure outputs must end in .png or .pdf: {', '.join(wrong)}")
    save(plot(read_csv(args.table, columns)), args.outputs)
    print("wrote " + ", ".join(map(str, args.outputs)))
    return 0


def script(name: str) -> None:
    """Entry point of `paper_figures/fig_<name>.py`."""
    cli_main(lambda: main(name))
