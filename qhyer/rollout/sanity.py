"""Sanity policies that run through the same evaluation path as every method: a seeded random policy and
scripted oracles, which bracket what a learned policy should score.

Oracles act from the observation and goal observation only (no simulator access), each episode on its own:
- OGBench cube/puzzle: the package's noise-free Markov oracles (`ogbench/manipspace/oracles/markov/`
  `cube_markov.py`, `button_markov.py`, as `data_gen_scripts/generate_manipspace.py` builds them) driven with the
  task: the `info` entries they read are decoded from the observation (layout of `compute_observation` in
  `cube_env.py`/`puzzle_env.py`), and the target (block and its goal position, or button and its goal state)
  comes from the goal observation. Cubes are placed lowest goal first; puzzles press the buttons of a Lights Out
  solution over GF(2), re-solved after every press. Multi-cube tasks that need unstacking are best-effort.
- D4RL Maze2d: the noise-free waypoint controller (qhyer/envs/waypoint_controller.py), replanned at every episode
  start. D4RL's reference-score script (`scripts/reference_scores/maze2d_controller.py`) reuses one controller
  without replanning after its first episode, so this oracle can score above 100. AntMaze has no oracle: it
  would need a trained ant locomotion policy.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
from ogbench.manipspace.oracles.markov.button_markov import ButtonMarkovOracle
from ogbench.manipspace.oracles.markov.cube_markov import CubeMarkovOracle

from qhyer.data.registry import PROPRIO_DIM, DatasetSpec
from qhyer.envs.maze2d import get_layout
from qhyer.envs.waypoint_controller import WaypointController
from qhyer.errors import ConfigError
from qhyer.rollout.eval_env import make_ogbench_env, quiet_spaces
from qhyer.rollout.policy import StepInput

SANITY_POLICIES = ("oracle", "random")
# compute_observation of cube_env.py / puzzle_env.py: positions are (xyz - centre) * 10, the gripper opening * 3.
XYZ_CENTER, XYZ_SCALE, GRIPPER_SCALE, BUTTON_SCALE = np.array([0.425, 0.0, 0.0]), 10.0, 3.0, 120.0
CUBE_STRIDE, BUTTON_STRIDE = 9, 4       # per-object observation entries after the 19 proprioceptive ones
ABOVE = 0.16                            # the Markov oracles' `above_threshold` (effector z, m)
CUBE_SUCCESS = 0.04                     # cube_env._compute_successes


def _episode_seeds(step: StepInput) -> np.ndarray:
    if step.episode_seeds is None:
        raise ValueError("sanity policies need StepInput.episode_seeds (set by qhyer.rollout.protocol)")
    return step.episode_seeds


class RandomPolicy:
    """Uniform actions in [-1, 1], from a generator seeded per episode."""

    goal_rep = "task"

    def __init__(self, action_dim: int):
        self.action_dim = action_dim
        self._rngs: list[np.random.Generator] = []

    def reset(self, batch_size: int) -> None:
        self._rngs = []

    def act(self, step: StepInput) -> np.ndarray:
        if step.t == 0:
            self._rngs = [np.random.default_rng(s) for s in _episode_seeds(step)]
        return np.stack([rng.uniform(-1.0, 1.0, self.action_dim) for rng in self._rngs])


class MazeOraclePolicy:
    """Maze2d: the waypoint controller toward the goal xy, one per episode (jitter seeded per episode)."""

    goal_rep = "task"

    def __init__(self, spec: DatasetSpec):
        self.layout = get_layout(spec.extra["maze"])
        self._controllers: list[WaypointController] = []

    def reset(self, batch_size: int) -> None:
        self._controllers = []

    def act(self, step: StepInput) -> np.ndarray:
        if step.t == 0:
            self._controllers = [WaypointController(self.layout, np.random.default_rng(s))
                                 for s in _episode_seeds(step)]
        obs = step.observations.astype(np.float64)
        return np.stack([controller.act(o[:2], o[2:4], goal)[0]
                         for controller, o, goal in zip(self._controllers, obs, step.goals, strict=True)])


@contextlib.contextmanager
def _global_numpy_seed(seed: int) -> Iterator[None]:
    """The OGBench oracles draw their post-task arm pose from global np.random: seed it per episode, then
    give the caller its stream back."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _position(obs: np.ndarray, start: int) -> np.ndarray:
    return obs[start:start + 3] / XYZ_SCALE + XYZ_CENTER


def _yaw(obs: np.ndarray, cos_index: int) -> np.ndarray:
    return np.array([math.atan2(obs[cos_index + 1], obs[cos_index])])


def _proprio_info(obs: np.ndarray) -> dict[str, np.ndarray]:
    # joint pos (6), joint vel (6), effector pos (3), effector yaw cos/sin, gripper opening, gripper contact
    return {"proprio/effector_pos": _position(obs, 12), "proprio/effector_yaw": _yaw(obs, 15),
            "proprio/gripper_opening": obs[17:18] / GRIPPER_SCALE, "proprio/gripper_contact": obs[18:19]}


def lights_out_presses(rows: int, cols: int, toggle: np.ndarray) -> np.ndarray:
    """Buttons to press once each so that exactly the `toggle` mask flips (Lights Out: a press flips the button
    and its 4 neighbours, `puzzle_env.py` post_step): Gaussian elimination over GF(2), free variables 0."""
    n = rows * cols
    effect = np.zeros((n, n), np.uint8)  # effect[j, i]: pressing i flips j
    for i in range(n):
        r, c = divmod(i, cols)
        for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            if 0 <= r + dr < rows and 0 <= c + dc < cols:
                effect[(r + dr) * cols + c + dc, i] = 1
    system = np.concatenate([effect, toggle.astype(np.uint8)[:, None]], axis=1)
    pivots, row = [], 0
    for col in range(n):
        hit = np.flatnonzero(system[row:, col]) + row
        if len(hit) == 0:
            continue
        system[[row, hit[0]]] = system[[hit[0], row]]
        others = np.flatnonzero(system[:, col])
        others = others[others != row]
        system[others] ^= system[row]
        pivots.append(col)
        row += 1
        if row == n:
            break
    if system[row:, n].any():
        raise ValueError("these button states cannot be reached from each other")
    presses = np.zeros(n, bool)
    presses[pivots] = system[:len(pivots), n].astype(bool)
    return presses


class _CubeTask:
    """Feeds one CubeMarkovOracle the task: cubes are placed one at a time, the lowest goal first."""

    def __init__(self, num_cubes: int):
        self.num_cubes, self.target = num_cubes, None

    def info(self, obs: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
        info = _proprio_info(obs)
        starts = [PROPRIO_DIM + CUBE_STRIDE * i for i in range(self.num_cubes)]
        blocks, goals = np.stack([_position(obs, s) for s in starts]), np.stack([_position(goal, s) for s in starts])
        placed = np.linalg.norm(blocks - goals, axis=1) <= CUBE_SUCCESS
        # the oracle's "gripper open" and "above": it has let go of the cube and lifted the arm
        released = info["proprio/gripper_contact"][0] < 0.1 and info["proprio/effector_pos"][2] > ABOVE
        if self.target is None or (placed[self.target] and released and not placed.all()):
            todo = [i for i in np.argsort(goals[:, 2], kind="stable") if not placed[i]]
            self.target = int(todo[0]) if todo else 0
        for i, s in enumerate(starts):
            info[f"privileged/block_{i}_pos"], info[f"privileged/block_{i}_yaw"] = blocks[i], _yaw(obs, s + 7)
        info["privileged/target_block"] = self.target
        info["privileged/target_block_pos"] = goals[self.target]
        info["privileged/target_block_yaw"] = _yaw(goal, starts[self.target] + 7)
        return info


class _ButtonTask:
    """Feeds one ButtonMarkovOracle the task: the next press of a Lights Out solution, re-solved per press."""

    def __init__(self, rows: int, cols: int, button_tops: np.ndarray):
        self.rows, self.cols, self.tops = rows, cols, button_tops
        self.target, self.target_state = None, 0

    def info(self, obs: np.ndarray, goal: np.ndarray) -> dict[str, np.ndarray]:
        info = _proprio_info(obs)
        index = PROPRIO_DIM + BUTTON_STRIDE * np.arange(self.rows * self.cols) + 1  # "is on" entry of the one-hot
        states, goal_states = (obs[index] > 0.5).astype(np.int64), (goal[index] > 0.5).astype(np.int64)
        pressed = self.target is not None and states[self.target] == self.target_state
        if self.target is None or (pressed and info["proprio/effector_pos"][2] > ABOVE):
            presses = lights_out_presses(self.rows, self.cols, states != goal_states)
            self.target = int(np.argmax(presses))  # button 0, already in its state, once nothing is left
            self.target_state = 1 - states[self.target] if presses.any() else states[self.target]
        info.update({f"privileged/button_{i}_state": s for i, s in enumerate(states)})
        info["privileged/target_button"] = self.target
        info["privileged/target_button_state"] = self.target_state
        info["privileged/target_button_top_pos"] = self.tops[self.target]
        return info


class ManipulationOraclePolicy:
    """OGBench cube/puzzle: the package's Markov oracle, noise-free, one per episode."""

    goal_rep = "full"  # the target is read from the goal observation

    def __init__(self, spec: DatasetSpec):
        self.spec = spec
        self.cube = spec.env_id.startswith("cube-")
        if not self.cube and not spec.env_id.startswith("puzzle-"):
            raise ConfigError(f"no scripted oracle for {spec.name}", "use a cube-* or puzzle-* dataset")
        # A reference env of the same task: the oracles read its arm sampling bounds, puzzles its button sites.
        self.env = make_ogbench_env(spec)
        with quiet_spaces():
            self.env.reset(seed=0, options={"task_id": 1})
        if self.cube:
            self.num_cubes = (spec.obs_dim - PROPRIO_DIM) // CUBE_STRIDE
        else:
            self.rows, self.cols = map(int, spec.env_id.split("-")[1].split("x"))
            site = self.env.unwrapped.data.site
            self.button_tops = np.stack([site(f"btntop_{i}").xpos.copy() for i in range(self.rows * self.cols)])
        self._episodes: list[tuple[CubeMarkovOracle | ButtonMarkovOracle, _CubeTask | _ButtonTask]] = []

    def _new_episode(self) -> tuple[CubeMarkovOracle | ButtonMarkovOracle, _CubeTask | _ButtonTask]:
        if self.cube:
            return CubeMarkovOracle(env=self.env), _CubeTask(self.num_cubes)
        # gripper_always_closed as generate_manipspace.py sets it for puzzles
        return ButtonMarkovOracle(env=self.env, gripper_always_closed=True), _ButtonTask(self.rows, self.cols,
                                                                                         self.button_tops)

    def reset(self, batch_size: int) -> None:
        self._episodes = []

    def act(self, step: StepInput) -> np.ndarray:
        obs, goals = step.observations.astype(np.float64), step.goals.astype(np.float64)
        if step.t == 0:
            self._episodes = [self._new_episode() for _ in range(len(obs))]
            for (oracle, task), o, g, seed in zip(self._episodes, obs, goals, _episode_seeds(step), strict=True):
                with _global_numpy_seed(int(seed)):
                    oracle.reset(o, task.info(o, g))
        actions = np.zeros((len(obs), self.spec.action_dim))
        for i in np.flatnonzero(step.active):
            oracle, task = self._episodes[i]
            actions[i] = oracle.select_action(obs[i], task.info(obs[i], goals[i]))
        return actions


def make_sanity_policy(name: str, spec: DatasetSpec):
    """'random' or 'oracle' for `spec` (a `qhyer.rollout.Policy`)."""
    if name == "random":
        return RandomPolicy(spec.action_dim)
    if name != "oracle":
        raise ConfigError(f"unknown sanity policy '{name}'", f"use one of: {', '.join(SANITY_POLICIES)}")
    if spec.family == "ogbench":
        return ManipulationOraclePolicy(spec)
    if spec.family == "maze2d":
        return MazeOraclePolicy(spec)
    raise ConfigError(f"no scripted oracle for {spec.name}: AntMaze needs a trained ant policy", "use 'random'")
