"""D4RL mazes: environments (qhyer/envs/maze2d.py), Maze2d regeneration (qhyer/data/maze2d_gen.py) and the
D4RL hdf5 reader (qhyer/data/d4rl.py), at tiny sizes.

References: Farama-Foundation/D4RL `d4rl/pointmaze/maze_model.py`, `scripts/generation/generate_maze2d_datasets.py`,
`d4rl/locomotion/{ant,maze_env}.py`, `d4rl/offline_env.py`.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from qhyer.data import maze2d_gen
from qhyer.data.__main__ import main as data_cli
from qhyer.data.d4rl import D4RL_URLS, d4rl_file_name, find_d4rl_file, read_d4rl_hdf5
from qhyer.data.manifest import manifest_path
from qhyer.data.readers import load_dataset
from qhyer.data.registry import get_spec
from qhyer.envs.maze2d import ANT_TORQUE, LAYOUTS, AntMazeEnv, Maze2dEnv, get_layout
from qhyer.envs.waypoint_controller import WaypointController
from qhyer.errors import ConfigError, DataError
from qhyer.io import sha256_file

UMAZE = get_spec("maze2d-umaze")
D4RL_KEYS = {"observations": ((4,), np.float32), "actions": ((2,), np.float32), "rewards": ((), np.float32),
             "terminals": ((), np.bool_), "timeouts": ((), np.bool_), "infos/goal": ((2,), np.float32),
             "infos/qpos": ((2,), np.float32), "infos/qvel": ((2,), np.float32)}


def generate(out, steps=600, seed=0, spec=UMAZE):
    return maze2d_gen.generate(spec, out, seed=seed, steps=steps, progress=False)


def read_h5(path):
    with h5py.File(path, "r") as f:
        return {key: f[key][()] for key in D4RL_KEYS}


# --- environments --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("maze", sorted(LAYOUTS))
def test_maze2d_env_follows_d4rl_conventions(maze):
    env = Maze2dEnv(maze)
    layout = env.layout
    assert env.target.tolist() == list(layout.goal_cell)  # fixed evaluation goal: the 'G' cell
    for seed in range(20):
        obs, info = env.reset(seed=seed)
        cell = np.round(obs[:2])
        assert tuple(cell.astype(int).tolist()) in {tuple(c) for c in layout.free_cells.astype(int).tolist()}
        assert np.all(np.abs(obs[:2] - cell) <= 0.1) and obs.shape == (4,)
        assert info["goal"].tolist() == [*layout.goal_cell, 0.0, 0.0]
    again, _ = env.reset(seed=19)
    assert np.array_equal(again, obs)  # seedable reset

    env.data.qvel[:] = [40.0, -40.0]
    obs, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert np.all(np.abs(obs[2:]) <= 5.0)  # qvel clipped to [-5, 5] before the step
    env.data.qpos[:] = env.target + [0.3, 0.3]
    env.data.qvel[:] = 0.0
    _, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert reward == 1.0 and info["success"] and not terminated and not truncated  # within 0.5, no termination
    env.data.qpos[:] = env.target + [0.4, 0.4]
    assert env.step(np.zeros(2))[1] == 0.0


def test_maze2d_walls_stop_the_point_mass():
    env = Maze2dEnv("umaze")
    env.reset(seed=0)
    env.data.qpos[:], env.data.qvel[:] = [1.0, 1.0], 0.0  # cell (1, 1); (0, 1) above it is a wall
    for _ in range(200):
        obs = env.step(np.array([-1.0, 0.0]))[0]
    # wall (0, 1) fills world x in [0.5, 1.5]; world = qpos + 1.2, so the sphere (radius 0.1) rests at qpos x ~ 0.4
    assert 0.35 < obs[0] < 0.45


def test_antmaze_env_follows_d4rl_conventions():
    env = AntMazeEnv("umaze")
    assert env.model.opt.timestep == 0.02 and env.model.nq == 15 and env.model.nu == 8
    assert np.all(env.model.actuator_gear[:, 0] == 1)
    assert np.all(env.model.actuator_ctrlrange == [-ANT_TORQUE, ANT_TORQUE])
    goals = []
    for seed in range(10):
        obs, info = env.reset(seed=seed)
        assert obs.shape == (29,) and np.all(np.abs(obs[:2]) <= 0.1)  # start at cell (1, 1) = origin, +-0.1
        goals.append(env.target.copy())
        assert info["goal"].shape == (29,) and np.array_equal(info["goal"][:2], env.target)
    goals = np.array(goals)
    # umaze goal cell (3, 1): x = 4 (1 - 1) = 0, y = 4 (3 - 1) = 8, plus one-sided noise in [0, 1.5]
    assert np.all((goals[:, 0] >= 0) & (goals[:, 0] <= 1.5) & (goals[:, 1] >= 8) & (goals[:, 1] <= 9.5))
    assert len(np.unique(goals[:, 0])) == 10  # v2: a new goal at every reset
    env.data.qpos[:2] = env.target
    obs, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert reward == 1.0 and terminated and info["success"]


# --- generation ----------------------------------------------------------------------------------------------
def test_generated_file_has_d4rl_layout_and_manifest(tmp_path):
    manifest = generate(tmp_path, steps=600)
    path = tmp_path / UMAZE.train_file
    data = read_h5(path)
    for key, (shape, dtype) in D4RL_KEYS.items():
        assert data[key].shape == (600, *shape) and data[key].dtype == dtype, key
    assert not data["terminals"].any() and data["timeouts"].any()  # released v1 files: flags in `timeouts`
    goal = np.array(get_layout("umaze").goal_cell)
    within = np.linalg.norm(data["observations"][:, :2] - goal, axis=1) <= 0.5
    assert np.array_equal(data["rewards"], within.astype(np.float32))  # relabelled on s_t, as D4RL
    # The script's quirk: the row after a done row repeats its observation; infos/qpos holds the true state.
    done_rows = np.flatnonzero(data["timeouts"][:-1])
    assert np.array_equal(data["observations"][done_rows + 1], data["observations"][done_rows])
    fresh = np.setdiff1d(np.arange(600), done_rows + 1)
    assert np.array_equal(data["observations"][fresh, :2], data["infos/qpos"][fresh])
    # targets change exactly after done rows
    changes = np.flatnonzero(np.any(np.diff(data["infos/goal"], axis=0) != 0, axis=1))
    assert np.array_equal(changes, done_rows)
    assert manifest["transitions"] == {"train": 600} and manifest["files"][path.name]["sha256"] == sha256_file(path)
    assert json.loads(manifest_path(path).read_text())["config"]["action_noise_std"] == 0.5


def test_generation_is_deterministic_by_seed_and_ignores_workers(tmp_path):
    a = generate(tmp_path / "a", seed=3)["files"]
    b = maze2d_gen.generate(UMAZE, tmp_path / "b", seed=3, workers=4, steps=600, progress=False)["files"]
    c = generate(tmp_path / "c", seed=4)["files"]
    assert a == b and a != c


def test_generation_cli_and_bad_sizes(tmp_path, capsys):
    assert data_cli(["generate", "maze2d-umaze", "--steps", "300", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "maze2d-umaze-v1.hdf5  sha256" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="apply to OGBench"):
        maze2d_gen.generate(UMAZE, tmp_path, episodes=3, progress=False)
    with pytest.raises(ConfigError, match="steps must be at least 1"):
        maze2d_gen.generate(UMAZE, tmp_path, steps=0, progress=False)
    with pytest.raises(ConfigError, match="not a Maze2d dataset"):
        maze2d_gen.generate(get_spec("antmaze-umaze"), tmp_path, steps=10, progress=False)


def test_noiseless_controller_reaches_every_free_cell():
    layout = get_layout("medium")
    env = Maze2dEnv("medium")
    controller = WaypointController(layout, np.random.default_rng(0))
    obs, _ = env.reset(seed=1)
    for cell in layout.free_cells[::3]:
        for _ in range(600):
            action, solved = controller.act(obs[:2], obs[2:], cell)
            if solved:
                break
            obs = env.step(action)[0]
        assert solved and np.linalg.norm(obs[:2] - cell) < 0.1


# --- reader --------------------------------------------------------------------------------------------------
def test_reader_round_trips_a_generated_file(tmp_path):
    generate(tmp_path, steps=600)
    data = read_h5(tmp_path / UMAZE.train_file)
    dataset = load_dataset("maze2d-umaze", data_dir=tmp_path)  # readers.load_dataset → find_d4rl_file + read
    assert len(dataset) == 600 and dataset.obs_dim == 4 and dataset.action_dim == 2
    np.testing.assert_array_equal(dataset.observations, data["observations"])
    np.testing.assert_array_equal(dataset.rewards, data["rewards"])
    np.testing.assert_array_equal(dataset.meta["goal"], data["infos/goal"])
    ends = np.flatnonzero(data["timeouts"]) + 1
    expected = ends if ends[-1] == 600 else np.append(ends, 600)
    np.testing.assert_array_equal(dataset.episode_ends, expected)


def write_synthetic_antmaze(path, rows=120, reset_every=50, nan=False):
    """A SYNTHETIC file in D4RL's antmaze-*-v2 layout (random numbers, not D4RL data): resets every
    `reset_every` rows, a goal-indicator `terminals` block in the middle of an episode."""
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(rows, 29)).astype(np.float32)
    if nan:
        obs[5, 3] = np.nan
    timeouts = (np.arange(rows) % reset_every) == reset_every - 1
    terminals = np.zeros(rows, np.float32)
    terminals[20:25] = 1.0  # the ant walks through the goal region: a reward label, not an episode end
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"] = obs, rng.uniform(-1, 1, (rows, 8)).astype(np.float32)
        f["rewards"], f["terminals"], f["timeouts"] = terminals.copy(), terminals, timeouts
        f["infos/goal"] = np.tile([[0.5, 8.5]], (rows, 1)).astype(np.float32)
        f["infos/qpos"], f["infos/qvel"] = obs[:, :15], obs[:, 15:]


def test_reader_splits_synthetic_antmaze_at_timeouts_only(tmp_path):
    spec = get_spec("antmaze-umaze")
    path = tmp_path / spec.train_file
    write_synthetic_antmaze(path)
    assert find_d4rl_file(spec, tmp_path) == path
    dataset = read_d4rl_hdf5(path, spec)
    np.testing.assert_array_equal(dataset.episode_ends, [50, 100, 120])
    assert dataset.rewards.sum() == 5 and dataset.meta["terminals"][20:25].all()
    assert dataset.goal_part(dataset.observations).shape == (120, 2)


def test_find_d4rl_file_uses_d4rl_names_in_d4rl_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    spec = get_spec("antmaze-medium-play")
    d4rl_path = tmp_path / "d4rl" / "Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5"
    assert d4rl_file_name(spec) == d4rl_path.name
    d4rl_path.parent.mkdir()
    write_synthetic_antmaze(d4rl_path)
    assert find_d4rl_file(spec, tmp_path / "empty") == d4rl_path
    generate(tmp_path / "d4rl", steps=300)
    (tmp_path / "d4rl" / UMAZE.train_file).rename(tmp_path / "d4rl" / "maze2d-umaze-sparse-v1.hdf5")
    assert find_d4rl_file(UMAZE, tmp_path / "empty").name == "maze2d-umaze-sparse-v1.hdf5"


def test_missing_antmaze_file_says_which_file_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path / "d4rl"))
    spec = get_spec("antmaze-large-diverse")
    with pytest.raises(DataError) as err:
        find_d4rl_file(spec, tmp_path / "data")
    message = str(err.value)
    assert "\n" not in message and "cannot be regenerated" in message
    assert D4RL_URLS[spec.name] in message and str(tmp_path / "data" / "antmaze-large-diverse-v2.hdf5") in message
    with pytest.raises(DataError, match="python -m qhyer.data generate maze2d-umaze-v1"):
        find_d4rl_file(UMAZE, tmp_path / "data")


def _rewrite(path, **changes):
    with h5py.File(path, "a") as f:
        for key, value in changes.items():
            del f[key]
            if value is not None:
                f[key] = value


@pytest.mark.parametrize("case, match", [
    ("missing", "lacks the keys rewards"),
    ("corrupt", "not a readable hdf5 file"),
    ("nan", "NaN"),
    ("lengths", "different lengths"),
    ("shape", r"observations have shape \(300, 3\)"),
])
def test_reader_rejects_bad_files_in_one_line(tmp_path, case, match):
    generate(tmp_path, steps=300)
    path = tmp_path / UMAZE.train_file
    data = read_h5(path)
    if case == "missing":
        _rewrite(path, rewards=None)
    elif case == "corrupt":
        path.write_bytes(path.read_bytes()[:1000])
    elif case == "nan":
        data["observations"][7, 1] = np.nan
        _rewrite(path, observations=data["observations"])
    elif case == "lengths":
        _rewrite(path, actions=data["actions"][:-1])
    else:
        _rewrite(path, observations=data["observations"][:, :3])
    with pytest.raises(DataError, match=match) as err:
        read_d4rl_hdf5(path, UMAZE)
    assert "\n" not in str(err.value)
