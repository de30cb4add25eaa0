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
from qhyer.envs.maze2d import GOAL_RADIUS, Maze2dEnv, MazeLayout
from qhyer.errors import ConfigError
from qhyer.io import atomic_path

GENERATOR = "qhyer.data.maze2d_gen"
P_GAIN, D_GAIN = 10.0, -1.0
SOLVE_THRESH = VEL_THRESH = 0.1
ACTION_NOISE = 0.5            # --noisy: act + N(0, 0.5^2)
Q_ITERATIONS, DISCOUNT = 50, 0.99
MAX_WAYPOINTS = 100           # length cap of the greedy grid rollout
WAYPOINT_JITTER = 0.2         # intermediate waypoint = cell - 0.2 * U(0, 1) per axis
# gridcraft moves (`d4rl/pointmaze/gridcraft/grid_env.py` ACT_DICT) in (row, col): NOOP, UP, DOWN, LEFT, RIGHT.
# The order matters: argmax over equal Q-values takes the first, which picks D4RL's path among equal ones.
MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)])
_KEYS = ("actions", "infos/goal", "infos/qpos", "infos/qvel", "observations", "rewards", "terminals", "timeouts")
_PROGRESS_EVERY = 10_000


class WaypointController:
    """D4RL's maze2d waypoint controller (`waypoint_controller.py`), noise-free.

    On a new target cell it runs Q-iteration on the cell grid and rolls the greedy policy out into a list of
    waypoints (each intermediate one jittered by `rng`); it then steers with PD control toward the current
    waypoint and advances when within SOLVE_THRESH of it while moving less than VEL_THRESH per step.
    The same class drives data generation (plus action noise) and serves as the Maze2d sanity oracle.
    """

    def __init__(self, layout: MazeLayout, rng: np.random.Generator):
        self.layout, self.rng = layout, rng
        self._next_state = self._transitions(layout.walls)
        self._target_cell: tuple[int, int] | None = None
        self._target = np.zeros(2)
        self._waypoints: list[np.ndarray] = []
        self._index = 0
        self._prev_position = np.zeros(2)

    @staticmethod
    def _transitions(walls: np.ndarray) -> np.ndarray:
        """(cells, 5) next cell of each move; moves into walls or off the grid stay put (TransitionModel, teps=0)."""
        rows, cols = walls.shape
        r, c = np.divmod(np.arange(rows * cols), cols)
        nr, nc = r[:, None] + MOVES[:, 0], c[:, None] + MOVES[:, 1]
        inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
        legal = inside & ~walls[np.clip(nr, 0, rows - 1), np.clip(nc, 0, cols - 1)]
        return np.where(legal, nr * cols + nc, np.arange(rows * cols)[:, None])

    @staticmethod
    def _cell(xy: np.ndarray) -> tuple[int, int]:
        return int(round(xy[0])), int(round(xy[1]))  # `gridify_state` (Python round: half to even)

    def _plan(self, position: np.ndarray, target_cell: tuple[int, int]) -> None:
        """`_new_target`: tabular Q-iteration (reward 1 in the target cell) and a greedy rollout to waypoints."""
        cols = self.layout.shape[1]
        goal = target_cell[0] * cols + target_cell[1]
        reward = (np.arange(len(self._next_state)) == goal).astype(np.float64)
        q = np.zeros(self._next_state.shape)
        for _ in range(Q_ITERATIONS):
            q = reward[:, None] + DISCOUNT * q.max(1)[self._next_state]
        start = self._cell(position)
        state, waypoints = start[0] * cols + start[1], []
        for _ in range(MAX_WAYPOINTS):
            state = self._next_state[state, np.argmax(q[state])]
            waypoint = np.array(divmod(state, cols), dtype=np.float64)
            if state != goal:
                waypoint -= self.rng.uniform(size=2) * WAYPOINT_JITTER
            waypoints.append(waypoint)
            if state == goal:
                break
        self._waypoints, self._index = waypoints, 0
        self._prev_position = np.array(start, dtype=np.float64)
        self._target_cell, self._target = target_cell, np.array(target_cell, dtype=np.float64)

    def act(self, position: np.ndarray, velocity: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, bool]:
        """(action in [-1, 1], solved): `get_action`, where solved = at the target cell and nearly still."""
        target_cell = self._cell(target)
        if target_cell != self._target_cell:
            self._plan(position, target_cell)
        moved = np.linalg.norm(self._prev_position - position)  # displacement since the last call
        solved = np.linalg.norm(position - self._target) < SOLVE_THRESH and moved < VEL_THRESH
        waypoint = self._target if solved else self._waypoints[self._index]
        action = P_GAIN * (waypoint - position) + D_GAIN * velocity
        if not solved and np.linalg.norm(position - waypoint) < SOLVE_THRESH and moved < VEL_THRESH:
            # The last waypoint is the target cell itself, so reaching it counts as solved before this runs off.
            self._index += 1
        self._prev_position = np.array(position, dtype=np.float64)
        return np.clip(action, -1.0, 1.0), bool(solved)


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
