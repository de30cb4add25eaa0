"""Evaluation environments of every dataset family behind one small interface, reset per episode from a seed.

OGBench (seohongpark/ogbench `impls/utils/env_utils.py`, `ogbench/utils.py`): the env comes from
`ogbench.make_env_and_datasets(name, env_only=True)` with its evaluation defaults (`terminate_at_goal=True`,
`mode='task'`); task k in 1..5 is `reset(options=dict(task_id=k, render_goal=False))`; `info['goal']` is the
goal observation. D4RL mazes (qhyer/envs/maze2d.py) have one fixed task, numbered 0 here.

Every episode is a pure function of its seed: the env's generator is reseeded at each reset, and so is the one
source of randomness OGBench leaves unseeded (see `_FixedActionSpace`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from typing import NamedTuple

import gymnasium
import numpy as np
import ogbench

from qhyer.data.registry import DatasetSpec
from qhyer.envs.maze2d import make_d4rl_env

OGBENCH_TASKS = (1, 2, 3, 4, 5)
D4RL_TASK = 0


def eval_tasks(spec: DatasetSpec) -> tuple[int, ...]:
    return OGBENCH_TASKS if spec.family == "ogbench" else (D4RL_TASK,)


class EpisodeSeeds(NamedTuple):
    env: int       # env.reset(seed=...)
    actions: int   # OGBench's settling actions during reset
    policy: int    # handed to the policy (`StepInput.episode_seeds`) for stochastic sanity policies


def episode_seeds(seed: int, task: int, episode: int, checkpoint_step: int = 0) -> EpisodeSeeds:
    """Seeds of one episode, a pure function of (seed, checkpoint step, task, episode index): an episode's result
    does not depend on which batch, or which env instance, runs it. Each checkpoint of a run draws fresh episodes,
    as OGBench's main.py and QT/LSDT do (their env generators run on from one evaluation to the next), so `best`
    and `mean_last` over checkpoints are taken over different starts; the same checkpoint replays the same ones.
    (Step 0, untrained policies, gives the seeds of SeedSequence(seed): numpy pads the entropy words with zeros.)"""
    sequence = np.random.SeedSequence([seed, checkpoint_step], spawn_key=(task, episode))
    return EpisodeSeeds(*(int(s) for s in sequence.generate_state(3)))


@contextlib.contextmanager
def quiet_spaces():
    # gymnasium notes (on make and on the first reset) that OGBench's float64 space bounds are cast to float32.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*precision lowered", category=UserWarning)
        yield


def make_ogbench_env(spec: DatasetSpec, horizon: int | None = None) -> gymnasium.Env:
    kwargs = {"max_episode_steps": horizon} if horizon else {}
    with quiet_spaces():
        return ogbench.make_env_and_datasets(spec.name, env_only=True, **kwargs)


@functools.cache
def _fixed_action_space_class(cls: type) -> type:
    return type(cls.__name__, (cls,), {"__module__": cls.__module__,
                                       "action_space": property(lambda self: self._eval_action_space)})


class _FixedActionSpace:
    """OGBench's `action_space` property builds a new, unseeded Box on every access, and task resets take 2
    (cube) or 5 (puzzle) settling steps with `self.action_space.sample()` (`cube_env.py`/`puzzle_env.py`,
    `initialize_episode`), so the goal observation would depend on OS entropy. This gives the one env instance
    a class whose `action_space` is a single stored Box that `seed` reseeds per episode."""

    def __init__(self, env: gymnasium.Env):
        unwrapped = env.unwrapped
        with quiet_spaces():
            self.box = type(unwrapped).action_space.fget(unwrapped)
        unwrapped._eval_action_space = self.box
        unwrapped.__class__ = _fixed_action_space_class(type(unwrapped))

    def seed(self, seed: int) -> None:
        self.box.seed(seed)


class EvalEnv:
    """One environment that runs evaluation episodes of a dataset, each reset from its own seed."""

    def __init__(self, spec: DatasetSpec, horizon: int):
        self.spec, self.horizon = spec, horizon
        if spec.family == "ogbench":
            self.env = make_ogbench_env(spec, horizon)
            self._settle_actions = _FixedActionSpace(self.env)
        else:
            self.env = make_d4rl_env(spec.family, spec.extra["maze"])

    def reset(self, task: int, seeds: EpisodeSeeds) -> tuple[np.ndarray, np.ndarray]:
        """Start an episode of `task`; returns (observation, goal observation)."""
        if self.spec.family == "ogbench":
            self._settle_actions.seed(seeds.actions)
            with quiet_spaces():
                obs, info = self.env.reset(seed=seeds.env, options={"task_id": task, "render_goal": False})
        else:
            obs, info = self.env.reset(seed=seeds.env)
        return obs, info["goal"]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """(observation, reward, ended, success); success is `info['success']` of this step."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated or truncated), bool(info["success"])
