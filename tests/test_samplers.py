"""Window and transition samplers: relabelling, padding, rewards, HIQL subgoals, determinism and resume.

Observation column 0 holds the row index, so every sampled row (and goal) can be read back from a batch.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.registry import get_spec
from qhyer.data.samplers import (
    CURRENT,
    FUTURE_GEOMETRIC,
    FUTURE_UNIFORM,
    RANDOM,
    GoalSampling,
    TransitionSampler,
    WindowSampler,
    goal_of,
)
from qhyer.errors import ConfigError

SPEC = get_spec("cube-single-play-v0")
# OGBench's GCIQL/HIQL defaults (the baselines' configs own them; tests/test_baselines_markov.py checks those).
VALUE_GOALS = GoalSampling(p_current=0.2, p_future_geometric=0.5, p_future_uniform=0.0, p_random=0.3)
ACTOR_GOALS = GoalSampling(p_current=0.0, p_future_geometric=0.0, p_future_uniform=1.0, p_random=0.0)


def indexed_dataset(lengths=(7, 12, 30, 1, 25)) -> EpisodeDataset:
    n = sum(lengths)
    obs = np.random.default_rng(0).standard_normal((n, SPEC.obs_dim)).astype(np.float32)
    obs[:, 0] = np.arange(n)
    actions = np.random.default_rng(1).uniform(-1, 1, (n, SPEC.action_dim)).astype(np.float32)
    return EpisodeDataset("synthetic", obs, actions, np.cumsum(lengths), SPEC.goal_dims)


def rows_of(tensor: torch.Tensor) -> np.ndarray:
    return tensor[..., 0].numpy().astype(np.int64)


# --- GoalSampling ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("probs, discount", [((0.5, 0.5, 0.5, 0.0), 0.99), ((1.2, -0.2, 0.0, 0.0), 0.99),
                                             ((0.0, 1.0, 0.0, 0.0), 1.0), ((0.0, 1.0, 0.0, 0.0), -0.1)])
def test_invalid_goal_sampling_is_a_config_error(probs, discount):
    with pytest.raises(ConfigError):
        GoalSampling(*probs, discount=discount)


def test_bad_sampler_arguments_are_config_errors():
    ds = indexed_dataset()
    for make in (lambda: WindowSampler(ds, 4, VALUE_GOALS, "pixels", seed=0),
                 lambda: WindowSampler(ds, 0, VALUE_GOALS, "full", seed=0),
                 lambda: TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=0, subgoal_steps=0),
                 lambda: TransitionSampler(indexed_dataset((1, 1)), VALUE_GOALS, ACTOR_GOALS, "full", seed=0)):
        with pytest.raises(ConfigError):
            make()


# --- relabelling --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [
    VALUE_GOALS, ACTOR_GOALS, GoalSampling(1.0, 0.0, 0.0, 0.0), GoalSampling(0.1, 0.3, 0.3, 0.3),
    GoalSampling(0.0, 0.0, 0.0, 1.0), GoalSampling(0.25, 0.25, 0.25, 0.25, discount=0.5),
])
def test_relabelling_frequencies_and_per_mode_ranges(mode):
    ds = indexed_dataset(lengths=(400,) * 50)
    sampler = TransitionSampler(ds, mode, ACTOR_GOALS, "full", seed=0)
    rows = ds.transition_rows[np.random.default_rng(0).integers(0, len(ds.transition_rows), 40_000)]
    goals, modes = sampler.relabel(rows, mode)
    for m, p in enumerate(mode.probabilities):  # std of each frequency ≤ 0.0025
        assert np.mean(modes == m) == pytest.approx(p, abs=0.01)
    final = ds.row_last[rows] - 1  # OGBench's final_state_idxs: the episode's last row with a successor
    future = np.isin(modes, (FUTURE_GEOMETRIC, FUTURE_UNIFORM))
    assert (goals[modes == CURRENT] == rows[modes == CURRENT]).all()
    first = np.minimum(rows + 1, final)  # the current row only at the last transition row
    assert ((goals[future] >= first[future]) & (goals[future] <= final[future])).all()
    assert np.isin(goals[modes == RANDOM], ds.transition_rows).all()
    # The batch itself, read back from the goal observations.
    batch = sampler.sample(40_000)
    now, goal = rows_of(batch["observations"]), rows_of(batch["value_goals"])
    same_future = (goal > now) & (ds.episode_index[goal] == ds.episode_index[now])
    assert np.mean(goal == now) == pytest.approx(mode.p_current, abs=0.01)
    # Random goals fall in the same episode's future with probability ≈ remaining rows / N, about 1% here.
    expected = mode.p_future_geometric + mode.p_future_uniform + 0.01 * mode.p_random
    assert np.mean(same_future) == pytest.approx(expected, abs=0.01)


@pytest.mark.parametrize("discount", [0.5, 0.9, 0.99])
def test_geometric_offsets_have_the_clipped_geometric_mean(discount):
    ds = indexed_dataset(lengths=(5, 40, 17, 200, 3, 90))
    mode = GoalSampling(0.0, 1.0, 0.0, 0.0, discount=discount)
    sampler = TransitionSampler(ds, mode, ACTOR_GOALS, "full", seed=1)
    rows = ds.transition_rows[np.random.default_rng(1).integers(0, len(ds.transition_rows), 100_000)]
    offsets = sampler.relabel(rows, mode)[0] - rows
    room = ds.row_last[rows] - 1 - rows                # offsets are clipped at room ≥ 0 ...
    assert (offsets >= np.minimum(1, room)).all() and (offsets <= room).all()
    # ... so E[min(G, m)] = Σ_{j<m} P(G > j) = (1 − γ^m) / (1 − γ) for G ~ Geometric(1 − γ), m = room.
    expected = np.mean((1 - discount ** room) / (1 - discount))
    assert offsets.mean() == pytest.approx(expected, rel=0.02)


def test_uniform_goals_follow_ogbench_rounding():
    """GCDataset: round(first·d + final·(1 − d)) puts half the weight on both ends of first..final."""
    ds = indexed_dataset(lengths=(30,))
    sampler = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=2)
    row, n = 20, 200_000
    goals, _ = sampler.relabel(np.full(n, row), ACTOR_GOALS)
    first, final = row + 1, 28                       # row 29 is the episode's last: never a goal here
    expected = np.full(final - first + 1, 1.0 / (final - first))
    expected[[0, -1]] /= 2
    observed = np.bincount(goals - first, minlength=len(expected)) / n
    np.testing.assert_allclose(observed, expected, atol=0.004)


def test_future_goals_at_the_last_transition_are_that_row():
    ds = indexed_dataset(lengths=(10,))
    sampler = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=0)
    for mode in (GoalSampling(0.0, 1.0, 0.0, 0.0), ACTOR_GOALS):
        assert (sampler.relabel(np.full(100, 8), mode)[0] == 8).all()


# --- WindowSampler ------------------------------------------------------------------------------------------

FUTURE_GOALS = GoalSampling(0.0, 0.5, 0.5, 0.0)


def window_batch(k=10, mode=FUTURE_GOALS, n=4000, seed=0, goal_rep="full"):
    ds = indexed_dataset()
    return ds, WindowSampler(ds, k, mode, goal_rep, seed=seed).sample(n)


def test_window_shapes_and_dtypes():
    ds, batch = window_batch(k=6, n=32, goal_rep="task")
    shapes = {"observations": (32, 6, ds.obs_dim), "actions": (32, 6, ds.action_dim),
              "next_observations": (32, 6, ds.obs_dim), "goals": (32, len(ds.goal_dims)), "goal_rows": (32,),
              "timesteps": (32, 6), "mask": (32, 6), "rewards": (32, 6), "returns_to_go": (32, 6), "dones": (32, 6)}
    assert {key: tuple(value.shape) for key, value in batch.items()} == shapes
    dtypes = {"goal_rows": torch.int64, "timesteps": torch.int64, "mask": torch.bool, "dones": torch.bool}
    for key, value in batch.items():
        assert value.dtype == dtypes.get(key, torch.float32), key
    np.testing.assert_array_equal(batch["goals"].numpy(), ds.goal_part(ds.observations[batch["goal_rows"].numpy()]))


def test_windows_end_at_t_are_left_padded_and_never_cross_episodes():
    ds, batch = window_batch()
    mask = batch["mask"].numpy()
    current = rows_of(batch["observations"])[:, -1]
    start = ds.row_start[current]
    assert mask[:, -1].all() and (np.diff(mask.astype(int), axis=1) >= 0).all()  # padding only on the left
    np.testing.assert_array_equal(mask.sum(1), np.minimum(10, current - start + 1))
    expected_rows = current[:, None] + np.arange(-9, 1)
    np.testing.assert_array_equal(np.where(mask, rows_of(batch["observations"]), -1), np.where(mask, expected_rows, -1))
    np.testing.assert_array_equal(batch["timesteps"].numpy(), np.where(mask, expected_rows - start[:, None], 0))
    for key in ("observations", "next_observations", "actions"):
        assert (batch[key].numpy()[~mask] == 0).all(), key
    np.testing.assert_array_equal(batch["actions"].numpy()[mask], ds.actions[expected_rows[mask]])
    assert (mask.sum(1) < 10).any() and (current == start).any()  # the batch really meets episode starts
    assert np.isin(current, ds.row_last).any()


def test_next_observations_and_dones_at_episode_ends():
    ds, batch = window_batch(mode=GoalSampling(0.0, 0.0, 0.0, 1.0))
    rows, mask = rows_of(batch["observations"]), batch["mask"].numpy()
    at_end = mask & (rows == ds.row_last[rows])
    np.testing.assert_array_equal(rows_of(batch["next_observations"])[mask], np.where(at_end, rows, rows + 1)[mask])
    assert at_end.any() and batch["dones"].numpy()[at_end].all()


def test_future_goals_stay_in_the_episode_after_t():
    ds, batch = window_batch(mode=GoalSampling(0.0, 0.5, 0.5, 0.0, discount=0.9))
    current, goals = rows_of(batch["observations"])[:, -1], batch["goal_rows"].numpy()
    np.testing.assert_array_equal(rows_of(batch["goals"]), goals)
    assert (ds.episode_index[goals] == ds.episode_index[current]).all()
    is_last = current == ds.row_last[current]
    assert (goals[~is_last] > current[~is_last]).all() and (goals[is_last] == current[is_last]).all()


@pytest.mark.parametrize("mode", [GoalSampling(0.3, 0.2, 0.2, 0.3), GoalSampling(0.0, 0.0, 0.0, 1.0)])
def test_rewards_returns_to_go_and_dones_follow_the_goal_row(mode):
    ds, batch = window_batch(k=5, mode=mode)
    rows, mask = rows_of(batch["observations"]), batch["mask"].numpy()
    goal = batch["goal_rows"].numpy()[:, None]
    in_episode = ds.episode_index[goal] == ds.episode_index[rows[:, -1:]]
    rewards, rtg = batch["rewards"].numpy(), batch["returns_to_go"].numpy()
    np.testing.assert_array_equal(rewards, (mask & in_episode & (rows + 1 == goal)).astype(np.float32))
    np.testing.assert_array_equal(rtg, (mask & in_episode & (goal > rows)).astype(np.float32))
    # RTG is the undiscounted sum of later rewards: it drops by r_k from step k to k + 1 ...
    np.testing.assert_array_equal((rtg[:, :-1] - rtg[:, 1:])[mask[:, :-1]], rewards[:, :-1][mask[:, :-1]])
    # ... and after the window's last step only a goal beyond t + 1 is left to reach.
    np.testing.assert_array_equal(rtg[:, -1] - rewards[:, -1], (in_episode & (goal > rows[:, -1:] + 1))[:, 0])
    dones = batch["dones"].numpy()
    np.testing.assert_array_equal(dones, mask & ((rewards == 1) | (rows == ds.row_last[rows])))
    assert rewards.any() and (rtg[:, -1] == 1).any()


def test_goal_at_the_current_step_is_already_reached():
    ds, batch = window_batch(k=5, mode=GoalSampling(1.0, 0.0, 0.0, 0.0))
    mask, rewards, rtg = batch["mask"].numpy(), batch["rewards"].numpy(), batch["returns_to_go"].numpy()
    assert (rtg[:, -1] == 0).all() and (rewards[:, -1] == 0).all()
    has_previous = mask[:, -2]
    assert (rewards[has_previous, -2] == 1).all() and (rtg[has_previous, :-1][mask[has_previous, :-1]] == 1).all()


# --- TransitionSampler --------------------------------------------------------------------------------------

def test_transition_rewards_masks_and_sources():
    ds = indexed_dataset()
    batch = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "full", seed=3).sample(5000)
    rows, value, actor = (rows_of(batch[key]) for key in ("observations", "value_goals", "actor_goals"))
    success = (value == rows).astype(np.float32)
    np.testing.assert_array_equal(batch["rewards"].numpy(), success - 1.0)
    np.testing.assert_array_equal(batch["masks"].numpy(), 1.0 - success)
    assert 0.15 < success.mean() < 0.25
    assert np.isin(rows, ds.transition_rows).all()  # an episode's last row is never a source ...
    assert np.isin(np.concatenate([value, actor]), ds.transition_rows).all()  # ... nor a goal (OGBench compact)
    np.testing.assert_array_equal(rows_of(batch["next_observations"]), rows + 1)
    np.testing.assert_array_equal(batch["actions"].numpy(), ds.actions[rows])
    final = ds.row_last[rows] - 1
    assert ((actor >= np.minimum(rows + 1, final)) & (actor <= final)).all()


@pytest.mark.parametrize("actor_goals", [ACTOR_GOALS, GoalSampling(0.0, 1.0, 0.0, 0.0),
                                         GoalSampling(0.0, 0.0, 0.0, 1.0), GoalSampling(0.0, 0.0, 0.5, 0.5)])
def test_hiql_subgoals_follow_hgcdataset_at_episode_ends(actor_goals):
    ds, k = indexed_dataset(), 10
    batch = TransitionSampler(ds, VALUE_GOALS, actor_goals, "full", seed=4, subgoal_steps=k).sample(5000)
    rows, high = rows_of(batch["observations"]), rows_of(batch["high_goals"])
    final = ds.row_last[rows] - 1
    low, targets = rows_of(batch["low_goals"]), rows_of(batch["high_targets"])
    np.testing.assert_array_equal(low, np.minimum(rows + k, final))
    assert (rows + k > final).any() and (rows + k < final).any()  # both sides of the clip are exercised
    assert torch.equal(batch["high_goals"], batch["actor_goals"])
    trajectory_target, random_target = np.minimum(rows + k, high), low
    if actor_goals.p_random == 0:
        np.testing.assert_array_equal(targets, trajectory_target)
    elif actor_goals.p_random == 1:
        np.testing.assert_array_equal(targets, random_target)
    else:  # a goal outside (row, final] can only be random; inside, either kind
        outside = (high <= rows) | (high > final)
        np.testing.assert_array_equal(targets[outside], random_target[outside])
        assert ((targets == trajectory_target) | (targets == random_target)).all()
        assert outside.any() and (targets != random_target).any()


def test_task_goal_representation():
    ds = indexed_dataset()
    batch = TransitionSampler(ds, VALUE_GOALS, ACTOR_GOALS, "task", seed=0, subgoal_steps=5).sample(64)
    for key in ("value_goals", "actor_goals", "low_goals", "high_goals", "high_targets"):
        assert batch[key].shape == (64, len(SPEC.goal_dims)), key
    rows = np.array([0, 5, 48])
    np.testing.assert_array_equal(goal_of(ds, rows, "task"), ds.observations[rows][:, SPEC.goal_dims])
    np.testing.assert_array_equal(goal_of(ds, rows, "full"), ds.observations[rows])


# --- determinism and resume ---------------------------------------------------------------------------------

def make_sampler(kind: str, seed: int):
    ds = indexed_dataset()
    if kind == "window":
        return WindowSampler(ds, 4, GoalSampling(0.2, 0.3, 0.2, 0.3), "full", seed=seed)
    return TransitionSampler(ds, VALUE_GOALS, GoalSampling(0.0, 0.0, 0.7, 0.3), "full", seed=seed, subgoal_steps=3)


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("kind", ["window", "transition"])
def test_same_seed_same_batches(kind):
    a, b, other = make_sampler(kind, 7), make_sampler(kind, 7), make_sampler(kind, 8)
    for _ in range(3):
        batch = a.sample(16)
        assert_same(batch, b.sample(16))
    assert not torch.equal(batch["observations"], other.sample(16)["observations"])


@pytest.mark.parametrize("kind", ["window", "transition"])
def test_resume_from_state_dict_continues_bit_identically(kind):
    first = make_sampler(kind, 5)
    for _ in range(3):
        first.sample(8)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # as the trainer checkpoints it
    expected = [first.sample(8) for _ in range(2)]
    resumed = make_sampler(kind, 123)
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.batches_drawn == 3
    for batch in expected:
        assert_same(resumed.sample(8), batch)
    assert resumed.state_dict() == first.state_dict() and resumed.batches_drawn == 5
