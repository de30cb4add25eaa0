"""Learning check: does every method learn at a CPU budget? Each method trains on one small dataset through the
public entry points (`python -m qhyer.train`, `python -m qhyer.evaluate`), and its score is set against the seeded
random policy's on the same evaluation episodes.

    python -m qhyer.learning_check [--dataset maze2d-umaze-v1] [--steps 1000] [--episodes 30] [--jobs 2]
        [--sizes workflow/config/budgets/quick.yaml] [--methods qhyer dt ...] [--out results/learning_check.csv]

`--sizes` takes the per-method model sizes (train.method_overrides) of a workflow budget, so the check runs the
models the `quick` budget trains. Runs go to runs/learning_check/steps<N>/<method>/<dataset>/seed<seed>; a finished run
(eval_episodes.csv present) is reused. The verdict `learns` needs the method's 95% bootstrap interval (over
episodes) of the goal-reached rate to lie above the random policy's, `overlaps random` otherwise. Writes the CSV
and a Markdown rendering beside it, both atomically, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import pandas as pd
import yaml
from tqdm import tqdm

from qhyer.data.readers import load_dataset
from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, DataError, cli_main
from qhyer.io import write_json_atomic, write_text_atomic
from qhyer.methods import METHODS
from qhyer.report.stats import summarize_episodes
from qhyer.report.tables import SCORES, to_markdown, write_csv
from qhyer.rollout.protocol import evaluate_policy, normalized_score
from qhyer.rollout.sanity import RandomPolicy
from qhyer.runs import read_records, run_evaluation


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qhyer.learning_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="maze2d-umaze-v1")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--steps", type=int, default=1000, help="gradient updates per method")
    parser.add_argument("--episodes", type=int, default=30, help="evaluation episodes per task")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on episode length (0 = official limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    parser.add_argument("--sizes", type=Path, default=None,
                        help="a workflow budget YAML whose train.method_overrides set the model sizes")
    parser.add_argument("--data-dir", type=Path, default=Path("data/learning_check"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/learning_check"))
    parser.add_argument("--generate-steps", type=int, default=100_000,
                        help="Maze2d rows to generate when the dataset is missing (OGBench: --generate-episodes)")
    parser.add_argument("--generate-episodes", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/learning_check.csv"))
    return parser


def method_overrides(sizes: Path | None) -> dict[str, list[str]]:
    """Hydra overrides per method from a budget's train.method_overrides (lists as one shell word)."""
    if sizes is None:
        return {}
    if not sizes.is_file():
        raise ConfigError(f"--sizes {sizes} does not exist", "e.g. --sizes workflow/config/budgets/quick.yaml")
    table = (yaml.safe_load(sizes.read_text()) or {}).get("train", {}).get("method_overrides", {})
    word = lambda v: "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v)  # noqa: E731
    return {method: [f"{key}={word(value)}" for key, value in entries.items() if key != "steps"]
            for method, entries in table.items()}


def _run(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        if subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode:
            raise DataError(f"'{' '.join(command[2:5])} …' failed", f"see {log}")


def ensure_dataset(args: argparse.Namespace) -> None:
    try:
        load_dataset(args.dataset, data_dir=args.data_dir)
        return
    except DataError:
        pass
    spec = get_spec(args.dataset)
    size = (["--steps", str(args.generate_steps)] if spec.family == "maze2d"
            else ["--episodes", str(args.generate_episodes)])
    _run([sys.executable, "-m", "qhyer.data", "generate", spec.name, "--out", str(args.data_dir),
          "--workers", str(args.jobs), "--no-progress", *size], args.runs_dir / "generate.log")


def train_and_evaluate(method: str, args: argparse.Namespace, overrides: list[str]) -> tuple[Path, float]:
    """Train and evaluate one method (skipped when its run already has eval_episodes.csv); returns its folder and
    the wall time in seconds of its training and evaluation (recorded in the run folder, so reuse keeps it)."""
    run_dir = args.runs_dir / f"steps{args.steps}" / method / args.dataset / f"seed{args.seed}"
    timing = run_dir / "learning_check_time.json"
    if (run_dir / "eval_episodes.csv").is_file():
        return run_dir, json.loads(timing.read_text())["wall_time_s"] if timing.is_file() else float("nan")
    start = time.perf_counter()
    _run([sys.executable, "-m", "qhyer.train", f"method={method}", f"dataset={args.dataset}", f"seed={args.seed}",
          f"data_dir={args.data_dir}", f"run_dir={run_dir}", "budget=learning_check", f"train.steps={args.steps}",
          "train.threads=1", "train.progress=false", "eval.enabled=false", *overrides], run_dir.parent / "train.log")
    _run([sys.executable, "-m", "qhyer.evaluate", str(run_dir), "--episodes-per-task", str(args.episodes),
          "--max-steps", str(args.max_steps), "--threads", "1", "--no-progress"], run_dir.parent / "evaluate.log")
    seconds = time.perf_counter() - start
    write_json_atomic(timing, {"wall_time_s": seconds})
    return run_dir, seconds


def random_episodes(args: argparse.Namespace) -> pd.DataFrame:
    """The random policy on the episodes the methods' final checkpoints (step `--steps`) are evaluated on: each
    checkpoint step draws its own episodes (qhyer/rollout/eval_env.py `episode_seeds`)."""
    spec = get_spec(args.dataset)
    episodes = evaluate_policy(RandomPolicy(spec.action_dim), spec, episodes_per_task=args.episodes, seed=args.seed,
                               method="random", progress=False, max_steps=args.max_steps or None,
                               checkpoint_step=args.steps).assign(step=args.steps)
    if spec.family == "maze2d":
        episodes["normalized_score"] = normalized_score(spec, episodes["return"].to_numpy())
    return episodes


def _reached(episodes: pd.DataFrame) -> pd.DataFrame:
    """Adds `reached`: the goal was reached at some step (a sparse reward was received, or the episode succeeded)."""
    return episodes.assign(reached=((episodes["return"] > 0) | episodes["success"].astype(bool)).astype(float))


def _summary(episodes: pd.DataFrame, column: str, scale: float, prefix: str) -> dict:
    stat = summarize_episodes(episodes, column)
    return {f"{prefix}{key}": stat[key] * scale for key in ("mean", "ci_low", "ci_high")} | {
        "episodes": stat["episodes"]}


def check_table(runs: dict[str, tuple[Path, float]], random: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """One row per method plus the random policy: goal-reached rate and reported score with 95% intervals, wall
    time and verdict. The verdict uses the reached rate: D4RL's Maze2d score also rewards staying at the goal, which
    hindsight-relabelled data never shows (its controller moves on to a new target)."""
    column, scale, metric = SCORES[get_spec(dataset).family]

    def row(method: str, episodes: pd.DataFrame, seconds: float, protocol: str) -> dict:
        episodes = _reached(episodes)
        return {"method": method, **_summary(episodes, "reached", 100.0, "reached_"),
                **_summary(episodes, column, scale, "score_"), "metric": metric, "wall_time_s": round(seconds, 1),
                "budget": protocol}

    episodes_per_task = int(random.groupby("task").size().max())
    floor = row("random", random, 0.0, f"no training; {episodes_per_task} episodes/task") | {"verdict": "reference"}
    rows = [floor]
    for method, (run_dir, seconds) in runs.items():
        record, episodes = run_evaluation(read_records([run_dir])[0])  # the report's strict reader, and its label
        rows.append(row(method, episodes, seconds, record["protocol"]))
        rows[-1]["verdict"] = "learns" if rows[-1]["reached_ci_low"] > floor["reached_ci_high"] else "overlaps random"
    return pd.DataFrame(rows).assign(dataset=dataset)


def markdown(table: pd.DataFrame) -> str:
    def interval(prefix: str) -> list[str]:
        return [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in
                zip(table[f"{prefix}mean"], table[f"{prefix}ci_low"], table[f"{prefix}ci_high"], strict=True)]

    display = pd.DataFrame({"method": table["method"], "goal reached (%)": interval("reached_"),
                            table["metric"].iloc[0]: interval("score_"),
                            "train + eval (s)": table["wall_time_s"].map("{:.0f}".format), "verdict": table["verdict"]})
    budgets = "\n".join(f"- {m}: {b}" for m, b in zip(table["method"], table["budget"], strict=True))
    return (f"# Learning check on {table['dataset'].iloc[0]}\n\nMeans over evaluation episodes with 95% bootstrap "
            f"intervals; `learns` = the goal-reached interval lies above the random policy's.\n\n"
            f"{to_markdown(display, display.map(lambda _: False))}\n\nBudgets:\n{budgets}\n")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.steps, args.episodes, args.jobs) < 1 or args.max_steps < 0:
        raise ConfigError("--steps, --episodes and --jobs must be at least 1, --max-steps at least 0")
    get_spec(args.dataset)
    overrides = method_overrides(args.sizes)
    ensure_dataset(args)
    with ThreadPoolExecutor(args.jobs) as pool, tqdm(total=len(args.methods), desc="methods", unit="run") as bar:
        futures = {pool.submit(train_and_evaluate, m, args, overrides.get(m, [])): m for m in args.methods}
        done = {}
        for future in as_completed(futures):
            done[futures[future]] = future.result()
            bar.update()
    table = check_table({m: done[m] for m in args.methods}, random_episodes(args), args.dataset)
    out = write_csv(table, args.out)
    write_text_atomic(out.with_suffix(".md"), markdown(table))
    print(markdown(table))
    return 0


if __name__ == "__main__":
    cli_main(main)
