"""Evaluation throughput: env steps/s with B episodes stepped together vs one episode at a time, with a small
sequence model in the loop (a 2-layer causal transformer, width 64, over the last `--context` steps).

    .venv/bin/python benchmarks/bench_eval.py [--datasets maze2d-umaze cube-single-play] [--episodes 20]
        [--num-envs 1 20] [--context 20] [--threads 1]

Both runs do the same work: the same episodes (same seeds, so the same starts and goals) under the same untrained
model, to the full time limit (the model rarely reaches a goal). Environments are built before timing. Speed-up
= batched steps/s over one-at-a-time steps/s; the gain is the model's per-call overhead shared by B episodes,
so it is large when the env step is cheap (Maze2d, ~30 us) and bounded by the simulator when it is not (OGBench
manipulation, ~1.3 ms per step). `same results` says whether every episode's return and length agree: float
reductions inside batched matrix products may differ in the last bits from unbatched ones, and a chaotic rollout
can amplify that, so identical results are guaranteed only for policies that treat episodes independently.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import print_header  # benchmarks/common.py (scripts run from their folder)
from torch import nn

from qhyer.data.registry import get_spec
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.policy import StepInput
from qhyer.rollout.protocol import eval_horizon, evaluate_policy, make_envs


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
    parser.add_argument("--context", type=int, default=20, help="window (the sequence baselines use K = 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, the same for every run")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print_header(f"{'dataset':22s} {'envs':>4s} {'episodes':>8s} {'env steps':>9s} {'wall s':>7s} {'steps/s':>8s} "
                 f"{'speed-up':>8s} {'same results':>12s}", extra=f", torch threads {args.threads}")
    for name in args.datasets:
        spec = get_spec(name)
        torch.manual_seed(args.seed)
        model = TinyCausalTransformer(spec.obs_dim, len(spec.goal_dims), spec.action_dim, args.context).eval()
        policy = TransformerPolicy(model, args.context)
        per_task = max(1, args.episodes // len(eval_tasks(spec)))
        envs = make_envs(spec, max(args.num_envs))
        baseline = reference = None
        for num_envs in args.num_envs:
            start = time.perf_counter()
            frame = evaluate_policy(policy, spec, episodes_per_task=per_task, seed=args.seed, num_envs=num_envs,
                                    envs=envs)
            wall = time.perf_counter() - start
            steps = int(frame["length"].sum())
            rate = steps / wall
            baseline = baseline or rate
            reference = frame if reference is None else reference
            same = frame[["return", "length"]].equals(reference[["return", "length"]])
            print(f"{spec.name:22s} {num_envs:4d} {len(frame):8d} {steps:9d} {wall:7.2f} {rate:8.0f} "
                  f"{rate / baseline:7.1f}x {'yes' if same else 'no':>12s}")
    print(f"time limits: {', '.join(f'{n} {eval_horizon(get_spec(n))}' for n in args.datasets)} steps")


if __name__ == "__main__":
    main()
