"""QHyer CPU cost: the selective scan (ours vs the sequential step loop) and one full training step.

    .venv/bin/python benchmarks/bench_qhyer.py [--threads 1] [--repeats 3] [--device cpu]

Scan: forward + backward of `selective_scan` (time-blocked chunked scan, hand-written backward) and
`selective_scan_reference`
(one Python step per time step, autograd) at L = 60, 300, 1000 tokens, (a) at the default model size, d_inner = 256,
N = 16 (Mamba-1 defaults at QHyer's width 128), with batch sizes holding ~4k tokens as in training (64 windows x 60
tokens); (b) at the tiny size of smoke runs and tests, d_inner = 32, N = 8, batch 8.
Training step: `QHyerAgent.update` at the default config (batch 64, K = 20, 3 blocks, width 128, nf critic) on
synthetic cube-single-sized data (obs 28, action 5, full-observation goals), for each backbone.
Median of `--repeats` after one warm-up; the load average is printed since other processes slow every number.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from qhyer.agent import DataInfo
from qhyer.algorithm import QHyerAgent, QHyerConfig
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.models.hybrid import BACKBONES
from qhyer.models.scan import selective_scan, selective_scan_reference

# (batch, tokens, d_inner, N)
SCAN_SHAPES = ((64, 60, 256, 16), (16, 300, 256, 16), (4, 1000, 256, 16), (8, 60, 32, 8), (8, 300, 32, 8),
               (8, 1000, 32, 8))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    return parser.parse_args()


def median_seconds(fn, repeats: int, device: torch.device) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scan_inputs(batch: int, length: int, d_inner: int, d_state: int, device: torch.device) -> list[torch.Tensor]:
    x = torch.randn(batch, length, d_inner, device=device)
    delta = F.softplus(torch.randn(batch, length, d_inner, device=device) - 2)
    A = -torch.arange(1.0, d_state + 1, device=device).repeat(d_inner, 1)
    B, C = torch.randn(batch, length, d_state, device=device), torch.randn(batch, length, d_state, device=device)
    return [t.requires_grad_() for t in (x, delta, A, B, C, torch.ones(d_inner, device=device))]


def synthetic_cube(episodes: int = 20, length: int = 200, seed: int = 0) -> EpisodeDataset:
    rng = np.random.default_rng(seed)
    return EpisodeDataset("synthetic", np.cumsum(rng.normal(0, 0.1, (episodes * length, 28)), 0),
                          rng.uniform(-1, 1, (episodes * length, 5)), np.arange(length, episodes * length + 1, length),
                          np.arange(19, 22))


def component_seconds(agent: QHyerAgent, batch: dict[str, torch.Tensor], repeats: int,
                      device: torch.device) -> dict[str, float]:
    """Time of each part of `QHyerAgent.losses` on one batch, run the way `losses` runs it."""
    s, a = agent.normalize_obs(batch["observations"]), batch["actions"]
    g = agent.normalize_goal(batch["goals"])
    g_steps = g[:, None].expand(-1, s.shape[1], -1)
    q_tokens = torch.zeros(batch["mask"].shape, device=device)

    def flow_q_tokens():
        with torch.no_grad():
            agent.critic.q(s.flatten(0, 1), a.flatten(0, 1), g_steps.flatten(0, 1))

    def backbone():
        hidden, _ = agent.model(q_tokens, torch.cat([s, g_steps], -1), a, batch["timesteps"], batch["mask"])
        mean, log_std = agent.model.action_head(hidden)
        (mean.sum() + log_std.sum()).backward()

    parts = {"flow Q tokens, b x K (no grad)": flow_q_tokens,
             "flow NF loss, b last steps": lambda: agent.critic.loss(s[:, -1], a[:, -1], g).backward(),
             "expectile head Q(s, g), b x K": lambda: agent.q_head(s, g_steps).sum().backward(),
             "backbone + action head": backbone}
    return {name: median_seconds(fn, repeats, device) for name, fn in parts.items()}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {args.device}, {torch.get_num_threads()} thread(s), load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    print("\nselective scan, forward + backward")
    header = (f"{'L':>5s} {'batch':>5s} {'d_inner':>7s} {'N':>3s} {'blocked (ours)':>15s} {'step loop':>10s} "
              f"{'speed-up':>8s}")
    print(header + "\n" + "-" * len(header))
    for batch, length, d_inner, d_state in SCAN_SHAPES:
        inputs = scan_inputs(batch, length, d_inner, d_state, device)
        times = [median_seconds(lambda fn=fn, inputs=inputs: fn(*inputs).sum().backward(), args.repeats, device)
                 for fn in (selective_scan, selective_scan_reference)]
        print(f"{length:5d} {batch:5d} {d_inner:7d} {d_state:3d} {times[0] * 1e3:12.1f} ms {times[1] * 1e3:7.1f} ms "
              f"{times[1] / times[0]:7.1f}x")

    data = synthetic_cube()
    print("\nQHyer training step (agent.update) at the default config, batch 64, K 20, width 128, 3 blocks, nf critic")
    header = f"{'backbone':>10s} {'step':>9s} {'parameters':>11s}"
    print(header + "\n" + "-" * len(header))
    for backbone in BACKBONES:
        torch.manual_seed(0)
        cfg = QHyerConfig(backbone=backbone).for_family("ogbench_play")
        agent = QHyerAgent(cfg, DataInfo.from_dataset(get_spec("cube-single-play"), data, cfg.goal_rep)).to(device)
        sampler = agent.make_sampler(data, seed=0)
        batch = {k: v.to(device) for k, v in sampler.sample(cfg.batch_size).items()}
        agent.train()
        seconds = median_seconds(lambda agent=agent, batch=batch: agent.update(batch, 0), args.repeats, device)
        print(f"{backbone:>10s} {seconds * 1e3:6.0f} ms {sum(p.numel() for p in agent.parameters()):11,d}")
    print("\nwhere the hybrid step's time goes (forward + backward unless marked; the update adds the optimiser)")
    for name, seconds in component_seconds(agent, batch, args.repeats, device).items():
        print(f"{name:>34s} {seconds * 1e3:6.0f} ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
