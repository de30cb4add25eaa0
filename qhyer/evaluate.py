"""Evaluate a trained run folder with the shared evaluation layer:

    python -m qhyer.evaluate runs/quick/main/default/qhyer/cube-single-play-v0/seed0 --episodes-per-task 50

Evaluates every checkpoint the run's evaluation schedule names (eval.every / eval.aggregate; by default the final
one) and writes `<run>/eval_episodes.csv`: one row per episode, tagged with the run's identity and the checkpoint's
training step.

An unfinished run (no summary.json, or fewer steps trained than configured) is refused; `--allow-partial`
evaluates its last checkpoint, whose rows then carry the step it actually reached.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from qhyer.errors import ConfigError, cli_main
from qhyer.io import folder_lock
from qhyer.run_folder import check_finished, evaluate_run, read_run_config
from qhyer.trainer import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qhyer.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--episodes-per-task", type=int, default=None, help="default: the run's eval config")
    parser.add_argument("--num-envs", type=int, default=None, help="episodes stepped together")
    parser.add_argument("--workers", type=int, default=None,
                        help="processes that step the envs (default: the run's eval.workers, 1 = this process)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap on episode length (0 = official limit)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--allow-partial", action="store_true",
                        help="evaluate an unfinished run's last checkpoint (rows say the step it reached)")
    args = parser.parse_args(argv)
    for flag in ("episodes_per_task", "num_envs", "workers"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.max_steps < 0 or args.threads < 0:
        raise ConfigError("--max-steps and --threads must be >= 0 (0: the default)")
    resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = read_run_config(args.run_dir)
    if not args.allow_partial:
        check_finished(args.run_dir, cfg)
    eval_cfg = dataclasses.replace(cfg.eval, episodes_per_task=args.episodes_per_task or cfg.eval.episodes_per_task,
                                   num_envs=args.num_envs or cfg.eval.num_envs,
                                   workers=args.workers or cfg.eval.workers)
    cfg = dataclasses.replace(cfg, eval=eval_cfg, train=dataclasses.replace(cfg.train, progress=not args.no_progress))
    with folder_lock(args.run_dir):  # a trainer or another evaluation of this folder fails at once
        headline = evaluate_run(args.run_dir, cfg, device=args.device, max_steps=args.max_steps or None,
                                partial=args.allow_partial)
    print(f"{cfg.method.name} {cfg.dataset} seed {cfg.seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in headline.items()))
    return 0


if __name__ == "__main__":
    cli_main(main)
