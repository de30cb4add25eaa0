"""Dataset CLI.

    python -m qhyer.data list
    python -m qhyer.data generate cube-single-play [--episodes 4] [--workers 2] [--seed 0] [--out data]
                                                   [--episode-length 1001]
    python -m qhyer.data generate maze2d-umaze [--steps 100000]
    python -m qhyer.data info cube-single-play [--data-dir data] [--split val]
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import tempfile
from pathlib import Path

from qhyer.data.manifest import manifest_path
from qhyer.data.registry import DATASETS, DatasetSpec, default_data_dir, get_spec
from qhyer.errors import ConfigError, cli_main
from qhyer.io import folder_lock

# The smallest value of each size flag: a dataset needs one transition (two rows) in an episode to train on.
MINIMA = {"workers": 1, "episodes": 1, "steps": 2, "episode_length": 2}
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


def writable_folder(out: Path) -> Path:
    """`out`, created if needed, or a one-line ConfigError when files cannot be written there (checked before
    generating: the official sizes take up to hours)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise ConfigError(f"--out {out} is not a writable folder ({err.strerror})",
                          "pass a folder you can write to") from None
    return out


def remove_dataset_temporaries(out: Path, spec: DatasetSpec) -> None:
    """Delete the temporaries (qhyer.io.atomic_path) a killed generator of this dataset left in `out`; those of
    other datasets may belong to a generator still running."""
    finals = [name for name in (spec.train_file, spec.val_file) if name] + [manifest_path(spec.train_file).name]
    for final in finals:
        for stale in out.glob(f".{glob.escape(final)}.*"):
            stale.unlink(missing_ok=True)


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
        for flag, least in MINIMA.items():
            value = getattr(args, flag)
            if value is not None and value < least:
                raise ConfigError(f"--{flag.replace('_', '-')} must be at least {least} (got {value})",
                                  "smaller makes a dataset with no transition to train on" if least > 1 else None)
        generator = importlib.import_module(GENERATORS[spec.family])
        sizes = {"episode_length": args.episode_length} if args.episode_length is not None else {}
        out = writable_folder(args.out or default_data_dir())
        # One generator per dataset (Snakemake's rerun beside an orphaned job); other datasets of the folder go on.
        with folder_lock(out, f".{spec.name}.lock"):
            remove_dataset_temporaries(out, spec)
            manifest = generator.generate(spec, out, seed=args.seed, workers=args.workers, episodes=args.episodes,
                                          steps=args.steps, progress=not args.no_progress, **sizes)
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
