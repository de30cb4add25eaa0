"""Catalogue of bad inputs and faults (issue 11): each gives one clear line, a non-zero exit and leaves nothing partial.

Most cases call the library and assert the `UserError` the CLIs turn into `error: <line>` + exit 2; a few run the
CLIs themselves to pin that contract end to end. Every run is a tiny GCBC on a synthetic cube-single file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
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
import yaml
from test_trainer import DATASET, tiny_config

from qhyer import evaluate as evaluate_cli
from qhyer import trainer as trainer_module
from qhyer.errors import BusyError, ConfigError, DataError, DivergedError, RetryRefused, Terminated
from qhyer.io import LOCK_NAME, atomic_path, folder_lock
from qhyer.methods import method_classes
from qhyer.run_folder import FAILURE_FILE, checkpoint_path
from qhyer.trainer import train

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


# --- resubmission is for time limits, not errors (train.attempt; qhyer/run_folder.py failure_kept) -----------------
def test_a_retry_of_a_run_that_stopped_on_an_error_exits_with_it_at_once(tmp_path, monkeypatch):
    """The error that stopped a started run is kept; a retry of its job (attempt > 1) exits with it before loading
    any data instead of retraining from the last checkpoint to the same error; attempt 1 trains again."""
    agent_cls = method_classes("gcbc")[1]
    real_update = agent_cls.update
    monkeypatch.setattr(agent_cls, "update", lambda self, batch, step: (
        {"actor_loss": float("nan")} if step == 2 else real_update(self, batch, step)))
    cfg = gcbc(tmp_path, steps=6, checkpoint_every=2)
    run_dir = Path(cfg.run_dir)
    with pytest.raises(DivergedError):
        train(cfg)
    assert (run_dir / FAILURE_FILE).read_text().startswith("DivergedError: training diverged at step 3")
    monkeypatch.setattr(trainer_module, "start_or_resume", None)  # a retry must stop before it
    monkeypatch.setattr(trainer_module, "_load_split", None)
    with pytest.raises(RetryRefused) as err:
        train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, attempt=2)))
    assert_one_line(err, "attempt 2 of this job", "not a time limit", "diverged at step 3", "fix the cause")
    monkeypatch.undo()
    assert train(cfg) == run_dir and (run_dir / "summary.json").exists()  # attempt 1: a new workflow run
    assert not (run_dir / FAILURE_FILE).exists()


@pytest.mark.parametrize("stop", [Terminated(signal.SIGTERM, "time limit"), torch.cuda.OutOfMemoryError("full")],
                         ids=["time-limit", "cuda-out-of-memory"])
def test_a_time_limit_or_cuda_memory_is_resubmitted(tmp_path, monkeypatch, stop):
    """SLURM's time limit is what the retries are for, and a shared GPU's memory may be free again on a retry."""
    agent_cls = method_classes("gcbc")[1]
    real_update = agent_cls.update

    def update(self, batch, step):
        if step == 3:
            raise stop
        return real_update(self, batch, step)

    monkeypatch.setattr(agent_cls, "update", update)
    cfg = gcbc(tmp_path, steps=6, checkpoint_every=2)
    with pytest.raises(type(stop)):
        train(cfg)
    assert not (Path(cfg.run_dir) / FAILURE_FILE).exists()
    monkeypatch.undo()
    retry = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, attempt=2))
    assert (train(retry) / "summary.json").exists()


def test_an_error_before_the_run_started_leaves_no_record_in_the_folder_hydra_made(tmp_path):
    """Hydra creates run_dir before training; a refusal before the run starts (here the batch size) fails again in
    seconds and leaves the folder as it was (the CLI removes it again: qhyer.train._remove_hydra_stub). A refused
    resume leaves a trained folder byte-identical: test_a_refused_resume_through_the_cli_leaves_the_folder_..."""
    cfg = with_method(gcbc(tmp_path), batch_size=10**6)
    Path(cfg.run_dir).mkdir(parents=True)
    with pytest.raises(ConfigError):
        train(cfg)
    assert list(Path(cfg.run_dir).iterdir()) == [Path(cfg.run_dir) / LOCK_NAME]


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


# === DAG config, dataset generation, report, refused resumes through the CLI =========================================
# Added with issue 11's remaining parts: what the DAG rejects at parse time (qhyer/workflow_config.py), the
# generator's output folder and per-dataset lock, the report on a killed run, and a refused resume through Hydra.
def dag_dry_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", *args], cwd=REPO,
                          capture_output=True, text=True)


def config_problems(result: subprocess.CompletedProcess) -> list[str]:
    """The problem lines Snakemake prints under `invalid workflow config:` (up to its `File ...` trace line)."""
    lines = (result.stdout + result.stderr).splitlines()  # Snakemake logs to stdout when it is not a terminal
    assert "invalid workflow config:" in lines, result.stdout + result.stderr
    rest = lines[lines.index("invalid workflow config:") + 1:]
    return rest[:next((i for i, line in enumerate(rest) if line.startswith("  File ")), None)]


DAG_REJECTED = [
    (["table1_datasets=[cube-singel-play-v0]"], None,
     "table1_datasets: unknown dataset 'cube-singel-play-v0' (did you mean 'cube-single-play-v0'?)"),
    (["ablation={datasets: [puzzle-9x9-play-v0], backbones: [hybrid], conditionings: [nf]}"], None,
     "ablation.datasets: unknown dataset 'puzzle-9x9-play-v0'"),
    ([], "tau_sweep: {datasets: [cube-single-play-v0], taus: [.nan]}",
     "tau_sweep.taus.0: must be a finite number (got nan)"),
    ([], "tau_sweep: {datasets: [cube-single-play-v0], taus: [1.5]}",
     "tau_sweep.taus.0: 1.5 is greater than or equal to the maximum of 1"),
    (["train={method_overrides: {gcbc: {method.batch_sise: 32}}}"], None,
     "train.method_overrides.gcbc: unknown key 'method.batch_sise' (GCBCConfig has no field 'batch_sise'; "
     "did you mean 'method.batch_size'?)"),
    (["train={method_overrides: {gcbx: {method.lr: 0.1}}}"], None,
     "train.method_overrides.gcbx: unknown method 'gcbx'"),
    (["train={method_overrides: {gcbc: {method.batch_size: many}}}"], None,
     "train.method_overrides.gcbc.method.batch_size: Value 'many' of type 'str' could not be converted to Integer"),
    ([], "train: {method_overrides: {qhyer: {method.expectile_tau: 0.3}}}",
     "train.method_overrides.qhyer: expectile_tau must lie in [0.5, 1) (got 0.3)"),
    (["colour=blue"], None, "config: unknown key 'colour' (known: budget, data_root"),
]


@pytest.mark.parametrize("config, configfile, line", DAG_REJECTED, ids=[line[:40] for *_, line in DAG_REJECTED])
def test_dag_rejects_bad_config_at_parse_time_one_line_each(tmp_path, config, configfile, line):
    extra = []
    if configfile:
        (tmp_path / "extra.yaml").write_text(configfile + "\n")
        extra = ["--configfile", str(tmp_path / "extra.yaml")]
    result = dag_dry_run(*extra, "--config", "budget=smoke", *config)
    assert result.returncode != 0
    problems = config_problems(result)
    assert len(problems) == 1 and problems[0].startswith(line), problems


@pytest.mark.parametrize("budget", ["smoke", "quick", "paper"])
def test_every_budget_passes_the_dag_config_check(budget):
    from qhyer.runs import workflow_config
    from qhyer.workflow_config import check_workflow_config

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert check_workflow_config(workflow_config(REPO / "workflow" / "config", budget), schema) == []


def test_dag_quotes_paths_with_spaces():
    runs, data = "/nonexistent/my runs", "/nonexistent/my data"
    result = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--config", "budget=smoke",
                             f"runs_root={runs}", f"data_root={data}", "--",
                             f"{runs}/smoke/main/default/gcbc/cube-single-play-v0/seed0/eval_episodes.csv"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    commands = {words[2]: words for words in (shlex.split(line.removeprefix("Shell command: "))
                                              for line in result.stdout.splitlines()
                                              if line.startswith("Shell command: python -m qhyer."))}
    run = f"{runs}/smoke/main/default/gcbc/cube-single-play-v0/seed0"
    assert commands.keys() == {"qhyer.data", "qhyer.train", "qhyer.evaluate"}
    assert f"{data}/smoke" in commands["qhyer.data"]  # each path one shell word
    assert {f"run_dir={run}", f"data_dir={data}/smoke", "train.on_changed_config=restart"} <= set(
        commands["qhyer.train"])
    assert run in commands["qhyer.evaluate"]


def generate_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhyer.data", "generate", *args, "--no-progress"], cwd=cwd,
                          capture_output=True, text=True)


def assert_cli_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_generate_into_a_file_is_refused_before_generating(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    started = time.monotonic()
    result = generate_cli("cube-single-play", "--out", "data", cwd=tmp_path)
    assert_cli_error(result, "--out data is not a writable folder")
    assert time.monotonic() - started < 60  # 1000 official episodes would take an hour
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_generate_into_a_read_only_folder_is_refused(tmp_path):
    (tmp_path / "data").mkdir(mode=0o555)
    assert_cli_error(generate_cli("maze2d-umaze", "--out", "data", cwd=tmp_path), "not a writable folder")


def test_a_second_generator_of_one_dataset_fails_at_once_others_go_on(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; from qhyer.io import folder_lock\n"
                               f"with folder_lock({str(out)!r}, '.maze2d-umaze-v1.lock'):\n"
                               " print('held', flush=True); time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_cli_error(generate_cli("maze2d-umaze", "--out", "data", "--steps", "50", cwd=tmp_path),
                         "maze2d-umaze-v1.lock is in use by", f"pid {holder.pid}")
        assert not (out / "maze2d-umaze-v1.hdf5").exists()
        assert generate_cli("maze2d-medium", "--out", "data", "--steps", "50", cwd=tmp_path).returncode == 0
    finally:
        holder.kill()
        holder.wait()
    assert (out / "maze2d-medium-v1.hdf5").exists() and (out / "maze2d-medium-v1.manifest.json").exists()


def test_generate_removes_its_own_stale_temporaries_only(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    own, other = out / ".maze2d-umaze-v1.hdf5.k1ll3d.hdf5.tmp", out / ".maze2d-medium-v1.hdf5.running.hdf5.tmp"
    for path in (own, other):
        path.write_bytes(b"partial")
    assert generate_cli("maze2d-umaze", "--out", "data", "--steps", "50", cwd=tmp_path).returncode == 0
    assert not own.exists() and other.exists()  # another generator may still be writing the other one


def test_report_refuses_a_killed_run(tmp_path, monkeypatch):
    run_dir = killed_run(tmp_path, monkeypatch)
    assert checkpoint_path(run_dir).exists()
    out = tmp_path / "results" / "table1.csv"
    result = subprocess.run([sys.executable, "-m", "qhyer.report", "table1", "--runs", str(run_dir), "--out", str(out)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert_cli_error(result, str(run_dir), "no summary.json", "did not finish")
    assert not out.parent.exists() or not any(out.parent.iterdir())


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_refused_resume_through_the_cli_leaves_the_folder_byte_identical(tmp_path):
    """Hydra used to rewrite the folder's .hydra/ with the rejected config; the path has a space (DAG roots may)."""
    data_dir = Path(gcbc(tmp_path).data_dir)
    run_dir = tmp_path / "my runs" / "gcbc"
    argv = ["method=gcbc", f"dataset={DATASET}", f"data_dir={data_dir}", f"run_dir={run_dir}", "seed=3",
            "method.batch_size=8", "train.steps=4", "train.progress=false", "train.threads=1", "eval.enabled=false"]
    first = subprocess.run([sys.executable, "-m", "qhyer.train", *argv], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert (run_dir / "summary.json").exists() and not (run_dir / ".hydra").exists()
    before = folder_bytes(run_dir)
    refused = subprocess.run([sys.executable, "-m", "qhyer.train", *argv, "method.lr=0.1"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert_cli_error(refused, "different config", "method.lr")
    assert folder_bytes(run_dir) == before
