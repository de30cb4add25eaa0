"""The one evaluation protocol every method runs through: batched rollouts → a tidy per-episode table.

OGBench (seohongpark/ogbench `impls/utils/evaluation.py`): the 5
fixed tasks, N episodes each (final numbers use 50), deterministic actions, success = `info['success']` at the
final step, time limits from `DatasetSpec.eval_max_steps`. D4RL (`d4rl/offline_env.py`, `get_normalized_score`):
Maze2d return = steps within 0.5 of the fixed goal over 300/600/800 steps, normalised score
100 (return - ref_min) / (ref_max - ref_min); AntMaze return is 0/1, so its score is 100 x success rate.

Batching: B episodes run in lockstep, one `policy.act` call per step for all of them; ended episodes stay in
the batch, inactive. Each episode draws its seeds from (seed, task, episode index) only (`episode_seeds`), so a
policy that acts on each episode independently gets identical per-episode results at any `num_envs`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from qhyer.data.registry import DatasetSpec
from qhyer.errors import ConfigError
from qhyer.io import atomic_path
from qhyer.rollout.eval_env import EvalEnv, episode_seeds, eval_tasks
from qhyer.rollout.policy import Policy, StepInput

COLUMNS = ("method", "dataset", "seed", "task", "episode", "success", "return", "length")


def normalized_score(spec: DatasetSpec, returns: np.ndarray | float) -> np.ndarray | float:
    """D4RL's normalised score x 100 (`get_normalized_score`); ConfigError for datasets without references."""
    if spec.ref_min_score is None or spec.ref_max_score is None:
        raise ConfigError(f"{spec.name} has no reference scores", "report its success rate instead")
    return 100.0 * (np.asarray(returns) - spec.ref_min_score) / (spec.ref_max_score - spec.ref_min_score)


def eval_horizon(spec: DatasetSpec, max_steps: int | None = None) -> int:
    """The official time limit, or `max_steps` when that is smaller (smoke runs)."""
    return min(max_steps, spec.eval_max_steps) if max_steps else spec.eval_max_steps


def make_envs(spec: DatasetSpec, n: int, max_steps: int | None = None) -> list[EvalEnv]:
    return [EvalEnv(spec, eval_horizon(spec, max_steps)) for _ in range(n)]


def _goal_input(policy: Policy, spec: DatasetSpec, goal_observations: np.ndarray) -> np.ndarray:
    if policy.goal_rep == "full":
        return goal_observations
    if policy.goal_rep == "task":
        return goal_observations[:, list(spec.goal_dims)]
    raise ConfigError(f"policy goal_rep must be 'full' or 'task' (got '{policy.goal_rep}')")


def _run_batch(policy: Policy, spec: DatasetSpec, envs: list[EvalEnv], jobs: list[tuple[int, int]], seed: int,
               horizon: int) -> list[tuple[int, int, bool, float, int]]:
    """Roll out one batch of (task, episode) jobs in lockstep; returns (task, episode, success, return, length)."""
    b = len(jobs)
    seeds = [episode_seeds(seed, task, episode) for task, episode in jobs]
    starts = [env.reset(task, s) for env, (task, _), s in zip(envs, jobs, seeds, strict=True)]
    goals = _goal_input(policy, spec, np.stack([goal for _, goal in starts]).astype(np.float32))
    observations = np.zeros((b, horizon + 1, spec.obs_dim), np.float32)
    actions = np.zeros((b, horizon, spec.action_dim), np.float32)
    rewards = np.zeros((b, horizon), np.float32)
    observations[:, 0] = np.stack([obs for obs, _ in starts])
    active, success = np.ones(b, bool), np.zeros(b, bool)
    lengths = np.zeros(b, np.int64)
    policy_seeds = np.array([s.policy for s in seeds], np.uint32)

    policy.reset(b)
    for t in range(horizon):
        step = StepInput(observations=observations[:, t], goals=goals, t=t,
                         history_observations=observations[:, :t + 1], history_actions=actions[:, :t],
                         history_rewards=rewards[:, :t], active=active.copy(), episode_seeds=policy_seeds)
        chosen = np.asarray(policy.act(step), dtype=np.float64)
        if chosen.shape != (b, spec.action_dim):
            raise ValueError(f"policy returned actions of shape {chosen.shape}, expected {(b, spec.action_dim)}")
        observations[:, t + 1] = observations[:, t]  # ended episodes keep their last observation
        for i in np.flatnonzero(active):
            obs, rewards[i, t], ended, success[i] = envs[i].step(chosen[i])
            observations[i, t + 1], actions[i, t], lengths[i] = obs, chosen[i], t + 1
            active[i] = not ended
        if not active.any():
            break
    returns = rewards.sum(1, dtype=np.float64)
    return [(task, episode, bool(success[i]), float(returns[i]), int(lengths[i]))
            for i, (task, episode) in enumerate(jobs)]


def evaluate_policy(policy: Policy, spec: DatasetSpec, *, episodes_per_task: int = 50, seed: int = 0,
                    num_envs: int = 25, method: str = "", progress: bool = False,
                    max_steps: int | None = None, tasks: tuple[int, ...] | None = None,
                    envs: list[EvalEnv] | None = None) -> pd.DataFrame:
    """Evaluate `policy` on `spec`'s protocol; one row per episode with the columns of COLUMNS.

    `max_steps` caps the episode length below the official limit (smoke runs only); `tasks` restricts the
    OGBench tasks (default all five). The caller tags the rows with how the policy was trained.
    `envs` (from `make_envs`) lets several evaluations share environments, which are slow to build for OGBench
    (about 1-2 s each); every episode resets its env from its own seed, so sharing changes no result.
    """
    for label, value in (("episodes_per_task", episodes_per_task), ("num_envs", num_envs)):
        if value < 1:
            raise ConfigError(f"{label} must be at least 1 (got {value})")
    horizon = eval_horizon(spec, max_steps)
    tasks = tuple(tasks) if tasks else eval_tasks(spec)
    unknown = sorted(set(tasks) - set(eval_tasks(spec)))
    if unknown:
        raise ConfigError(f"{spec.name} has no tasks {unknown}", f"use some of {list(eval_tasks(spec))}")
    jobs = [(task, episode) for task in tasks for episode in range(episodes_per_task)]
    if envs is None:
        envs = make_envs(spec, min(num_envs, len(jobs)), max_steps)
    elif not envs or any(env.spec != spec or env.horizon != horizon for env in envs):
        raise ConfigError(f"envs must be a non-empty list of {spec.name} environments with a {horizon}-step limit",
                          "build them with make_envs(spec, n, max_steps)")
    envs = envs[:num_envs]
    results = []
    with tqdm(total=len(jobs), desc=f"eval {method or 'policy'} {spec.name}", unit="episode",
              disable=not progress) as bar:
        for start in range(0, len(jobs), len(envs)):
            batch = jobs[start:start + len(envs)]
            results += _run_batch(policy, spec, envs[:len(batch)], batch, seed, horizon)
            bar.update(len(batch))
    frame = pd.DataFrame(results, columns=["task", "episode", "success", "return", "length"])
    frame = frame.assign(method=method, dataset=spec.name, seed=seed)
    return frame[list(COLUMNS)]


def summarize(episodes: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Per-task means plus an 'all' row (mean over tasks, OGBench's overall success). `score` is the reported
    number: Maze2d normalised score, success x 100 otherwise (AntMaze: the same as its normalised score)."""
    keys = ["method", "dataset", "seed", *(["step"] if "step" in episodes else []), "task"]
    per_task = (episodes.groupby(keys, sort=False)
                .agg(episodes=("episode", "size"), success=("success", "mean"), mean_return=("return", "mean"),
                     mean_length=("length", "mean"))
                .reset_index())
    per_task["score"] = (normalized_score(spec, per_task["mean_return"]) if spec.family == "maze2d"
                         else 100.0 * per_task["success"])
    overall = (per_task.groupby(keys[:-1], sort=False)
               .agg(episodes=("episodes", "sum"), success=("success", "mean"), mean_return=("mean_return", "mean"),
                    mean_length=("mean_length", "mean"), score=("score", "mean"))
               .reset_index().assign(task="all"))
    return pd.concat([per_task.astype({"task": str}), overall[per_task.columns]], ignore_index=True)


def write_results(episodes: pd.DataFrame, spec: DatasetSpec, path: str | Path) -> tuple[Path, Path]:
    """Write the per-episode table to `path` and its summary to `<stem>_summary.csv`, each atomically."""
    path = Path(path)
    summary_path = path.with_name(f"{path.stem}_summary.csv")
    for frame, target in ((episodes, path), (summarize(episodes, spec), summary_path)):
        with atomic_path(target) as tmp:
            frame.to_csv(tmp, index=False)
    return path, summary_path
