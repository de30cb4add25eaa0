"""Dataset CLI.

    python -m qhyer.data list
    python -m qhyer.data generate cube-single-play [--episodes 4] [--workers 2] [--seed 0] [--out data]
                                                   [--episode-length 1001]
    python -m qhyer.data generate maze2d-umaze [--steps 100000]
    python -m qhyer.data info cube-single-play [--data-dir data] [--split val]
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from qhyer.data.registry import DATASETS, default_data_dir, get_spec
from qhyer.errors import ConfigError, cli_main

# family -> module with `generate(spec, out_dir, *, seed, workers, episodes, steps, progress) -> manifest`
GENERATORS = {"ogbench": "qhyer.data.ogbench_gen", "maze2d": "qhyer.data.maze2d_gen"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m qhyer.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list known datasets")
    gen = sub.add_parser("generate", help="regenerate a dataset locally (nothing is downloaded)")
    gen.add_argument("name")
    gen.add_argument("--out", type=Path, default=None, help="output folder (default: $QHYER_DATA_DIR or ./data)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    gen.add_argument("--episodes", type=int, default=None, help="OGBench: training episodes (default: official)")
    gen.add_argument("--episode-length", type=int, default=None,
                     help="OGBench: rows per episode (default: the official 1001; shorter only for smoke runs)")
    gen.add_argument("--steps", type=int, default=None, help="Maze2d: total steps (default: official)")
    gen.add_argument("--no-progress", action="store_true")
    info = sub.add_parser("info", help="read a dataset and print its summary")
    info.add_argument("name")
    info.add_argument("--data-dir", type=Path, default=None)
    info.add_argument("--split", choices=("train", "val"), default="train")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        for spec in DATASETS.values():
            how = "regenerable" if spec.regenerable else "user files only"
            print(f"{spec.name:28s} {spec.family:8s} obs {spec.obs_dim:3d} act {spec.action_dim} ({how})")
        return 0
    spec = get_spec(args.name)
    if args.command == "generate":
        if not spec.regenerable:
            raise ConfigError(f"{spec.name} cannot be regenerated (it needs a pretrained policy nobody ships)",
                              f"place the D4RL file under {default_data_dir()} or $D4RL_DATASET_DIR")
        for flag in ("workers", "episodes", "steps"):
            value = getattr(args, flag)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag} must be at least 1 (got {value})")
        generator = importlib.import_module(GENERATORS[spec.family])
        sizes = {"episode_length": args.episode_length} if args.episode_length is not None else {}
        manifest = generator.generate(spec, args.out or default_data_dir(), seed=args.seed, workers=args.workers,
                                      episodes=args.episodes, steps=args.steps, progress=not args.no_progress, **sizes)
        for name, entry in manifest["files"].items():
            print(f"{name}  sha256 {entry['sha256']}")
        print(f"rows {manifest['transitions']}  wall time {manifest['wall_time_s']:.1f} s")
        return 0
    from qhyer.data.readers import load_dataset

    dataset = load_dataset(spec.name, split=args.split, data_dir=args.data_dir)
    print(f"{dataset.name} ({args.split}) from {dataset.source}: {len(dataset)} rows, {dataset.num_episodes} "
          f"episodes, obs {dataset.obs_dim}, act {dataset.action_dim}, goal part {len(dataset.goal_dims)}")
    return 0


if __name__ == "__main__":
    cli_main(main)
