"""Evaluation CLI: sanity checks of the shared evaluation layer.

    python -m qhyer.rollout sanity --dataset cube-single-play --episodes 10
    python -m qhyer.rollout sanity --dataset maze2d-umaze --episodes 100 [--policies oracle random] [--seed 0]
                                [--num-envs 10] [--max-steps 0] [--out results/sanity]

Runs the scripted oracle and the seeded random policy (qhyer/rollout/sanity.py) through exactly the path trained
methods take and prints one row per task and policy: success rate, mean return and length, and the reported
score (OGBench and AntMaze: success x 100; Maze2d: D4RL normalised score). An oracle far below 100 or a random
policy far above 0 (Maze2d: near its reference minimum) points at the environment or the evaluation layer.
`--episodes` is per task (OGBench has 5 tasks; D4RL mazes one). `--out` also writes the per-episode and
summary CSVs of each policy there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, cli_main
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.protocol import evaluate_policy, make_envs, summarize, write_results
from qhyer.rollout.sanity import SANITY_POLICIES, make_sanity_policy


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qhyer.rollout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sanity = sub.add_parser("sanity", help="evaluate the scripted oracle and a random policy")
    sanity.add_argument("--dataset", required=True, help="e.g. cube-single-play, maze2d-umaze")
    sanity.add_argument("--episodes", type=int, default=10, help="episodes per task")
    sanity.add_argument("--policies", nargs="+", choices=SANITY_POLICIES, default=list(SANITY_POLICIES))
    sanity.add_argument("--seed", type=int, default=0)
    sanity.add_argument("--num-envs", type=int, default=None, help="episodes stepped together (default: all)")
    sanity.add_argument("--max-steps", type=int, default=0, help="cap on episode length (0 = official limit)")
    sanity.add_argument("--out", type=Path, default=None, help="also write CSVs to this folder")
    sanity.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spec = get_spec(args.dataset)
    if args.episodes < 1 or (args.num_envs is not None and args.num_envs < 1) or args.max_steps < 0 or args.seed < 0:
        raise ConfigError("--episodes and --num-envs must be at least 1, --max-steps and --seed at least 0")
    if args.out is not None and args.out.exists() and not args.out.is_dir():  # checked before any episode is played
        raise ConfigError(f"--out {args.out} is a file, not a folder", "pass a folder for the CSVs")
    policies = {name: make_sanity_policy(name, spec) for name in args.policies}  # fail early on 'oracle'
    total = len(eval_tasks(spec)) * args.episodes
    num_envs = min(args.num_envs or total, total)
    envs = make_envs(spec, num_envs, args.max_steps or None)  # shared by the policies
    summaries = []
    for name, policy in policies.items():
        episodes = evaluate_policy(policy, spec, episodes_per_task=args.episodes, seed=args.seed, num_envs=num_envs,
                                   method=name, progress=not args.no_progress,
                                   max_steps=args.max_steps or None, envs=envs)
        summaries.append(summarize(episodes, spec))
        if args.out:
            write_results(episodes, spec, args.out / f"sanity_{spec.name}_{name}.csv")
    table = pd.concat(summaries, ignore_index=True)
    columns = ["method", "task", "episodes", "success", "mean_return", "mean_length", "score"]
    print(f"{spec.name}, seed {args.seed}, {args.episodes} episodes per task, time limit {envs[0].horizon} steps")
    print(table[columns].rename(columns={"method": "policy"}).to_string(index=False, float_format="{:.3g}".format))
    return 0


if __name__ == "__main__":
    cli_main(main)
