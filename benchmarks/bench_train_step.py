"""CPU time of one training update for every method, at its default size and at equal width/depth/batch, eager and
(with `--compile`) under `torch.compile` side by side.

    .venv/bin/python benchmarks/bench_train_step.py [--methods qhyer dt ...] [--repeats 5] [--threads 1]
        [--equal-width 64 --equal-layers 2 --equal-batch 32] [--compile] [--out benchmarks/results/cpu_step_times.csv]

Data: a synthetic dataset with cube-single's sizes (obs 28, act 5; 5 episodes × 200 rows), so the numbers measure
the update alone (IQL, which trains on D4RL files only: AntMaze's sizes, obs 29, act 8, with sparse rewards).
The "default" rows are each method's config defaults, which the `paper` budget leaves as they are;
the "equal" rows give the sequence models (QHyer, DT, QT, LSDT) the same width, depth and batch; QHyer's target is
≤ 1.5× DT's step there. Each row is the median of `--repeats` timed updates after warm-up (compiled: after the
compiling calls). Compiled = `torch.compile` of the agent's loss function (model, critic and losses, inductor; the
backward and the optimizer step stay eager), the same as `train.compile=true`. The CSV (one row per method, size and
mode) is the CPU time table `python -m qhyer.report cost` reads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_rows  # benchmarks/common.py (scripts run from their folder)

from qhyer.agent import DataInfo, dataset_family
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.methods import METHODS, method_classes

SEQUENCE_METHODS = ("qhyer", "dt", "qt", "lsdt")
COLUMNS = ["method", "size", "mode", "params", "ms_per_update", "repeats", "torch_threads", "torch", "cpus",
           "load_before"]
WARMUP = {"eager": 1, "compiled": 3}  # the first compiled calls compile (and may recompile once)


BENCH_DATASETS = {"iql": "antmaze-large-play-v2"}  # methods timed on another dataset's sizes than cube-single's


def synthetic_dataset(name: str = "cube-single-play-v0", episodes: int = 5, length: int = 200) -> EpisodeDataset:
    spec = get_spec(name)
    rng = np.random.default_rng(0)
    rows = episodes * length
    rewards = None if spec.family == "ogbench" else (rng.random(rows) < 0.01).astype(np.float32)
    return EpisodeDataset(spec.name, np.cumsum(rng.normal(0, 0.1, (rows, spec.obs_dim)), 0),
                          rng.uniform(-1, 1, (rows, spec.action_dim)), np.arange(length, rows + 1, length),
                          spec.goal_dims, rewards=rewards, source=tempfile.gettempdir())


def time_update(method: str, overrides: dict, dataset: EpisodeDataset, repeats: int, mode: str) -> tuple[float, int]:
    """(median seconds per update, trainable parameters) of a fresh agent, eager or compiled."""
    config_cls, agent_cls = method_classes(method)
    spec = get_spec(dataset.name)
    cfg = config_cls(**overrides).for_family(dataset_family(spec)).for_budget(100_000)
    torch.manual_seed(0)
    agent = agent_cls(cfg, DataInfo.from_dataset(spec, dataset, cfg.goal_rep))
    if mode == "compiled":
        agent.wrap_loss_functions(compile_mode="default")  # as train.compile=true (QT compiles its two losses)
    sampler = agent.make_sampler(dataset, seed=0)
    for step in range(WARMUP[mode]):  # allocations, lazy init, compilation
        agent.update(sampler.sample(cfg.batch_size), step)
    times = []
    for step in range(repeats):
        batch = sampler.sample(cfg.batch_size)
        start = time.perf_counter()
        agent.update(batch, step + 1)
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in agent.parameters() if p.requires_grad)
    return statistics.median(times), params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--equal-width", type=int, default=64)
    parser.add_argument("--equal-layers", type=int, default=2)
    parser.add_argument("--equal-batch", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="also time each row under torch.compile")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cpu_step_times.csv",
                        help="CSV of the rows ('' = none)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    dataset = synthetic_dataset()
    equal = {"embed_dim": args.equal_width, "n_layers": args.equal_layers, "batch_size": args.equal_batch,
             "n_heads": 1}
    rows = [(m, "default", {}) for m in args.methods]
    rows += [(m, "equal", {**equal, **({"conv_dim": args.equal_width // 2} if m == "lsdt" else {})})
             for m in args.methods if m in SEQUENCE_METHODS]
    modes = ["eager", "compiled"] if args.compile else ["eager"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {args.repeats} timed updates, "
          f"{os.cpu_count()} CPUs, load average before: {load}")
    print(f"{'method':8s} {'size':8s} {'params':>10s} " + " ".join(f"{m + ' ms':>12s}" for m in modes)
          + (f" {'speed-up':>8s}" if args.compile else ""))
    results, table = {}, []
    for method, size, overrides in rows:
        for mode in modes:
            data = synthetic_dataset(BENCH_DATASETS[method]) if method in BENCH_DATASETS else dataset
            seconds, params = time_update(method, overrides, data, args.repeats, mode)
            results[(method, size, mode)] = seconds
            table.append({"method": method, "size": size, "mode": mode, "params": params,
                          "ms_per_update": round(1000 * seconds, 3), "repeats": args.repeats,
                          "torch_threads": args.threads, "torch": torch.__version__, "cpus": os.cpu_count(),
                          "load_before": load})
        times = " ".join(f"{1000 * results[(method, size, m)]:12.1f}" for m in modes)
        speedup = (f" {results[(method, size, 'eager')] / results[(method, size, 'compiled')]:7.2f}x"
                   if args.compile else "")
        print(f"{method:8s} {size:8s} {params:10,d} {times}{speedup}", flush=True)
    if ("qhyer", "equal", "eager") in results and ("dt", "equal", "eager") in results:
        ratio = results[("qhyer", "equal", "eager")] / results[("dt", "equal", "eager")]
        print(f"QHyer / DT at equal size (eager): {ratio:.2f}x (target <= 1.5x)")
    if str(args.out):
        write_rows(table, COLUMNS, args.out)


if __name__ == "__main__":
    main()
