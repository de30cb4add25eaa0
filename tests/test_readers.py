"""OGBench npz reader and `load_dataset`'s file search, on small files the tests write themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qhyer.data.episodes import EpisodeDataset
from qhyer.data.readers import load_dataset, read_ogbench_npz
from qhyer.data.registry import DatasetSpec, get_spec
from qhyer.errors import ConfigError, DataError

SPEC = get_spec("cube-single-play-v0")
LENGTHS = (7, 12, 30)


def ogbench_arrays(spec: DatasetSpec = SPEC, lengths=LENGTHS, seed: int = 0) -> dict[str, np.ndarray]:
    """A file's arrays in OGBench's layout (generate_manipspace.py): terminals True on each episode's last row."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    terminals = np.zeros(n, bool)
    terminals[np.cumsum(lengths) - 1] = True
    arrays = {"observations": rng.standard_normal((n, spec.obs_dim)).astype(np.float32),
              "actions": rng.uniform(-1, 1, (n, spec.action_dim)).astype(np.float32), "terminals": terminals,
              "qpos": rng.standard_normal((n, 21)).astype(np.float32),
              "qvel": rng.standard_normal((n, 20)).astype(np.float32)}
    if spec.name.startswith("puzzle"):
        arrays["button_states"] = rng.integers(0, 2, (n, len(spec.goal_dims)))
    return arrays


def write_npz(path: Path, spec: DatasetSpec = SPEC, lengths=LENGTHS, **replace) -> Path:
    """Write an OGBench-layout npz; `replace` swaps arrays in (None drops the key)."""
    arrays = {**ogbench_arrays(spec, lengths), **replace}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


@pytest.mark.parametrize("name", ["cube-single-play-v0", "puzzle-3x3-noisy-v0"])
def test_npz_round_trip(tmp_path, name):
    spec = get_spec(name)
    arrays = ogbench_arrays(spec)
    path = write_npz(tmp_path / spec.train_file, spec)
    ds = read_ogbench_npz(path, spec)
    assert isinstance(ds, EpisodeDataset) and ds.name == spec.name and ds.source == str(path)
    np.testing.assert_array_equal(ds.observations, arrays["observations"])
    np.testing.assert_array_equal(ds.actions, arrays["actions"])
    np.testing.assert_array_equal(ds.episode_ends, np.cumsum(LENGTHS))
    np.testing.assert_array_equal(ds.goal_dims, spec.goal_dims)
    assert ds.rewards is None and ds.meta == {}  # qpos/qvel/button_states are not read


def test_episode_boundaries_come_from_terminals(tmp_path):
    lengths = (1, 2, 5, 1, 9)  # single-row episodes included
    ds = read_ogbench_npz(write_npz(tmp_path / "x.npz", lengths=lengths), SPEC)
    np.testing.assert_array_equal(ds.episode_ends, np.cumsum(lengths))
    np.testing.assert_array_equal(ds.episode_starts, np.cumsum(lengths) - lengths)
    # Rows with a successor: every row but each episode's last (single-row episodes contribute none).
    assert len(ds.transition_rows) == sum(lengths) - len(lengths)


@pytest.mark.parametrize("dtype", [bool, np.float32, np.int64])
def test_terminals_of_any_numeric_dtype(tmp_path, dtype):
    terminals = ogbench_arrays()["terminals"].astype(dtype)
    ds = read_ogbench_npz(write_npz(tmp_path / "x.npz", terminals=terminals), SPEC)
    np.testing.assert_array_equal(ds.episode_ends, np.cumsum(LENGTHS))


def test_float64_observations_become_float32(tmp_path):
    obs = ogbench_arrays()["observations"].astype(np.float64)
    ds = read_ogbench_npz(write_npz(tmp_path / "x.npz", observations=obs), SPEC)
    assert ds.observations.dtype == np.float32
    np.testing.assert_allclose(ds.observations, obs, rtol=1e-7)


def test_same_transitions_as_ogbench_loader(tmp_path):
    """Our rows with a successor are exactly the transitions of `ogbench.load_dataset` (ogbench/utils.py)."""
    ogbench_utils = pytest.importorskip("ogbench.utils")
    path = write_npz(tmp_path / "x.npz")
    ds = read_ogbench_npz(path, SPEC)
    reference = ogbench_utils.load_dataset(str(path))
    rows = ds.transition_rows
    np.testing.assert_array_equal(ds.observations[rows], reference["observations"])
    np.testing.assert_array_equal(ds.observations[rows + 1], reference["next_observations"])
    np.testing.assert_array_equal(ds.actions[rows], reference["actions"])
    np.testing.assert_array_equal(rows + 1 == ds.row_last[rows], reference["terminals"] == 1)


# --- load_dataset: where files are looked for ----------------------------------------------------------------

@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fake home, so `ogbench_user_dir()` (~/.ogbench/data) never sees the real one; no $QHYER_DATA_DIR."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QHYER_DATA_DIR", raising=False)
    return tmp_path / "home"


def test_data_dir_comes_before_the_ogbench_folder(tmp_path, home):
    user_file = write_npz(home / ".ogbench" / "data" / SPEC.train_file, lengths=(4, 4))
    assert load_dataset(SPEC.name, data_dir=tmp_path / "data").source == str(user_file)
    own_file = write_npz(tmp_path / "data" / SPEC.train_file, lengths=(5, 5))
    ds = load_dataset("cube-single-play", data_dir=tmp_path / "data")  # name without the version suffix
    assert ds.source == str(own_file) and len(ds) == 10


def test_default_data_dir_is_the_environment_variable(tmp_path, home, monkeypatch):
    monkeypatch.setenv("QHYER_DATA_DIR", str(tmp_path / "env"))
    path = write_npz(tmp_path / "env" / SPEC.train_file)
    assert load_dataset(SPEC.name).source == str(path)


def test_val_split_reads_the_val_file(tmp_path, home):
    write_npz(tmp_path / SPEC.train_file)
    val = write_npz(tmp_path / SPEC.val_file, lengths=(3,))
    ds = load_dataset(SPEC.name, split="val", data_dir=tmp_path)
    assert ds.source == str(val) and len(ds) == 3


def test_missing_file_names_every_place_looked_and_the_fix(tmp_path, home):
    with pytest.raises(DataError) as err:
        load_dataset(SPEC.name, split="val", data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path / SPEC.val_file) in message
    assert str(home / ".ogbench" / "data" / SPEC.val_file) in message
    assert f"python -m qhyer.data generate {SPEC.name}" in message


def test_unknown_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown split"):
        load_dataset(SPEC.name, split="test", data_dir=tmp_path)


def test_d4rl_families_delegate_to_the_d4rl_module(tmp_path, monkeypatch):
    calls = []
    sentinel = object()
    monkeypatch.setattr("qhyer.data.d4rl.find_d4rl_file",
                        lambda spec, data_dir: calls.append(("find", spec.name, data_dir)) or tmp_path / "f.hdf5")
    monkeypatch.setattr("qhyer.data.d4rl.read_d4rl_hdf5",
                        lambda path, spec: calls.append(("read", spec.name, path)) or sentinel)
    assert load_dataset("maze2d-umaze", data_dir=tmp_path) is sentinel
    assert calls == [("find", "maze2d-umaze-v1", tmp_path), ("read", "maze2d-umaze-v1", tmp_path / "f.hdf5")]
    with pytest.raises(DataError, match="no validation split"):
        load_dataset("antmaze-umaze-v2", split="val", data_dir=tmp_path)
