"""Readers and samplers: round trips, relabelling frequencies, window padding, bad input."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.readers import load_dataset, read_ogbench_npz
from qhyer.data.registry import get_spec
from qhyer.data.samplers import ACTOR_GOALS, VALUE_GOALS, GoalSampling, TransitionSampler, WindowSampler
from qhyer.errors import ConfigError, DataError

SPEC = get_spec("cube-single-play-v0")


def episodes_dataset(lengths=(7, 12, 30), obs_dim=28) -> EpisodeDataset:
    """Observation column 0 holds the row index, so sampled rows can be read back from any batch."""
    rows = sum(lengths)
    obs = np.zeros((rows, obs_dim), np.float32)
    obs[:, 0] = np.arange(rows)
    return EpisodeDataset("synthetic", obs, np.ones((rows, 5), np.float32), np.cumsum(lengths), SPEC.goal_dims)


def write_npz(path, dataset: EpisodeDataset, **replace):
    terminals = np.zeros(len(dataset), bool)
    terminals[dataset.episode_ends - 1] = True
    arrays = {"observations": dataset.observations, "actions": dataset.actions, "terminals": terminals,
              "qpos": np.zeros((len(dataset), 21), np.float32), "qvel": np.zeros((len(dataset), 20), np.float32)}
    arrays.update(replace)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def test_npz_round_trip(tmp_path):
    original = episodes_dataset()
    loaded = read_ogbench_npz(write_npz(tmp_path / "x.npz", original), SPEC)
    np.testing.assert_array_equal(loaded.observations, original.observations)
    np.testing.assert_array_equal(loaded.episode_ends, original.episode_ends)
    np.testing.assert_array_equal(loaded.goal_part(loaded.observations), original.observations[:, SPEC.goal_dims])


def test_load_dataset_searches_data_dir_then_ogbench_folder(tmp_path, monkeypatch):
    user = tmp_path / "home" / ".ogbench" / "data"
    user.mkdir(parents=True)
    write_npz(user / SPEC.train_file, episodes_dataset())
    monkeypatch.setattr("qhyer.data.readers.ogbench_user_dir", lambda: user)
    assert load_dataset(SPEC.name, data_dir=tmp_path / "empty").source == str(user / SPEC.train_file)
    write_npz(tmp_path / SPEC.train_file, episodes_dataset(lengths=(5, 5)))
    assert len(load_dataset("cube-single-play", data_dir=tmp_path)) == 10


@pytest.mark.parametrize("mode, expected", [
    (GoalSampling(1.0, 0.0, 0.0, 0.0), (1.0, 0.0)),
    (GoalSampling(0.2, 0.5, 0.0, 0.3), (0.2, None)),
    (GoalSampling(0.1, 0.3, 0.3, 0.3), (0.1, None)),
])
def test_relabelling_frequencies(mode, expected):
    ds = episodes_dataset(lengths=(400,) * 50)
    sampler = TransitionSampler(ds, mode, ACTOR_GOALS, "full", seed=0)
    batch = sampler.sample(40_000)
    rows, goals = batch["observations"][:, 0].numpy(), batch["value_goals"][:, 0].numpy()
    episode = ds.episode_index
    current = np.mean(goals == rows)
    future = np.mean((goals > rows) & (episode[goals.astype(int)] == episode[rows.astype(int)]))
    assert current == pytest.approx(mode.p_current, abs=0.01)
    # Random goals land in the same episode's future with probability ≈ (remaining rows)/N, small here.
    assert future == pytest.approx(mode.p_future_geometric + mode.p_future_uniform, abs=0.02)


def test_geometric_offsets_have_the_expected_mean():
    ds = episodes_dataset(lengths=(100_000,))
    mode = GoalSampling(0.0, 1.0, 0.0, 0.0, discount=0.9)
    batch = TransitionSampler(ds, mode, ACTOR_GOALS, "full", seed=1).sample(50_000)
    offsets = (batch["value_goals"][:, 0] - batch["observations"][:, 0]).numpy()
    assert offsets.min() >= 1 and offsets.mean() == pytest.approx(10.0, rel=0.05)  # E[Geom(0.1)] = 10


def test_windows_are_left_padded_and_never_cross_episodes():
    ds = episodes_dataset()
    batch = WindowSampler(ds, 10, GoalSampling(0.0, 0.5, 0.5, 0.0), "full", seed=0).sample(2000)
    rows, mask = batch["observations"][..., 0].numpy(), batch["mask"].numpy()
    current = rows[:, -1].astype(int)
    assert mask[:, -1].all()
    assert (np.diff(mask.astype(int), axis=1) >= 0).all()  # padding only on the left
    start = ds.row_start[current]
    expected_real = np.minimum(10, current - start + 1)
    np.testing.assert_array_equal(mask.sum(1), expected_real)
    real_rows = np.where(mask, rows, np.nan)
    assert np.nanmin(real_rows - start[:, None]) >= 0
    np.testing.assert_array_equal(batch["timesteps"].numpy()[:, -1], current - start)
    assert (batch["observations"].numpy()[~mask] == 0).all()
    goals = batch["goal_rows"].numpy()
    assert (goals > current).sum() > 0 and (ds.episode_index[goals] == ds.episode_index[current]).all()


def test_sparse_reward_and_return_to_go_follow_the_goal_row():
    ds = episodes_dataset()
    batch = WindowSampler(ds, 5, GoalSampling(0.3, 0.0, 0.4, 0.3), "full", seed=2).sample(3000)
    rows, goals = batch["observations"][..., 0].numpy(), batch["goal_rows"].numpy()[:, None]
    mask = batch["mask"].numpy()
    same = ds.episode_index[goals] == ds.episode_index[rows.astype(int)]
    np.testing.assert_array_equal(batch["rewards"].numpy(), (same & (rows + 1 == goals) & mask).astype(np.float32))
    np.testing.assert_array_equal(batch["returns_to_go"].numpy(), (same & (goals > rows) & mask).astype(np.float32))


def test_transition_rewards_masks_and_hiql_subgoals_at_episode_ends():
    ds = episodes_dataset()
    batch = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=3, subgoal_steps=10).sample(5000)
    rows = batch["observations"][:, 0].numpy().astype(int)
    success = batch["value_goals"][:, 0].numpy() == rows
    np.testing.assert_array_equal(batch["rewards"].numpy(), success - 1.0)
    np.testing.assert_array_equal(batch["masks"].numpy(), 1.0 - success)
    assert (rows < ds.row_last[rows]).all()  # an episode's last row is never a transition source
    np.testing.assert_array_equal(batch["next_observations"][:, 0].numpy(), rows + 1)
    np.testing.assert_array_equal(batch["low_goals"][:, 0].numpy(), np.minimum(rows + 10, ds.row_last[rows]))
    targets, high = batch["high_targets"][:, 0].numpy(), batch["high_goals"][:, 0].numpy()
    np.testing.assert_array_equal(targets, np.minimum(np.minimum(rows + 10, ds.row_last[rows]), high))


def test_goal_representation_task_part():
    ds = episodes_dataset()
    batch = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "task", seed=0).sample(4)
    assert batch["value_goals"].shape == (4, len(SPEC.goal_dims))


@pytest.mark.parametrize("sampler", ["window", "transition"])
def test_resume_gives_the_same_next_batches(sampler):
    ds = episodes_dataset()

    def make():
        if sampler == "window":
            return WindowSampler(ds, 4, VALUE_GOALS, "full", seed=5)
        return TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=5)

    first = make()
    first.sample(8)
    state = first.state_dict()
    expected = first.sample(8)
    second = make()
    second.load_state_dict(state)
    for key, value in second.sample(8).items():
        assert (value == expected[key]).all(), key


def test_bad_goal_sampling_is_a_config_error():
    with pytest.raises(ConfigError, match="sum to 1"):
        GoalSampling(0.5, 0.5, 0.5, 0.0)
    with pytest.raises(ConfigError, match="goal_rep"):
        WindowSampler(episodes_dataset(), 4, VALUE_GOALS, "pixels", seed=0)


BAD_FILES = {
    "missing keys": lambda p, ds: write_npz(p, ds, terminals=None),
    "mismatched lengths": lambda p, ds: write_npz(p, ds, actions=ds.actions[:-3]),
    "NaN": lambda p, ds: write_npz(p, ds, observations=np.where(ds.observations == 5, np.nan, ds.observations)),
    "inf": lambda p, ds: write_npz(p, ds, actions=np.full_like(ds.actions, np.inf)),
    "wrong observation size": lambda p, ds: write_npz(p, ds, observations=ds.observations[:, :10]),
    "truncated": lambda p, ds: p.write_bytes(write_npz(p, ds).read_bytes()[:200]),
    "corrupt": lambda p, ds: p.write_bytes(b"this is not a zip file" * 10),
    "empty": lambda p, ds: write_npz(p, ds, observations=np.zeros((0, 28)), actions=np.zeros((0, 5)),
                                     terminals=np.zeros(0, bool)),
}


@pytest.mark.parametrize("problem", BAD_FILES)
def test_bad_files_give_one_line_errors(tmp_path, problem):
    BAD_FILES[problem](tmp_path / SPEC.train_file, episodes_dataset())
    with pytest.raises(DataError) as err:
        load_dataset(SPEC.name, data_dir=tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path) in str(err.value)
    result = subprocess.run([sys.executable, "-m", "qhyer.data", "info", SPEC.name, "--data-dir", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_missing_file_and_unknown_name_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="python -m qhyer.data generate"):
        load_dataset(SPEC.name, data_dir=tmp_path)
    result = subprocess.run([sys.executable, "-m", "qhyer.data", "info", "cube-triple-play"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "unknown dataset" in result.stderr and "Traceback" not in result.stderr
