"""OGBench regeneration speed: steps/s with 1 and N workers and the full-size time each implies.

    .venv/bin/python benchmarks/bench_generation.py [--datasets cube-single-play puzzle-4x5-play]
        [--episodes 4] [--episode-length 1001] [--workers 1 2]

Times are end to end (worker start-up, env construction, rollouts, compression, checksums), as a user sees
them; with few episodes the start-up of spawned workers (a few seconds) weighs on the multi-worker rate.
The load average is printed because other processes on the machine slow every rate down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import print_header  # benchmarks/common.py (scripts run from their folder)

from qhyer.data import ogbench_gen
from qhyer.data.registry import get_spec


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["cube-single-play", "puzzle-4x5-play"])
    parser.add_argument("--episodes", type=int, default=4, help="training episodes per run (no validation below 10)")
    parser.add_argument("--episode-length", type=int, default=None, help="rows per episode (default: official 1001)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def format_duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


def main() -> None:
    args = parse_args()
    print_header(f"{'dataset':22s} {'workers':>7s} {'rows':>7s} {'wall s':>7s} {'steps/s':>8s} {'speed-up':>8s} "
                 f"{'full rows':>10s} {'full time':>10s}")
    for name in args.datasets:
        spec = get_spec(name)
        full_rows = (spec.train_episodes + spec.val_episodes) * spec.episode_length
        base_rate = None
        for workers in args.workers:
            with tempfile.TemporaryDirectory(prefix="bench_generation_") as out:
                start = time.perf_counter()
                manifest = ogbench_gen.generate(spec, out, seed=args.seed, workers=workers, episodes=args.episodes,
                                                episode_length=args.episode_length, progress=False)
                wall = time.perf_counter() - start
            rows = sum(manifest["transitions"].values())
            rate = rows / wall
            base_rate = base_rate or rate
            print(f"{spec.name:22s} {workers:7d} {rows:7d} {wall:7.1f} {rate:8.0f} {rate / base_rate:7.2f}x "
                  f"{full_rows:10,d} {format_duration(full_rows / rate):>10s}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
