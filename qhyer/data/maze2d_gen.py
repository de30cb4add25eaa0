"""Regenerate D4RL maze2d-{umaze,medium,large}-v1 locally, in D4RL's hdf5 layout.

Follows Farama-Foundation/D4RL `scripts/generation/generate_maze2d_datasets.py` (with `--noisy`) and
`d4rl/pointmaze/waypoint_controller.py`:
- One continuous run: the env is reset once; a random navigation target (uniform empty-or-goal cell +
  U(-0.1, 0.1)) is redrawn whenever the controller reports "solved" or `max_episode_steps` (300/600/800) steps
  have passed since the last target. The physical state is never reset.
- Waypoint controller: Q-iteration over maze cells, PD control (p 10, d -1), thresholds 0.1, jittered
  waypoints; action noise N(0, 0.5^2) per component, then clip to [-1, 1].
- Rows store s_t, a_t, the current target (`infos/goal`) and the true simulator state (`infos/qpos`,
  `infos/qvel`). The script's quirk is kept: on a row whose done flag is set, the observation variable is not
  advanced, so the next row repeats it (the simulator state in `infos/*` moves on).
- Flags as in the released v1 files (D4RL issues #85 and #176): `timeouts` marks the done rows (target solved or
  step limit), `terminals` is all False ("no terminal states").
- Sparse reward relabelled as `scripts/generation/relabel_maze2d_rewards.py` does: 1 where observation xy is
  within 0.5 of the fixed evaluation goal ('G' cell), evaluated on s_t (D4RL's off-by-one, issue #194).
Deliberate differences: randomness comes from three seeded streams (env, waypoint jitter, action noise) of
`SeedSequence(seed)` instead of unseeded global `np.random`, so a file is reproducible bit for bit; rows go into
preallocated float32 arrays. The run is one trajectory, so it is inherently sequential: `workers` is accepted
for CLI uniformity and ignored.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from qhyer.data.manifest import manifest_path, write_manifest
from qhyer.data.registry import DatasetSpec
from qhyer.envs.maze2d import GOAL_RADIUS, Maze2dEnv
from qhyer.envs.waypoint_controller import (
    D_GAIN,
    DISCOUNT,
    P_GAIN,
    Q_ITERATIONS,
    SOLVE_THRESH,
    VEL_THRESH,
    WAYPOINT_JITTER,
    WaypointController,
)
from qhyer.errors import ConfigError
from qhyer.io import atomic_path

GENERATOR = "qhyer.data.maze2d_gen"
ACTION_NOISE = 0.5            # --noisy: act + N(0, 0.5^2)
_KEYS = ("actions", "infos/goal", "infos/qpos", "infos/qvel", "observations", "rewards", "terminals", "timeouts")
_PROGRESS_EVERY = 10_000


def rollout(maze: str, steps: int, horizon: int, seed: int, progress: bool = False) -> dict[str, np.ndarray]:
    """The one continuous noisy run of `steps` rows, in D4RL's keys and dtypes (rewards relabelled)."""
    env_seed, jitter_seed, noise_seed = np.random.SeedSequence(seed).spawn(3)
    env = Maze2dEnv(maze)
    controller = WaypointController(env.layout, np.random.default_rng(jitter_seed))
    noise = np.random.default_rng(noise_seed)
    data = {key: np.zeros((steps, 2), np.float32) for key in ("actions", "infos/goal", "infos/qpos", "infos/qvel")}
    data["observations"] = np.zeros((steps, 4), np.float32)
    data["timeouts"] = np.zeros(steps, np.bool_)

    obs, _ = env.reset(seed=int(env_seed.generate_state(1)[0]))
    target = env.layout.random_location(env.np_random)
    since_target = 0
    with tqdm(total=steps, desc=f"maze2d-{maze}", unit="step", unit_scale=True, disable=not progress) as bar:
        for i in range(steps):
            action, done = controller.act(obs[:2], obs[2:], target)
            action = np.clip(action + noise.normal(0.0, ACTION_NOISE, 2), -1.0, 1.0)
            done = done or since_target >= horizon
            data["observations"][i] = obs
            data["actions"][i] = action
            data["infos/goal"][i] = target
            data["infos/qpos"][i] = env.data.qpos
            data["infos/qvel"][i] = env.data.qvel
            data["timeouts"][i] = done
            next_obs = env.step(action)[0]
            since_target += 1
            if done:
                target, since_target = env.layout.random_location(env.np_random), 0
            else:  # on done rows the script keeps the stale observation (see the module docstring)
                obs = next_obs
            if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == steps:
                bar.update(i + 1 - bar.n)

    goal = np.array(env.layout.goal_cell, dtype=np.float32)
    data["rewards"] = (np.linalg.norm(data["observations"][:, :2] - goal, axis=1) <= GOAL_RADIUS).astype(np.float32)
    data["terminals"] = np.zeros(steps, np.bool_)
    return data


def write_hdf5(path: Path, data: dict[str, np.ndarray]) -> None:
    """D4RL's flat layout (gzip, as the script writes it); no time stamps, so equal data gives equal bytes."""
    with h5py.File(path, "w") as f:
        for key in _KEYS:
            f.create_dataset(key, data=data[key], compression="gzip", track_times=False)


def generate(spec: DatasetSpec, out_dir: str | Path, *, seed: int = 0, workers: int = 1, episodes: int | None = None,
             steps: int | None = None, progress: bool = True, episode_length: int | None = None) -> dict[str, Any]:
    """Write `<name>.hdf5` and its manifest under `out_dir`; return the manifest.

    `steps` rows (default: `spec.total_steps`, 1M/2M/4M). `workers` is ignored: one continuous run cannot be
    split. On any error or interrupt no file of the dataset is left behind.
    """
    if spec.family != "maze2d":
        raise ConfigError(f"{spec.name} is not a Maze2d dataset", "use the generator of its family")
    if episodes is not None or episode_length is not None:
        raise ConfigError("--episodes and --episode-length apply to OGBench datasets only",
                          "size Maze2d datasets with --steps")
    steps = spec.total_steps if steps is None else steps
    for label, value, minimum in (("steps", steps, 1), ("workers", workers, 1), ("seed", seed, 0)):
        if value < minimum:
            raise ConfigError(f"{label} must be at least {minimum} (got {value})")
    maze = spec.extra["maze"]

    start = time.perf_counter()
    data = rollout(maze, steps, spec.eval_max_steps, seed, progress)
    path = Path(out_dir) / spec.train_file
    config = {
        "env_id": spec.env_id, "maze": maze, "steps": steps, "max_episode_steps": spec.eval_max_steps,
        "controller": {"p_gain": P_GAIN, "d_gain": D_GAIN, "solve_thresh": SOLVE_THRESH, "vel_thresh": VEL_THRESH,
                       "q_iterations": Q_ITERATIONS, "discount": DISCOUNT, "waypoint_jitter": WAYPOINT_JITTER},
        "action_noise_std": ACTION_NOISE,
        "reward": "sparse, |obs_t[:2] - goal cell| <= 0.5 (relabel_maze2d_rewards.py)",
        "seeds": "numpy SeedSequence(seed).spawn(3): env, waypoint jitter, action noise",
        "reference": "Farama-Foundation/D4RL scripts/generation/generate_maze2d_datasets.py --noisy",
    }  # `workers` is not part of it: it changes nothing
    published = False
    try:
        with atomic_path(path) as tmp:
            write_hdf5(tmp, data)
            published = True
        return write_manifest(path, dataset=spec.name, generator=GENERATOR, config=config, seed=seed, files=[path],
                              transitions={"train": steps}, wall_time_s=time.perf_counter() - start)
    except BaseException:
        if published:  # a dataset without its manifest is worse than none
            for stale in (path, manifest_path(path)):
                stale.unlink(missing_ok=True)
        raise
