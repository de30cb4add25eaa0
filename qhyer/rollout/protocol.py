"""The one evaluation protocol every method runs through: batched rollouts → a tidy per-episode table.

OGBench (seohongpark/ogbench `impls/utils/evaluation.py`): the 5
fixed tasks, N episodes each (final numbers use 50), deterministic actions, success = `info['success']` at the
final step, time limits from `DatasetSpec.eval_max_steps`. D4RL (`d4rl/offline_env.py`, `get_normalized_score`):
Maze2d return = steps within 0.5 of the fixed goal over 300/600/800 steps, normalised score
100 (return - ref_min) / (ref_max - ref_min); AntMaze return is 0/1, so its score is 100 x success rate.

Batching: B episodes run in lockstep, one `policy.act` call per step for all of them; ended episodes stay in
the batch, inactive. Each episode draws its seeds from (seed, checkpoint step, task, episode index) only
(`episode_seeds`), so a policy that acts on each episode independently gets identical per-episode results at any
`num_envs`, and every checkpoint of a run is evaluated on fresh episodes.

Parallel evaluation (`workers` > 1, qhyer/rollout/workers.py): the envs live in worker processes, the policy
stays here and is still called once per step for all episodes, so results are identical to `workers=1` for
the same `num_envs` (the policy sees the same batches).
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
from qhyer.rollout.workers import EnvWorkers, LocalEnvs

EnvPool = LocalEnvs | EnvWorkers

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


def make_env_pool(spec: DatasetSpec, n: int, max_steps: int | None = None, workers: int = 1) -> EnvPool:
    """`n` envs in this process (`workers` = 1) or spread over `workers` processes; close it after use."""
    if workers < 1:
        raise ConfigError(f"workers must be at least 1 (got {workers})")
    if workers == 1:
        return LocalEnvs(make_envs(spec, n, max_steps))
    return EnvWorkers(spec, eval_horizon(spec, max_steps), n, workers)


def _goal_input(policy: Policy, spec: DatasetSpec, goal_observations: np.ndarray) -> np.ndarray:
    if policy.goal_rep == "full":
        return goal_observations
    if policy.goal_rep == "task":
        return goal_observations[:, list(spec.goal_dims)]
    raise ConfigError(f"policy goal_rep must be 'full' or 'task' (got '{policy.goal_rep}')")


def _run_batch(policy: Policy, spec: DatasetSpec, envs: EnvPool, jobs: list[tuple[int, int]], seed: int,
               checkpoint_step: int, horizon: int) -> list[tuple[int, int, bool, float, int]]:
    """Roll out one batch of (task, episode) jobs in lockstep in slots 0..len(jobs)-1 of `envs`; returns
    (task, episode, success, return, length) per job."""
    b = len(jobs)
    seeds = [episode_seeds(seed, task, episode, checkpoint_step) for task, episode in jobs]
    start_observations, goal_observations = envs.reset([(task, s) for (task, _), s in zip(jobs, seeds, strict=True)])
    goals = _goal_input(policy, spec, goal_observations.astype(np.float32))
    observations = np.zeros((b, horizon + 1, spec.obs_dim), np.float32)
    actions = np.zeros((b, horizon, spec.action_dim), np.float32)
    rewards = np.zeros((b, horizon), np.float32)
    observations[:, 0] = start_observations
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
        stepped = np.flatnonzero(active)
        obs, rewards[stepped, t], ended, success[stepped] = envs.step(stepped, chosen[stepped])
        observations[stepped, t + 1], actions[stepped, t], lengths[stepped] = obs, chosen[stepped], t + 1
        active[stepped] = ~ended
        if not active.any():
            break
    returns = rewards.sum(1, dtype=np.float64)
    return [(task, episode, bool(success[i]), float(returns[i]), int(lengths[i]))
            for i, (task, episode) in enumerate(jobs)]


def evaluate_policy(policy: Policy, spec: DatasetSpec, *, episodes_per_task: int = 50, seed: int = 0,
                    num_envs: int = 25, method: str = "", progress: bool = False,
                    max_steps: int | None = None, tasks: tuple[int, ...] | None = None,
                    envs: list[EvalEnv] | EnvPool | None = None, workers: int = 1,
                    checkpoint_step: int = 0) -> pd.DataFrame:
    """Evaluate `policy` on `spec`'s protocol; one row per episode with the columns of COLUMNS.

    `checkpoint_step` (the training step of the evaluated checkpoint; 0 for untrained policies) enters every
    episode's seeds with `seed`: each checkpoint gets fresh episodes, the same checkpoint the same ones.
    `max_steps` caps the episode length below the official limit (smoke runs only); `tasks` restricts the
    OGBench tasks (default all five). The caller tags the rows with how the policy was trained.
    `envs` (from `make_envs`) lets several evaluations share environments, which are slow to build for OGBench
    (about 1-2 s each); every episode resets its env from its own seed, so sharing changes no result.
    `workers` > 1 steps the envs in that many processes (when `envs` is given, it decides instead: a pool from
    `make_env_pool` may live in workers).
    """
    for label, value in (("episodes_per_task", episodes_per_task), ("num_envs", num_envs)):
        if value < 1:
            raise ConfigError(f"{label} must be at least 1 (got {value})")
    if checkpoint_step < 0:
        raise ConfigError(f"checkpoint_step must be >= 0 (got {checkpoint_step})")
    horizon = eval_horizon(spec, max_steps)
    tasks = tuple(tasks) if tasks else eval_tasks(spec)
    unknown = sorted(set(tasks) - set(eval_tasks(spec)))
    if unknown:
        raise ConfigError(f"{spec.name} has no tasks {unknown}", f"use some of {list(eval_tasks(spec))}")
    jobs = [(task, episode) for task in tasks for episode in range(episodes_per_task)]
    pool = make_env_pool(spec, min(num_envs, len(jobs)), max_steps, workers) if envs is None else _given_pool(
        envs, spec, horizon)
    batch_size = min(num_envs, len(pool))
    results = []
    try:
        with tqdm(total=len(jobs), desc=f"eval {method or 'policy'} {spec.name}", unit="episode",
                  disable=not progress) as bar:
            for start in range(0, len(jobs), batch_size):
                batch = jobs[start:start + batch_size]
                results += _run_batch(policy, spec, pool, batch, seed, checkpoint_step, horizon)
                bar.update(len(batch))
    finally:
        if envs is None:
            pool.close()
    frame = pd.DataFrame(results, columns=["task", "episode", "success", "return", "length"])
    frame = frame.assign(method=method, dataset=spec.name, seed=seed)
    return frame[list(COLUMNS)]


def _given_pool(envs: list[EvalEnv] | EnvPool, spec: DatasetSpec, horizon: int) -> EnvPool:
    pool = envs if isinstance(envs, LocalEnvs | EnvWorkers) else LocalEnvs(envs) if envs else None
    if pool is None or pool.spec != spec or pool.horizon != horizon or (
            isinstance(envs, list) and any(env.spec != spec or env.horizon != horizon for env in envs)):
        raise ConfigError(f"envs must be a non-empty list (or pool) of {spec.name} environments with a "
                          f"{horizon}-step limit", "build them with make_envs or make_env_pool(spec, n, max_steps)")
    return pool


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
