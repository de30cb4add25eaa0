"""IQL (baselines/iql.py) on D4RL-layout files: its reward-based transitions, its refusals, and the training CLI.

The update itself is compared with the authors' code in test_reference_equivalence_iql.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_maze2d import write_synthetic_antmaze

from baselines.iql import IQLAgent, IQLConfig, RewardTransitionSampler
from qhyer.agent import DataInfo
from qhyer.data.d4rl import read_d4rl_hdf5
from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError

SPEC = get_spec("antmaze-large-play-v2")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def antmaze(tmp_path) -> EpisodeDataset:
    path = tmp_path / SPEC.train_file
    write_synthetic_antmaze(path)
    return read_d4rl_hdf5(path, SPEC)


def test_transitions_carry_shifted_rewards_goal_masks_and_clipped_actions(antmaze):
    antmaze.actions[:, 0] = np.where(antmaze.actions[:, 0] > 0, 1.0, -1.0)  # at the bounds: clipped
    cfg = IQLConfig().for_family("antmaze")
    sampler = RewardTransitionSampler(antmaze, cfg.reward_shift, cfg.action_clip_eps, seed=0)
    batch = sampler.sample(4096)
    # Which row each sampled transition is, from its observation (the synthetic rows are distinct).
    rows = np.array([np.flatnonzero((antmaze.observations == o).all(1))[0] for o in batch["observations"].numpy()])
    assert set(rows) <= set(antmaze.transition_rows) and len(set(rows)) == len(antmaze.transition_rows)
    assert (antmaze.episode_index[rows] == antmaze.episode_index[rows + 1]).all()  # never across an episode end
    np.testing.assert_array_equal(batch["next_observations"].numpy(), antmaze.observations[rows + 1])
    np.testing.assert_array_equal(batch["rewards"].numpy(), antmaze.rewards[rows] - 1.0)  # train_offline.py:69
    np.testing.assert_array_equal(batch["masks"].numpy(), 1.0 - antmaze.meta["terminals"][rows])
    assert {0.0, -1.0} == set(batch["rewards"].tolist()) and {0.0, 1.0} == set(batch["masks"].tolist())
    limit = np.float32(1 - 1e-5)  # dataset_utils.py:78-80
    np.testing.assert_array_equal(batch["actions"][:, 0].abs().numpy(), limit)
    np.testing.assert_array_equal(batch["actions"][:, 1:].numpy(), antmaze.actions[rows, 1:])


def test_sampler_resumes_where_it_stopped(antmaze):
    first = RewardTransitionSampler(antmaze, -1.0, 1e-5, seed=3)
    first.sample(8)
    state = first.state_dict()
    expected = first.sample(8)
    resumed = RewardTransitionSampler(antmaze, -1.0, 1e-5, seed=99)
    resumed.load_state_dict(state)
    torch.testing.assert_close(resumed.sample(8), expected)
    assert resumed.batches_drawn == first.batches_drawn == 2


def test_iql_refuses_datasets_without_rewards(antmaze):
    with pytest.raises(ConfigError, match="stores none"):
        IQLConfig().for_family("ogbench_play")
    no_rewards = EpisodeDataset("cube", antmaze.observations, antmaze.actions, antmaze.episode_ends, (0, 1))
    cfg = IQLConfig(hidden_dims=(8,)).for_family("antmaze")
    agent = IQLAgent(cfg, DataInfo.from_dataset(SPEC, antmaze, cfg.goal_rep))
    with pytest.raises(ConfigError, match="needs stored rewards"):
        agent.make_sampler(no_rewards, seed=0)


def test_cli_trains_iql_on_a_synthetic_antmaze_file(tmp_path):
    (tmp_path / "data").mkdir()
    write_synthetic_antmaze(tmp_path / "data" / SPEC.train_file)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "qhyer.train", "method=iql", f"dataset={SPEC.name}",
               f"data_dir={tmp_path / 'data'}", f"run_dir={run_dir}", "train.steps=6", "train.progress=false",
               "train.threads=1", "method.batch_size=16", "method.hidden_dims=[16,16]", "eval.enabled=false"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["method"] == "iql" and summary["steps_trained"] == 6
    # The run records IQL's resolved fields: the AntMaze reward shift and the cosine decay over the run's updates.
    fields = json.loads((run_dir / "method_config.json").read_text())
    assert fields["reward_shift"] == -1.0 and fields["actor_lr_decay_steps"] == 6
