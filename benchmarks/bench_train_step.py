"""CPU time of one training update for every method, at its default size and at equal width/depth/batch.

    .venv/bin/python benchmarks/bench_train_step.py [--methods qhyer dt ...] [--repeats 3] [--threads 1]
        [--equal-width 64 --equal-layers 2 --equal-batch 32]

Data: a synthetic dataset with cube-single's sizes (obs 28, act 5; 5 episodes × 200 rows), so the numbers measure
the update alone. The "equal" rows give the sequence models (QHyer, DT, QT, LSDT) the same width, depth and batch;
QHyer's target is ≤ 1.5× DT's step there.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from qhyer.agent import DataInfo, dataset_family
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.methods import METHODS, method_classes

SEQUENCE_METHODS = ("qhyer", "dt", "qt", "lsdt")


def synthetic_dataset(episodes: int = 5, length: int = 200) -> EpisodeDataset:
    spec = get_spec("cube-single-play-v0")
    rng = np.random.default_rng(0)
    rows = episodes * length
    return EpisodeDataset(spec.name, np.cumsum(rng.normal(0, 0.1, (rows, spec.obs_dim)), 0),
                          rng.uniform(-1, 1, (rows, spec.action_dim)), np.arange(length, rows + 1, length),
                          spec.goal_dims, source=tempfile.gettempdir())


def time_update(method: str, overrides: dict, dataset: EpisodeDataset, repeats: int) -> tuple[float, int]:
    config_cls, agent_cls = method_classes(method)
    spec = get_spec(dataset.name)
    cfg = config_cls(**overrides).for_family(dataset_family(spec)).for_budget(100_000)
    agent = agent_cls(cfg, DataInfo.from_dataset(spec, dataset, cfg.goal_rep))
    sampler = agent.make_sampler(dataset, seed=0)
    agent.update(sampler.sample(cfg.batch_size), 0)  # warm-up (allocations, lazy init)
    start = time.perf_counter()
    for step in range(repeats):
        agent.update(sampler.sample(cfg.batch_size), step + 1)
    params = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    return (time.perf_counter() - start) / repeats, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--equal-width", type=int, default=64)
    parser.add_argument("--equal-layers", type=int, default=2)
    parser.add_argument("--equal-batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = synthetic_dataset()
    equal = {"embed_dim": args.equal_width, "n_layers": args.equal_layers, "batch_size": args.equal_batch,
             "n_heads": 1}
    rows = [(m, "default", {}) for m in args.methods]
    rows += [(m, "equal", {**equal, **({"conv_dim": args.equal_width // 2} if m == "lsdt" else {})})
             for m in args.methods if m in SEQUENCE_METHODS]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} timed updates each")
    print(f"{'method':8s} {'size':8s} {'params':>10s} {'ms/update':>10s}")
    results = {}
    for method, size, overrides in rows:
        seconds, params = time_update(method, overrides, dataset, args.repeats)
        results[(method, size)] = seconds
        print(f"{method:8s} {size:8s} {params:10,d} {1000 * seconds:10.1f}", flush=True)
    if ("qhyer", "equal") in results and ("dt", "equal") in results:
        ratio = results[("qhyer", "equal")] / results[("dt", "equal")]
        print(f"QHyer / DT at equal size: {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
