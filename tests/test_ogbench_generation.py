"""OGBench manipulation regeneration (qhyer/data/ogbench_gen.py) at tiny sizes.

Reference layout: `data_gen_scripts/generate_manipspace.py` of seohongpark/ogbench; loader: `ogbench.load_dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import ogbench
import pytest

from qhyer.data import ogbench_gen
from qhyer.data.__main__ import main as data_cli
from qhyer.data.manifest import manifest_path
from qhyer.data.registry import DATASETS, DatasetSpec, get_spec
from qhyer.errors import ConfigError
from qhyer.io import sha256_file

REPO = Path(__file__).resolve().parents[1]
VARIANTS = sorted(name for name, spec in DATASETS.items() if spec.family == "ogbench")


def generate(name, out, **kwargs):
    kwargs = {"seed": 0, "workers": 1, "episodes": 2, "episode_length": 30, "progress": False, **kwargs}
    spec = name if isinstance(name, DatasetSpec) else get_spec(name)
    return ogbench_gen.generate(spec, out, **kwargs)


def paths(name, out):
    spec = get_spec(name)
    return out / spec.train_file, out / spec.val_file


def read(path):
    with np.load(path) as npz:
        return dict(npz)


def leftovers(out: Path) -> list[str]:
    """Files a failed or interrupted generation left, besides its dataset lock (an empty flock file, kept: deleting
    a flock file on release would let two later writers lock different inodes)."""
    return sorted(p.name for p in out.iterdir() if not p.name.endswith(".lock")) if out.exists() else []


@pytest.mark.parametrize("name", VARIANTS)
def test_every_variant_has_the_official_layout_and_loads_in_ogbench(name, tmp_path):
    spec, episodes, length = get_spec(name), 2, 30
    rows = episodes * length
    manifest = generate(name, tmp_path, episodes=episodes, episode_length=length)
    train_path, val_path = paths(name, tmp_path)

    data = read(train_path)
    puzzle = spec.env_id.startswith("puzzle")
    assert list(data) == ["observations", "actions", "terminals", "qpos", "qvel"] + ["button_states"] * puzzle
    assert data["observations"].shape == (rows, spec.obs_dim) and data["observations"].dtype == np.float32
    assert data["actions"].shape == (rows, 5) and data["actions"].dtype == np.float32
    assert np.abs(data["actions"]).max() <= 1.0
    assert data["terminals"].dtype == np.bool_ and np.flatnonzero(data["terminals"]).tolist() == [29, 59]
    for key in ("qpos", "qvel"):
        assert data[key].dtype == np.float32 and data[key].ndim == 2 and len(data[key]) == rows
    assert all(np.isfinite(data[key]).all() for key in ("observations", "actions", "qpos", "qvel"))
    assert not np.array_equal(data["qpos"][0], data["qpos"][1])  # the simulation moves
    if puzzle:
        assert data["button_states"].dtype == np.int64
        assert data["button_states"].shape == (rows, len(spec.goal_dims))
        assert set(np.unique(data["button_states"])) <= {0, 1}

    # Fewer than 10 episodes: the official script writes empty 1-D arrays under the same keys.
    assert {k: (v.shape, v.dtype) for k, v in read(val_path).items()} == {k: ((0,), v.dtype) for k, v in data.items()}

    regular = ogbench.load_dataset(str(train_path), add_info=True)
    assert len(regular["observations"]) == episodes * (length - 1)
    np.testing.assert_array_equal(regular["next_observations"][: length - 1], data["observations"][1:length])
    assert np.flatnonzero(regular["terminals"]).tolist() == [length - 2, 2 * length - 3]
    compact = ogbench.load_dataset(str(train_path), compact_dataset=True)
    assert len(compact["observations"]) == rows
    assert np.flatnonzero(compact["valids"] == 0).tolist() == [29, 59]
    assert np.flatnonzero(compact["terminals"]).tolist() == [28, 29, 58, 59]

    on_disk = json.loads(manifest_path(train_path).read_text())
    assert on_disk["files"] == manifest["files"]
    assert manifest["files"][train_path.name]["sha256"] == sha256_file(train_path)
    assert manifest["files"][val_path.name]["sha256"] == sha256_file(val_path)
    assert manifest["transitions"] == {"train": rows, "val": 0}
    assert manifest["config"]["episode_length"] == length and manifest["seed"] == 0


def test_validation_split_has_a_tenth_of_the_episodes(tmp_path):
    manifest = generate("cube-single-play", tmp_path, episodes=10, episode_length=20)
    train_path, val_path = paths("cube-single-play", tmp_path)
    assert manifest["transitions"] == {"train": 200, "val": 20}
    train, val = read(train_path), read(val_path)
    assert len(train["observations"]) == 200 and np.flatnonzero(val["terminals"]).tolist() == [19]
    # Validation episodes have seeds of their own, so none repeats a training episode.
    assert not any(np.array_equal(val["qpos"][0], train["qpos"][i]) for i in range(0, 200, 20))
    assert len(ogbench.load_dataset(str(val_path))["observations"]) == 19
    assert len(ogbench.load_dataset(str(val_path), compact_dataset=True)["observations"]) == 20


@pytest.mark.parametrize("name", ["cube-double-noisy", "puzzle-3x3-play", "cube-quadruple-play"])
def test_one_and_two_workers_write_identical_bytes(name, tmp_path):
    one = generate(name, tmp_path / "w1", episodes=3, episode_length=25, workers=1)
    two = generate(name, tmp_path / "w2", episodes=3, episode_length=25, workers=2)
    assert one["files"] == two["files"] and one["config"] == two["config"]


def test_cube_triple_and_quadruple_follow_the_official_sizes_and_stacking_probabilities():
    """commands.sh: 3000 / 5000 episodes of 1001 steps, evaluation limit 1000; generate_manipspace.py: p_stack per
    episode U(0.05, 0.35) / U(0.1, 0.5)."""
    for name, episodes, (low, high) in (("cube-triple-play", 3000, (0.05, 0.35)),
                                        ("cube-quadruple-play", 5000, (0.1, 0.5))):
        spec = get_spec(name)
        assert (spec.train_episodes, spec.episode_length, spec.eval_max_steps) == (episodes, 1001, 1000)
        state = np.random.get_state()
        np.random.seed(0)
        draws = np.array([ogbench_gen._draw_p_stack(spec.env_id) for _ in range(500)])
        np.random.set_state(state)
        assert draws.min() >= low and draws.max() <= high
        assert draws.min() < low + 0.02 and draws.max() > high - 0.02  # the whole range, not a constant


def test_an_env_the_installed_ogbench_lacks_is_a_one_line_error(tmp_path):
    spec = dataclasses.replace(get_spec("cube-quadruple-play"), name="cube-quintuple-play-v0",
                               env_id="cube-quintuple-v0")
    with pytest.raises(ConfigError, match="does not register cube-quintuple-v0"):
        generate(spec, tmp_path)
    assert leftovers(tmp_path) == []


def test_seeds_change_the_data_and_episodes_do_not_depend_on_the_count(tmp_path):
    np.random.seed(123)
    expected_next_draw = np.random.rand()
    np.random.seed(123)
    base = generate("cube-double-play", tmp_path / "base", episodes=2)
    assert np.random.rand() == expected_next_draw  # the caller's global RNG stream is left untouched

    other_seed = generate("cube-double-play", tmp_path / "seed1", episodes=2, seed=1)
    generate("cube-double-play", tmp_path / "more", episodes=3)
    train = "cube-double-play-v0.npz"
    assert other_seed["files"][train]["sha256"] != base["files"][train]["sha256"]
    a, b, c = (read(tmp_path / d / train) for d in ("base", "seed1", "more"))
    assert not np.array_equal(a["observations"][0], b["observations"][0])
    for key in a:  # episode i depends only on (seed, i): a larger run starts with the same episodes
        np.testing.assert_array_equal(c[key][:60], a[key])


def test_noisy_data_contains_random_actions_and_gaussian_noise(tmp_path):
    # The Markov oracle commands a relative position of norm >= min_norm * gain = 2, so its largest xyz
    # component is >= 1.15 before noise (std <= 0.1) and clipped to 1; only a uniform random action has all
    # three below 0.6 (probability 0.6**3 = 0.22 per random action). Its gripper command is exactly +-1, so
    # values strictly inside (-1, 1) come from the Gaussian noise (about half the rows) or random actions.
    spec = get_spec("cube-single-noisy")
    counts = {}
    for p_random in (spec.p_random_action, 0.0):
        out = tmp_path / str(p_random)
        generate(dataclasses.replace(spec, p_random_action=p_random), out, episodes=3, episode_length=200)
        actions = read(out / spec.train_file)["actions"]
        counts[p_random] = int((np.abs(actions[:, :3]).max(axis=1) < 0.6).sum())
        assert np.mean(np.abs(actions[:, 4]) < 1.0) > 0.3
    # 600 rows * 0.1 * 0.22 = 13 expected
    assert 3 <= counts[spec.p_random_action] <= 30 and counts[0.0] == 0


@pytest.mark.parametrize("failure", ["rollout", "save", "manifest"])
def test_a_failed_generation_leaves_no_files(failure, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt if failure == "rollout" else OSError("disk full")

    if failure == "rollout":
        real_run = ogbench_gen._EpisodeRunner.run
        calls = iter(range(100))
        monkeypatch.setattr(ogbench_gen._EpisodeRunner, "run",
                            lambda self, seed: real_run(self, seed) if next(calls) == 0 else fail())
    elif failure == "save":
        real_save = np.savez_compressed
        calls = iter(range(100))
        # the train file is written to its temporary name, then the validation file fails
        monkeypatch.setattr(np, "savez_compressed",
                            lambda path, **arrays: real_save(path, **arrays) if next(calls) == 0 else fail())
    else:
        monkeypatch.setattr(ogbench_gen, "write_manifest", fail)

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt if failure == "rollout" else OSError):
        generate("cube-single-play", out, episodes=2, episode_length=10)
    assert leftovers(out) == []


def test_interrupting_the_cli_exits_130_and_leaves_no_files(tmp_path):
    """Ctrl-C once the worker pool runs. The job is far longer than the test (200 episodes, minutes), so it cannot
    finish first; the bar's first state `| 0/220 [` marks the pool as up."""
    out = tmp_path / "out"
    # SIGINT's default disposition for the child: a test run started as a background job without job control
    # inherits SIGINT ignored (bash does that to asynchronous commands), and Python keeps an ignored SIGINT ignored.
    proc = subprocess.Popen([sys.executable, "-m", "qhyer.data", "generate", "cube-single-play", "--episodes", "200",
                             "--workers", "2", "--out", str(out)], cwd=REPO, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not re.search(r"\| 0/220 \[", "".join(stderr)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "".join(stderr)
        time.sleep(1.0)  # let the workers start their first episodes
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
    reader.join(timeout=5)
    assert "interrupted" in "".join(stderr)
    assert leftovers(out) == []


def test_bad_arguments_are_one_line_config_errors(tmp_path):
    spec = get_spec("cube-single-play")
    for kwargs in ({"episodes": 0}, {"workers": 0}, {"seed": -1}, {"episode_length": 1}, {"steps": 100}):
        with pytest.raises(ConfigError) as err:
            generate(spec, tmp_path, **kwargs)
        assert "\n" not in str(err.value)
    for bad in (get_spec("maze2d-umaze"), dataclasses.replace(spec, kind="expert"),
                dataclasses.replace(spec, env_id="scene-v0")):
        with pytest.raises(ConfigError):
            generate(bad, tmp_path)
    with pytest.raises(ConfigError, match="--steps"):
        data_cli(["generate", "cube-single-play", "--steps", "10", "--out", str(tmp_path)])
    assert leftovers(tmp_path) == []


def cli_sha256(capsys, argv) -> list[str]:
    assert data_cli(argv) == 0
    return [line for line in capsys.readouterr().out.splitlines() if "sha256" in line]


def test_cli_with_short_episodes_is_worker_independent(tmp_path, capsys, monkeypatch):
    # The CLI always writes official 1001-row episodes; shorten them through the registry for the fast run.
    name = "cube-single-play-v0"
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(DATASETS[name], episode_length=40))
    runs = [cli_sha256(capsys, ["generate", "cube-single-play", "--episodes", "4", "--workers", str(workers),
                                "--no-progress", "--out", str(tmp_path / f"w{workers}")]) for workers in (1, 2)]
    assert runs[0] == runs[1] and len(runs[0]) == 2
    assert len(read(tmp_path / "w1" / f"{name}.npz")["observations"]) == 160


@pytest.mark.slow
def test_documented_cli_command_is_worker_independent(tmp_path):
    outputs = []
    for workers in (1, 2):
        result = subprocess.run([sys.executable, "-m", "qhyer.data", "generate", "cube-single-play", "--episodes",
                                 "4", "--workers", str(workers), "--out", str(tmp_path / f"w{workers}")],
                                cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
        outputs.append([line for line in result.stdout.splitlines() if "sha256" in line])
    assert outputs[0] == outputs[1] and len(outputs[0]) == 2
    data = ogbench.load_dataset(str(tmp_path / "w2" / "cube-single-play-v0.npz"))
    assert len(data["observations"]) == 4 * 1000
