"""Parallel evaluation (qhyer/rollout/workers.py): envs stepped in worker processes give the same per-episode
results as the one-process evaluation, for the same seeds and batch size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from test_trainer import tiny_config  # tests/ (pytest puts the test folder on sys.path)

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.evaluate import main as evaluate_cli
from qhyer.rollout.eval_env import eval_tasks
from qhyer.rollout.policy import StepInput
from qhyer.rollout.protocol import evaluate_policy, make_env_pool
from qhyer.rollout.sanity import make_sanity_policy
from qhyer.rollout.workers import EnvWorkers
from qhyer.run_folder import evaluate_run
from qhyer.trainer import train

CUBE = get_spec("cube-single-play")
UMAZE = get_spec("maze2d-umaze")


class MLPPolicy:
    """A small untrained network acting on the whole batch at once (one call per step, as a trained model)."""

    goal_rep = "task"

    def __init__(self, spec):
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(spec.obs_dim + len(spec.goal_dims), 32), torch.nn.Tanh(),
                                       torch.nn.Linear(32, spec.action_dim), torch.nn.Tanh())

    def reset(self, batch_size: int) -> None:
        """Stateless."""

    @torch.no_grad()
    def act(self, step: StepInput) -> np.ndarray:
        return self.net(torch.as_tensor(np.concatenate([step.observations, step.goals], axis=1))).numpy()


@pytest.mark.parametrize("spec, policy, kwargs", [
    (UMAZE, MLPPolicy(UMAZE), {"episodes_per_task": 7, "num_envs": 3, "max_steps": 60, "checkpoint_step": 500}),
    # the oracle ends some episodes at the goal before the cap, so slots go inactive at different steps
    (CUBE, make_sanity_policy("oracle", CUBE), {"episodes_per_task": 1, "num_envs": 3, "max_steps": 45}),
    (CUBE, MLPPolicy(CUBE), {"episodes_per_task": 1, "num_envs": 4, "max_steps": 20, "tasks": (2, 5)}),
], ids=["maze2d-mlp", "cube-oracle", "cube-mlp"])
def test_workers_give_the_one_process_results(spec, policy, kwargs):
    one_process = evaluate_policy(policy, spec, seed=3, **kwargs)
    parallel = evaluate_policy(policy, spec, seed=3, workers=2, **kwargs)
    pd.testing.assert_frame_equal(parallel, one_process)
    assert len(one_process) == kwargs["episodes_per_task"] * len(kwargs.get("tasks", eval_tasks(spec)))
    if policy.__class__.__name__ != "MLPPolicy":
        assert one_process["length"].nunique() > 1 and one_process["success"].any()


def test_a_pool_serves_several_evaluations_and_more_workers_than_envs():
    policy = MLPPolicy(UMAZE)
    kwargs = {"episodes_per_task": 5, "seed": 1, "max_steps": 30}
    with make_env_pool(UMAZE, 2, max_steps=30, workers=3) as pool:  # 3 workers for 2 envs: 2 processes
        assert isinstance(pool, EnvWorkers) and pool.workers == 2
        first, again = (evaluate_policy(policy, UMAZE, envs=pool, **kwargs) for _ in range(2))
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(first, evaluate_policy(policy, UMAZE, num_envs=2, **kwargs))


def test_a_pool_of_another_dataset_or_horizon_is_refused():
    with make_env_pool(UMAZE, 1, max_steps=10) as pool, pytest.raises(ConfigError, match="10-step|environments"):
        evaluate_policy(MLPPolicy(UMAZE), UMAZE, episodes_per_task=1, max_steps=20, envs=pool)


def test_a_worker_failure_is_raised_in_the_parent():
    pool = make_env_pool(UMAZE, 2, max_steps=5, workers=2)
    with pytest.raises(RuntimeError, match=r"(?s)worker 0 of maze2d-umaze-v1 failed.*AttributeError"):
        pool.reset([(0, np.zeros(3, np.uint32))] * 2)  # seeds without their fields fail inside the worker
    assert not any(process.is_alive() for process in pool._processes)  # a failed pool stops its workers


@pytest.mark.parametrize("argv, message", [
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_cli_rejects_bad_workers(tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        evaluate_cli([str(tmp_path), *argv])


def test_zero_workers_is_one_clear_error():
    with pytest.raises(ConfigError, match="workers must be at least 1"):
        evaluate_policy(MLPPolicy(UMAZE), UMAZE, episodes_per_task=1, workers=0)


def test_a_trained_run_evaluates_the_same_with_eval_workers(tmp_path):
    """EvalConfig.workers reaches the evaluation of a run folder (what `python -m qhyer.evaluate --workers` sets)."""
    cfg = tiny_config(tmp_path, "gcbc", steps=2)
    run = train(cfg)
    frames = []
    for workers in (1, 2):
        eval_cfg = dataclasses.replace(cfg.eval, episodes_per_task=1, num_envs=3, workers=workers)
        evaluate_run(run, dataclasses.replace(cfg, eval=eval_cfg), max_steps=15)
        frames.append(pd.read_csv(run / "eval_episodes.csv"))
    pd.testing.assert_frame_equal(frames[1], frames[0])
    assert len(frames[0]) == 5 and (frames[0]["length"] == 15).all()
