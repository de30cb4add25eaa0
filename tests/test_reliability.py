"""Catalogue of bad inputs and faults (issue 11): each gives one clear line, a non-zero exit and leaves nothing partial.

Most cases call the library and assert the `UserError` the CLIs turn into `error: <line>` + exit 2; a few run the
CLIs themselves to pin that contract end to end. Every run is a tiny GCBC on a synthetic cube-single file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_trainer import DATASET, tiny_config

from qhyer import evaluate as evaluate_cli
from qhyer.errors import BusyError, ConfigError, DataError, DivergedError
from qhyer.io import LOCK_NAME, atomic_path, folder_lock
from qhyer.methods import method_classes
from qhyer.trainer import checkpoint_path, train

REPO = Path(__file__).resolve().parents[1]


def assert_one_line(err: pytest.ExceptionInfo, *needles: str) -> None:
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def temporaries(folder: Path) -> list[Path]:
    return [path for path in folder.rglob(".*") if ".tmp" in path.name]


def gcbc(tmp_path: Path, steps: int = 4, **loop) -> dataclasses.dataclass:
    cfg = tiny_config(tmp_path, "gcbc", steps=steps)
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **loop)) if loop else cfg


def with_method(cfg, **fields):
    return dataclasses.replace(cfg, method=dataclasses.replace(cfg.method, **fields))


def with_eval(cfg, **fields):
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, **fields))


# --- rejected before any file is written --------------------------------------------------------------------------
REJECTED = [
    ({"train": {"checkpoint_every": 0}}, "train.checkpoint_every must be at least 1"),
    ({"train": {"log_every": 0}}, "train.log_every must be at least 1"),
    ({"train": {"val_every": -5}}, "train.val_every must be at least 1"),
    ({"train": {"steps": -1}}, "train.steps must be at least 1"),
    ({"train": {"val_batches": -1}}, "val_batches"),
    ({"train": {"threads": -2}}, "threads"),
    ({"train": {"on_changed_config": "ignore"}}, "train.on_changed_config must be one of"),
    ({"method": {"batch_size": 0}}, "method.batch_size must be at least 1"),
    ({"method": {"batch_size": -8}}, "method.batch_size must be at least 1"),
    ({"method": {"goal_rep": "pixels"}}, "goal_rep"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"eval": {"aggregate": "median"}}, "eval.aggregate must be one of"),
    ({"eval": {"aggregate": "best"}}, "needs eval.every > 0"),
    ({"eval": {"every": 2, "aggregate": "mean_last", "last_k": 5}}, "eval.last_k=5"),
    ({"dataset": "no-such-dataset"}, "no-such-dataset"),
]


@pytest.mark.parametrize("change, needle", REJECTED, ids=[needle[:30] for _, needle in REJECTED])
def test_bad_config_is_rejected_before_the_run_folder_exists(tmp_path, change, needle):
    cfg = gcbc(tmp_path)
    for part, fields in change.items():
        if isinstance(fields, dict):
            cfg = dataclasses.replace(cfg, **{part: dataclasses.replace(getattr(cfg, part), **fields)})
        else:
            cfg = dataclasses.replace(cfg, **{part: fields})
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert_one_line(err, needle)
    assert not Path(cfg.run_dir).exists()


def test_cuda_without_a_gpu_is_rejected_before_the_run_folder_exists(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    cfg = gcbc(tmp_path, device="cuda")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert_one_line(err, "no CUDA device")
    assert not Path(cfg.run_dir).exists()


def test_missing_dataset_file_leaves_no_stub_folder(tmp_path):
    cfg = dataclasses.replace(gcbc(tmp_path), data_dir=str(tmp_path / "empty"))
    with pytest.raises(DataError):
        train(cfg)
    assert not Path(cfg.run_dir).exists()


# --- checkpoints: corrupt, foreign, bound to their config ----------------------------------------------------------
def trained(tmp_path: Path, steps: int = 4) -> Path:
    return train(gcbc(tmp_path, steps=steps))


@pytest.mark.parametrize("content, needle", [
    (b"", "not a readable checkpoint"),
    (b"\x00garbage" * 50, "not a readable checkpoint"),
    ("pickled-dict", "not a training checkpoint"),
])
def test_corrupt_checkpoint_is_one_line_in_train_and_evaluate(tmp_path, content, needle):
    run_dir = trained(tmp_path)
    last = checkpoint_path(run_dir)
    if content == "pickled-dict":
        torch.save({"weights": torch.zeros(2)}, last)
    else:
        last.write_bytes(content)
    with pytest.raises(DataError) as err:
        train(gcbc(tmp_path, steps=6))
    assert_one_line(err, needle, "last.pt")
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir)])
    assert_one_line(err, needle)
    assert not temporaries(run_dir)


@pytest.mark.parametrize("change, differing", [
    (lambda cfg: with_method(cfg, lr=0.1), "method.lr"),
    (lambda cfg: dataclasses.replace(cfg, seed=4), "seed"),
    (lambda cfg: with_eval(cfg, every=2, aggregate="best"), "eval_schedule.aggregate"),
])
def test_resume_with_a_changed_config_is_refused(tmp_path, change, differing):
    run_dir = trained(tmp_path)
    before = {name: (run_dir / name).read_bytes() for name in ("checkpoints/last.pt", "config.yaml", "summary.json")}
    with pytest.raises(ConfigError) as err:
        train(change(gcbc(tmp_path)))
    assert_one_line(err, "different config", differing, "new run_dir", f"delete {run_dir}")
    assert before == {name: (run_dir / name).read_bytes() for name in before}


def test_decreasing_train_steps_is_refused(tmp_path):
    trained(tmp_path, steps=4)
    with pytest.raises(ConfigError) as err:
        train(gcbc(tmp_path, steps=2))
    assert_one_line(err, "train.steps=2 is below the train.steps=4")


def test_checkpoint_without_a_recorded_config_is_refused(tmp_path):
    run_dir = trained(tmp_path)
    payload = torch.load(checkpoint_path(run_dir), weights_only=False)
    for key in ("config_identity", "config_hash"):
        del payload[key]
    torch.save(payload, checkpoint_path(run_dir))
    with pytest.raises(ConfigError) as err:
        train(gcbc(tmp_path))
    assert_one_line(err, "records no config")


def test_increasing_train_steps_continues_and_is_recorded(tmp_path):
    run_dir = trained(tmp_path, steps=4)
    train(gcbc(tmp_path, steps=6))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps_trained"] == 6
    assert summary["resumed_from_step"] == 4 and summary["steps_extended_from"] == 4
    assert sorted(pd.read_csv(run_dir / "metrics.csv").query("split == 'train'")["step"].unique()) == list(range(1, 7))


def test_restart_on_changed_config_trains_afresh(tmp_path):
    run_dir = trained(tmp_path, steps=4)
    changed = with_method(gcbc(tmp_path, steps=4, on_changed_config="restart"), lr=1e-3)
    train(changed)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "resumed_from_step" not in summary and summary["method_config"]["lr"] == 1e-3
    # Identical to a run trained from scratch with the new config in a fresh folder.
    fresh = train(dataclasses.replace(changed, run_dir=str(tmp_path / "fresh")))
    ours, theirs = (torch.load(checkpoint_path(d), weights_only=False)["agent"]["modules"] for d in (run_dir, fresh))
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


# --- one writer per run folder ------------------------------------------------------------------------------------
def test_a_second_trainer_fails_at_once_and_the_first_finishes_intact(tmp_path):
    steps = 200
    cfg = gcbc(tmp_path, steps=steps, log_every=1, checkpoint_every=50)
    script = textwrap.dedent(f"""
        import dataclasses, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from test_trainer import tiny_config
        from qhyer.trainer import train
        cfg = tiny_config(__import__('pathlib').Path({str(tmp_path)!r}), 'gcbc', steps={steps})
        train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, log_every=1, checkpoint_every=50)))
    """)
    first = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    lock = Path(cfg.run_dir) / LOCK_NAME
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(BusyError) as err:
        train(cfg)
    assert time.monotonic() - started < 10  # fails at once rather than waiting for the holder
    assert_one_line(err, f"pid {first.pid}", socket.gethostname())
    assert first.wait(timeout=120) == 0
    summary = json.loads((Path(cfg.run_dir) / "summary.json").read_text())
    assert summary["steps_trained"] == steps and "resumed_from_step" not in summary
    steps_logged = pd.read_csv(Path(cfg.run_dir) / "metrics.csv").query("split == 'train'")["step"]
    assert list(steps_logged.unique()) == list(range(1, steps + 1))


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
    cfg = gcbc(tmp_path)
    Path(cfg.run_dir).mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (Path(cfg.run_dir) / LOCK_NAME).write_text(f"pid {dead.stdout.strip()} on host {socket.gethostname()}\n")
    assert (train(cfg) / "summary.json").exists()


def test_evaluation_of_a_folder_in_use_fails_at_once(tmp_path):
    run_dir = trained(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from qhyer.io import folder_lock\n"
                               f"with folder_lock({str(run_dir)!r}):\n print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError) as err:
            evaluate_cli.main([str(run_dir), "--max-steps", "1"])
        assert_one_line(err, f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()


# --- non-finite training --------------------------------------------------------------------------------------------
def test_nan_loss_stops_training_naming_step_and_term(tmp_path, monkeypatch):
    agent_cls = method_classes("gcbc")[1]
    real_update = agent_cls.update

    def update(self, batch, step):
        metrics = real_update(self, batch, step)
        return {**metrics, "actor_loss": float("nan")} if step == 2 else metrics

    monkeypatch.setattr(agent_cls, "update", update)
    cfg = gcbc(tmp_path, steps=6, checkpoint_every=2)
    with pytest.raises(DivergedError) as err:
        train(cfg)
    assert_one_line(err, "step 3", "actor_loss=nan")
    run_dir = Path(cfg.run_dir)
    assert not (run_dir / "summary.json").exists()
    assert torch.load(checkpoint_path(run_dir), weights_only=False)["step"] == 2  # the last good state
    assert not temporaries(run_dir)


def test_non_finite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    agent_cls = method_classes("gcbc")[1]
    real_update = agent_cls.update

    def update(self, batch, step):
        metrics = real_update(self, batch, step)
        if step == 0:
            with torch.no_grad():
                next(self.parameters()).fill_(float("inf"))
        return {key: 0.0 for key in metrics}  # finite losses: only the weights show it

    monkeypatch.setattr(agent_cls, "update", update)
    cfg = gcbc(tmp_path, steps=4, checkpoint_every=1)
    with pytest.raises(DivergedError) as err:
        train(cfg)
    assert_one_line(err, "non-finite weights")
    assert not checkpoint_path(Path(cfg.run_dir)).exists()


def test_huge_observations_are_refused_before_training(tmp_path):
    cfg = gcbc(tmp_path)  # writes the tiny dataset, scaled here
    for name in (f"{DATASET}.npz", f"{DATASET}-val.npz"):
        arrays = dict(np.load(Path(cfg.data_dir) / name))
        arrays["observations"] = arrays["observations"] * np.float32(1e30) + np.float32(1e30)
        np.savez_compressed(Path(cfg.data_dir) / name, **arrays)
    with pytest.raises(DataError) as err:  # their std overflows float32: the model would see only zeros
        train(cfg)
    assert_one_line(err, "std is not finite")
    assert not Path(cfg.run_dir).exists()


# --- evaluation of run folders ----------------------------------------------------------------------------------------
def killed_run(tmp_path: Path, monkeypatch, steps: int = 4, kill_at: int = 3) -> Path:
    """A run interrupted after its step-2 checkpoint (no summary.json), as a SIGKILL would leave it."""
    agent_cls = method_classes("gcbc")[1]
    real_update = agent_cls.update

    def update(self, batch, step):
        if step == kill_at - 1:
            raise KeyboardInterrupt
        return real_update(self, batch, step)

    with monkeypatch.context() as patch:
        patch.setattr(agent_cls, "update", update)
        cfg = gcbc(tmp_path, steps=steps, checkpoint_every=2)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    return Path(cfg.run_dir)


def test_evaluate_refuses_an_unfinished_run_and_allow_partial_labels_the_trained_step(tmp_path, monkeypatch):
    run_dir = killed_run(tmp_path, monkeypatch)
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir)])
    assert_one_line(err, "unfinished", "trained 2 of 4 steps", "--allow-partial")
    assert not (run_dir / "eval_episodes.csv").exists()
    evaluate_cli.main([str(run_dir), "--allow-partial", "--episodes-per-task", "1", "--num-envs", "1",
                       "--max-steps", "2", "--no-progress"])
    assert set(pd.read_csv(run_dir / "eval_episodes.csv")["step"]) == {2}


def test_evaluate_refuses_a_run_without_summary(tmp_path):
    run_dir = trained(tmp_path)
    (run_dir / "summary.json").unlink()
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir)])
    assert_one_line(err, "unfinished", "no summary.json")


@pytest.mark.parametrize("config_text", ["method: [unclosed", "just a string\n", "method: {name: gcbc}\n"])
def test_evaluate_corrupt_config_yaml(tmp_path, config_text):
    run_dir = trained(tmp_path)
    (run_dir / "config.yaml").write_text(config_text)
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir)])
    assert_one_line(err, "config.yaml", "not a run config")


@pytest.mark.parametrize("args, needle", [
    (["--max-steps", "-1"], "--max-steps"),
    (["--threads", "-1"], "--threads"),
    (["--episodes-per-task", "0"], "--episodes-per-task"),
    (["--num-envs", "0"], "--num-envs"),
])
def test_evaluate_bad_flags(tmp_path, args, needle):
    with pytest.raises(ConfigError) as err:
        evaluate_cli.main([str(tmp_path / "run"), *args])
    assert_one_line(err, needle)


def test_evaluate_cuda_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError) as err:
        evaluate_cli.main([str(tmp_path / "run"), "--device", "cuda"])
    assert_one_line(err, "no CUDA device")


def test_evaluate_a_folder_without_a_run(tmp_path):
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(tmp_path)])
    assert_one_line(err, "holds no trained run")


# --- atomic writes ------------------------------------------------------------------------------------------------
def test_a_failed_atomic_write_leaves_nothing(tmp_path):
    target = tmp_path / "out" / "table.csv"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert not target.exists() and not temporaries(tmp_path)


def test_temporaries_of_a_killed_writer_are_removed_on_resume(tmp_path):
    run_dir = trained(tmp_path)
    stale = [run_dir / "checkpoints" / ".last.pt.x1y2.pt.tmp", run_dir / ".metrics.csv.abcd.csv.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    train(gcbc(tmp_path, steps=5))
    assert not any(path.exists() for path in stale)


def test_lock_is_released_after_a_failure(tmp_path):
    with pytest.raises(RuntimeError), folder_lock(tmp_path):
        raise RuntimeError
    with folder_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {os.getpid()} ")


# --- the CLIs: `error: <one line>`, exit 2 ----------------------------------------------------------------------------
@pytest.mark.parametrize("module, args, needle", [
    ("qhyer.train", ["method=gcbc", "train.checkpoint_every=0"], "train.checkpoint_every must be at least 1"),
    ("qhyer.evaluate", ["--max-steps", "-3"], "--max-steps"),
])
def test_cli_prints_one_error_line_and_exits_2(tmp_path, module, args, needle):
    run_dir = tmp_path / "run"
    argv = [f"run_dir={run_dir}", *args] if module == "qhyer.train" else [str(run_dir), *args]
    result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert not run_dir.exists()


def test_ctrl_c_in_train_is_one_line_exit_130_and_resumable(tmp_path):
    cfg = gcbc(tmp_path)  # writes the tiny dataset
    run_dir = Path(cfg.run_dir)
    argv = ["method=gcbc", f"dataset={DATASET}", f"data_dir={cfg.data_dir}", f"run_dir={run_dir}", "seed=3",
            "method.batch_size=8", "train.steps=100000", "train.checkpoint_every=5", "train.progress=false",
            "train.threads=1", "eval.enabled=false"]
    trainer = subprocess.Popen([sys.executable, "-m", "qhyer.train", *argv], cwd=tmp_path, stderr=subprocess.PIPE,
                               text=True)
    deadline = time.monotonic() + 120
    while not checkpoint_path(run_dir).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    trainer.send_signal(signal.SIGINT)
    _, stderr = trainer.communicate(timeout=60)
    assert trainer.returncode == 130
    assert stderr.strip().splitlines()[-1] == "error: interrupted; partial outputs were not kept"
    assert not (run_dir / "summary.json").exists() and not temporaries(run_dir)
    assert torch.load(checkpoint_path(run_dir), weights_only=False)["step"] % 5 == 0
