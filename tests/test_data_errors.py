"""Every bad dataset input gives one line naming the problem and the fix: through the API (`DataError` /
`ConfigError`) and through the CLI (`python -m qhyer.data info`: exit code 2, one `error:` line, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_readers import SPEC, ogbench_arrays, write_npz

from qhyer.data.readers import load_dataset, read_ogbench_npz
from qhyer.errors import ConfigError, DataError, UserError

GENERATE = f"python -m qhyer.data generate {SPEC.name}"


def valid_bytes(tmp_path: Path) -> bytes:
    return write_npz(tmp_path / "valid.npz").read_bytes()


def with_nan(key: str, value: float):
    def write(path: Path) -> None:
        array = ogbench_arrays()[key].copy()
        array[5, 1] = value
        write_npz(path, **{key: array})
    return write


def truncated(keep: Callable[[int], int]):
    def write(path: Path) -> None:
        data = valid_bytes(path.parent)
        path.write_bytes(data[: keep(len(data))])
    return write


def npy_file(path: Path) -> None:
    with open(path, "wb") as fh:  # np.save(path) would append ".npy" to the name
        np.save(fh, ogbench_arrays()["observations"])


BAD_FILES = {
    "no observations": lambda p: write_npz(p, observations=None),
    "no actions": lambda p: write_npz(p, actions=None),
    "no terminals": lambda p: write_npz(p, terminals=None),
    "actions shorter": lambda p: write_npz(p, actions=ogbench_arrays()["actions"][:-3]),
    "terminals shorter": lambda p: write_npz(p, terminals=ogbench_arrays()["terminals"][:-3]),
    "NaN observation": with_nan("observations", np.nan),
    "inf observation": with_nan("observations", np.inf),
    "NaN action": with_nan("actions", np.nan),
    "-inf action": with_nan("actions", -np.inf),
    "wrong observation size": lambda p: write_npz(p, observations=ogbench_arrays()["observations"][:, :10]),
    "wrong action size": lambda p: write_npz(p, actions=ogbench_arrays()["actions"][:, :2]),
    "1-D observations": lambda p: write_npz(p, observations=ogbench_arrays()["observations"][:, 0]),
    "text observations": lambda p: write_npz(p, observations=np.full((49, 28), "x")),
    "last episode not terminated": lambda p: write_npz(p, terminals=np.zeros(49, bool)),
    "no rows": lambda p: write_npz(p, observations=np.zeros(0), actions=np.zeros(0), terminals=np.zeros(0)),
    "empty file": lambda p: p.write_bytes(b""),
    "truncated at 10%": truncated(lambda n: n // 10),
    "truncated at 90%": truncated(lambda n: n * 9 // 10),
    "truncated by one byte": truncated(lambda n: n - 1),
    "garbage bytes": lambda p: p.write_bytes(b"this is not a zip file" * 10),
    "pickle": lambda p: p.write_bytes(b"\x80\x04\x95" + bytes(100)),
    "single npy array": npy_file,
}


@pytest.fixture
def clean_env(tmp_path, monkeypatch) -> dict[str, str]:
    """A fake home (so ~/.ogbench/data is empty) and no $QHYER_DATA_DIR, for the API and for subprocesses."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("QHYER_DATA_DIR", raising=False)
    return dict(os.environ)


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhyer.data", "info", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def assert_one_line_cli_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr


def assert_one_line(err: UserError, *fragments: str) -> None:
    message = str(err)
    assert "\n" not in message and " — " in message  # the problem, then the fix
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("problem", BAD_FILES)
def test_bad_file(tmp_path, clean_env, problem):
    path = tmp_path / "data" / SPEC.train_file
    path.parent.mkdir()
    BAD_FILES[problem](path)
    with pytest.raises(DataError) as err:
        load_dataset(SPEC.name, data_dir=path.parent)
    assert_one_line(err.value, str(path))
    assert_one_line_cli_error(run_cli(clean_env, SPEC.name, "--data-dir", str(path.parent)), str(path))


def test_bit_flips_load_or_give_a_data_error(tmp_path):
    """Flip every 7th byte of a small valid file in turn: each read is a one-line DataError, or succeeds when the
    flip hits a zip header field nothing checks (version, timestamps, zip64 extras): never another exception."""
    data = write_npz(tmp_path / "valid.npz", lengths=(3, 4), qpos=None, qvel=None).read_bytes()
    path = tmp_path / "flipped.npz"
    positions = range(0, len(data), 7)
    errors = 0
    for position in positions:
        path.write_bytes(data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1:])
        try:
            read_ogbench_npz(path, SPEC)
        except DataError as err:
            assert "\n" not in str(err)
            errors += 1
    assert errors > 0.75 * len(positions)  # about 85%: all but those header fields


def test_missing_file(tmp_path, clean_env):
    looked = (str(tmp_path / SPEC.train_file), str(tmp_path / "home" / ".ogbench" / "data" / SPEC.train_file))
    with pytest.raises(DataError) as err:
        load_dataset(SPEC.name, data_dir=tmp_path)
    assert_one_line(err.value, *looked, GENERATE)
    assert_one_line_cli_error(run_cli(clean_env, SPEC.name, "--data-dir", str(tmp_path)), *looked, GENERATE)
    with pytest.raises(DataError) as err:
        read_ogbench_npz(tmp_path / "nowhere.npz", SPEC)
    assert_one_line(err.value, "nowhere.npz", GENERATE)


def test_missing_val_file(tmp_path, clean_env):
    write_npz(tmp_path / SPEC.train_file)
    with pytest.raises(DataError) as err:
        load_dataset(SPEC.name, split="val", data_dir=tmp_path)
    assert_one_line(err.value, SPEC.val_file, GENERATE)
    assert_one_line_cli_error(run_cli(clean_env, SPEC.name, "--data-dir", str(tmp_path), "--split", "val"),
                              SPEC.val_file)


def test_unknown_dataset_name(tmp_path, clean_env):
    with pytest.raises(ConfigError) as err:
        load_dataset("cube-quintuple-play", data_dir=tmp_path)
    assert_one_line(err.value, "unknown dataset 'cube-quintuple-play'", "cube-single-play-v0")
    assert_one_line_cli_error(run_cli(clean_env, "cube-quintuple-play"), "unknown dataset")


def test_bad_split(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_dataset(SPEC.name, split="test", data_dir=tmp_path)
    assert_one_line(err.value, "unknown split", "'train' or 'val'")


def test_valid_file_through_the_cli(tmp_path, clean_env):
    """The control case: the same command on a good file prints its summary and exits 0."""
    write_npz(tmp_path / SPEC.train_file)
    result = run_cli(clean_env, "cube-single-play", "--data-dir", str(tmp_path))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "49 rows, 3 episodes, obs 28, act 5, goal part 3" in result.stdout
