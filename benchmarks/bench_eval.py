"""Evaluation throughput: env steps/s with B episodes stepped together vs one episode at a time, and with the envs
stepped in W worker processes (qhyer/rollout/workers.py), with a small sequence model in the loop (a 2-layer causal
transformer, width 64, over the last `--context` steps) called once per step in this process.

    .venv/bin/python benchmarks/bench_eval.py [--datasets maze2d-umaze cube-single-play] [--episodes 20]
        [--num-envs 1 20] [--workers 1 2] [--repeats 3] [--context 20] [--threads 1]
        [--out benchmarks/results/eval_step_times.csv]

Every (envs, workers) setting does the same work: the same episodes (same seeds, so the same starts and goals) under
the same untrained model, to the full time limit (the model rarely reaches a goal). Environments (and worker
processes) are built before timing; settings are timed in turn, `--repeats` rounds, and each row is the median.
Speed-up = steps/s over the first setting's; `vs 1 worker` = over the same envs in one process. Batching shares the
model's per-call overhead among B episodes, so it is large when the env step is cheap (Maze2d, ~30 us) and bounded
by the simulator when it is not (OGBench manipulation, ~1.3 ms per step); workers divide the simulator's share.
`same results` says whether every episode's return and length agree with the first setting: float reductions inside
batched matrix products may differ in the last bits from unbatched ones, and a chaotic rollout can amplify that, so
identical results are guaranteed only for the same batch size (any number of workers) or for policies that treat
episodes independently. The CSV (one row per setting) is what `python -m qhyer.report cost` reads evaluation times
from.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from common import print_header, write_rows  # benchmarks/common.py (scripts run from their folder)
from torch import nn

from qhyer.data.registry import get_spec
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.policy import StepInput
from qhyer.rollout.protocol import eval_horizon, evaluate_policy, make_env_pool

COLUMNS = ["dataset", "num_envs", "workers", "episodes", "env_steps", "wall_s", "steps_per_s", "ms_per_env_step",
           "repeats", "model", "torch_threads", "cpus", "load_before", "same_results"]
MODEL = "2-layer causal transformer, width 64"


class TinyCausalTransformer(nn.Module):
    def __init__(self, obs_dim: int, goal_dim: int, action_dim: int, context: int, width: int = 64, layers: int = 2):
        super().__init__()
        self.embed = nn.Linear(obs_dim + goal_dim, width)
        self.position = nn.Embedding(context, width)
        layer = nn.TransformerEncoderLayer(width, nhead=4, dim_feedforward=4 * width, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(width, action_dim)

    def forward(self, observations: torch.Tensor, goals: torch.Tensor) -> torch.Tensor:
        b, k, _ = observations.shape
        tokens = torch.cat([observations, goals[:, None].expand(b, k, -1)], dim=-1)
        x = self.embed(tokens) + self.position(torch.arange(k))
        mask = nn.Transformer.generate_square_subsequent_mask(k)
        return torch.tanh(self.head(self.encoder(x, mask=mask, is_causal=True)[:, -1]))


class TransformerPolicy:
    """One forward pass per step over each episode's last `context` observations."""

    goal_rep = "task"

    def __init__(self, model: TinyCausalTransformer, context: int):
        self.model, self.context = model, context

    def reset(self, batch_size: int) -> None:
        """Stateless: the window is rebuilt from the history at every step."""

    @torch.no_grad()
    def act(self, step: StepInput) -> np.ndarray:
        window = torch.as_tensor(step.history_observations[:, -self.context:])
        return self.model(window, torch.as_tensor(step.goals)).numpy()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["maze2d-umaze", "cube-single-play"])
    parser.add_argument("--episodes", type=int, default=20, help="episodes in total (spread over the tasks)")
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 20], help="first = the baseline")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="worker processes, each tried with every --num-envs that has at least as many envs")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; rows are medians")
    parser.add_argument("--context", type=int, default=20, help="window (the sequence baselines use K = 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "eval_step_times.csv",
                        help="CSV of the rows ('' = none)")
    return parser.parse_args()


def bench_dataset(name: str, args: argparse.Namespace, load: str) -> list[dict]:
    """One row per (num_envs, workers) setting: the median over `--repeats` rounds of every setting in turn."""
    spec = get_spec(name)
    torch.manual_seed(args.seed)
    model = TinyCausalTransformer(spec.obs_dim, len(spec.goal_dims), spec.action_dim, args.context).eval()
    policy = TransformerPolicy(model, args.context)
    per_task = max(1, args.episodes // len(eval_tasks(spec)))
    settings = [(n, w) for w in args.workers for n in args.num_envs if w <= n]
    pools = {w: make_env_pool(spec, max(args.num_envs), workers=w) for w in args.workers}
    walls, frames = {s: [] for s in settings}, {}
    try:
        for _, (num_envs, workers) in itertools.product(range(args.repeats), settings):
            start = time.perf_counter()
            frames[num_envs, workers] = evaluate_policy(policy, spec, episodes_per_task=per_task, seed=args.seed,
                                                        num_envs=num_envs, envs=pools[workers])
            walls[num_envs, workers].append(time.perf_counter() - start)
    finally:
        for pool in pools.values():
            pool.close()
    reference = frames[settings[0]][["return", "length"]]
    rows = []
    for num_envs, workers in settings:
        frame, wall = frames[num_envs, workers], statistics.median(walls[num_envs, workers])
        steps = int(frame["length"].sum())
        rows.append({"dataset": spec.name, "num_envs": num_envs, "workers": workers, "episodes": len(frame),
                     "env_steps": steps, "wall_s": round(wall, 4), "steps_per_s": round(steps / wall, 1),
                     "ms_per_env_step": round(1000 * wall / steps, 4), "repeats": args.repeats, "model": MODEL,
                     "torch_threads": args.threads, "cpus": os.cpu_count(), "load_before": load,
                     "same_results": frame[["return", "length"]].equals(reference)})
    return rows


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print_header(f"{'dataset':22s} {'envs':>4s} {'workers':>7s} {'episodes':>8s} {'env steps':>9s} {'wall s':>7s} "
                 f"{'steps/s':>8s} {'speed-up':>8s} {'vs 1 worker':>11s} {'same results':>12s}",
                 extra=f", torch threads {args.threads}, median of {args.repeats}")
    rows = []
    for name in args.datasets:
        rows += (dataset_rows := bench_dataset(name, args, load))
        one_worker = {r["num_envs"]: r["steps_per_s"] for r in dataset_rows if r["workers"] == 1}
        for r in dataset_rows:
            versus = f"{r['steps_per_s'] / one_worker[r['num_envs']]:10.2f}x" if r["num_envs"] in one_worker else ""
            speedup = r["steps_per_s"] / dataset_rows[0]["steps_per_s"]
            print(f"{r['dataset']:22s} {r['num_envs']:4d} {r['workers']:7d} {r['episodes']:8d} {r['env_steps']:9d} "
                  f"{r['wall_s']:7.2f} {r['steps_per_s']:8.0f} {speedup:7.1f}x {versus:>11s} "
                  f"{'yes' if r['same_results'] else 'no':>12s}", flush=True)
    print(f"time limits: {', '.join(f'{n} {eval_horizon(get_spec(n))}' for n in args.datasets)} steps; "
          f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if str(args.out):
        write_rows(rows, COLUMNS, args.out)


if __name__ == "__main__":
    main()
