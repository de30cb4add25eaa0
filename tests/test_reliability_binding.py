"""A run folder whose files describe one another (issue 20): the data's content in a run's identity, no bypass of
the changed-config refusal, evaluations bound to the checkpoint that made them, and one strict reader of a run's
evaluation for every table and claim. Each case asserts the one line (or exit code and line), and that nothing was
relabelled, overwritten or tabulated. Runs are a tiny GCBC on a synthetic cube-single file, or fake run folders
(tests/run_folders.py) where no training is needed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from run_folders import write_run
from test_reliability import assert_cli_error, assert_one_line, gcbc, killed_run, with_method
from test_trainer import DATASET, tiny_config, write_tiny_ogbench

from qhyer import evaluate as evaluate_cli
from qhyer.errors import ConfigError, DataError
from qhyer.io import sha256_file
from qhyer.report import claims, tables
from qhyer.run_folder import checkpoint_path, load_run
from qhyer.trainer import train

EVAL_FLAGS = ["--episodes-per-task", "1", "--num-envs", "1", "--max-steps", "2", "--no-progress"]


def evaluated(cfg) -> Path:
    """`cfg` trained, then evaluated through the CLI (1 episode per task, 2 steps each: plumbing, not scores)."""
    run_dir = train(cfg)
    evaluate_cli.main([str(run_dir), *EVAL_FLAGS])
    return run_dir


def report_cli(target: str, run_dir: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qhyer.report", target, "--runs", str(run_dir), "--out", str(out)],
                          capture_output=True, text=True)


# --- 1. the data's content is part of a run's identity ------------------------------------------------------------
def test_data_regenerated_at_the_same_size_is_refused_or_retrained(tmp_path):
    cfg = gcbc(tmp_path)
    run_dir = train(cfg)
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    write_tiny_ogbench(Path(cfg.data_dir), seed=1)  # same rows and episodes, other content
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert_one_line(err, "different config", "data_sha256.train", "data_sha256.val")
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    # the workflow's way: the checkpoint belongs to the old data, so the run trains from zero on the new one
    train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, on_changed_config="restart")))
    new_sha = sha256_file(Path(cfg.data_dir) / f"{DATASET}.npz")
    checkpoint = torch.load(checkpoint_path(run_dir), weights_only=False)
    assert checkpoint["config_identity"]["data_sha256"]["train"] == new_sha
    summary = json.loads((run_dir / "summary.json").read_text())
    assert "resumed_from_step" not in summary and summary["provenance"]["inputs_sha256"]["dataset"] == new_sha


# --- 2. train.resume=false removes everything the old run produced ------------------------------------------------
def test_resume_false_over_a_finished_run_leaves_nothing_of_the_old_run(tmp_path, capfd):
    cfg = with_eval_schedule(gcbc(tmp_path), every=2)
    run_dir = evaluated(cfg)
    assert checkpoint_path(run_dir, 2).exists() and (run_dir / "eval_episodes.csv").exists()
    fresh = dataclasses.replace(with_method(gcbc(tmp_path), lr=1e-3),
                                train=dataclasses.replace(cfg.train, resume=False))
    train(fresh)
    assert "train.resume=false: removed the previous run's" in capfd.readouterr().err
    assert not (run_dir / "eval_episodes.csv").exists() and not (run_dir / "eval_episodes_summary.csv").exists()
    assert not checkpoint_path(run_dir, 2).exists()  # the old schedule's checkpoint
    assert json.loads((run_dir / "summary.json").read_text())["method_config"]["lr"] == 1e-3
    out = tmp_path / "results" / "table1.csv"
    assert_cli_error(report_cli("table1", run_dir, out), str(run_dir), "no eval_episodes.csv", "not evaluated")
    assert not out.exists()


def with_eval_schedule(cfg, every: int):
    return dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, every=every, aggregate="best"))


# --- 3. results bound to the checkpoint that produced them --------------------------------------------------------
def test_a_run_killed_while_extending_its_steps_reports_nothing_stale(tmp_path, monkeypatch):
    run_dir = evaluated(gcbc(tmp_path, steps=2))
    killed_run(tmp_path, monkeypatch, steps=6, kill_at=5)  # resumes at 2, checkpoints 4, dies before 5
    assert torch.load(checkpoint_path(run_dir), weights_only=False)["step"] == 4
    assert not (run_dir / "summary.json").exists() and not (run_dir / "eval_episodes.csv").exists()
    out = tmp_path / "results" / "table1.csv"
    assert_cli_error(report_cli("table1", run_dir, out), str(run_dir), "no summary.json")
    assert not out.exists()


def test_evaluation_checkpoints_hold_the_weights_of_the_train_state_and_nothing_to_resume_from(tmp_path):
    """step*.pt keep the agent's weights only (a QT source run keeps 50 of them); evaluation rebuilds from them the
    agent a train state of that step holds, and one put in place of last.pt is refused with one line."""
    cfg = with_eval_schedule(gcbc(tmp_path), every=2)
    run_dir = train(cfg)
    kept = torch.load(checkpoint_path(run_dir, 2), weights_only=False)
    assert set(kept) == {"step", "agent", "data_info", "config_identity", "config_hash", "train_steps"}
    assert set(kept["agent"]) == {"modules"} and kept["step"] == 2
    stopped = train(gcbc(tmp_path / "stopped", steps=2))  # the same run, stopped at step 2
    assert torch.load(checkpoint_path(stopped), weights_only=False)["step"] == 2  # a full train state of step 2
    rebuilt, reference = load_run(run_dir, step=2)[1].state_dict(), load_run(stopped)[1].state_dict()
    assert rebuilt.keys() == reference.keys()
    assert all(torch.equal(rebuilt[key], reference[key]) for key in reference)
    final = load_run(run_dir)[1].state_dict()  # step 4: what a reader of last.pt would have rebuilt instead
    assert any(not torch.equal(rebuilt[key], final[key]) for key in final)
    shutil.copy(checkpoint_path(run_dir, 2), checkpoint_path(run_dir))
    with pytest.raises(DataError) as err:
        train(cfg)
    assert_one_line(err, "holds weights only", "no train state to resume from", "delete it")


@pytest.mark.parametrize("method", ["gcbc", "gciql"])
def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path, method):
    run_dir = evaluated(gcbc(tmp_path))
    other_cfg = tiny_config(tmp_path / "other", method, steps=4)
    other = train(with_method(other_cfg, lr=0.1) if method == "gcbc" else other_cfg)
    shutil.copy(checkpoint_path(other), checkpoint_path(run_dir))
    rows = (run_dir / "eval_episodes.csv").read_bytes()
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir), *EVAL_FLAGS])
    assert_one_line(err, "last.pt is a checkpoint of another config", "config.yaml", f"delete {run_dir}")
    with pytest.raises(DataError) as err:  # --allow-partial reads the same checkpoint
        evaluate_cli.main([str(run_dir), "--allow-partial", *EVAL_FLAGS])
    assert_one_line(err, "another config")
    assert (run_dir / "eval_episodes.csv").read_bytes() == rows
    with pytest.raises(ConfigError) as err:  # and training refuses to continue it as before
        train(gcbc(tmp_path))
    assert_one_line(err, "different config")


def test_a_summary_of_another_checkpoint_is_refused_by_evaluate(tmp_path):
    run_dir = train(gcbc(tmp_path))
    summary = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**summary, "config_hash": "0" * 16}))
    with pytest.raises(DataError) as err:
        evaluate_cli.main([str(run_dir), *EVAL_FLAGS])
    assert_one_line(err, "summary.json describes another checkpoint")
    assert not (run_dir / "eval_episodes.csv").exists()


def test_rows_of_another_checkpoint_are_not_tabulated(tmp_path):
    run_dir = evaluated(gcbc(tmp_path))
    episodes = pd.read_csv(run_dir / "eval_episodes.csv")
    assert set(episodes["config_hash"]) == {json.loads((run_dir / "summary.json").read_text())["config_hash"]}
    episodes.assign(config_hash="feedfacefeedface").to_csv(run_dir / "eval_episodes.csv", index=False)
    with pytest.raises(DataError) as err:
        tables.load_episodes([run_dir])
    assert_one_line(err, "eval_episodes.csv", "config_hash feedfacefeedface", "not of the run's current checkpoints")


# --- 4. evaluation files that cannot lie ---------------------------------------------------------------------------
def test_the_protocol_label_says_what_was_evaluated(tmp_path):
    run_dir = train(gcbc(tmp_path))
    evaluate_cli.main([str(run_dir), "--episodes-per-task", "1", "--num-envs", "1", "--max-steps", "20",
                       "--no-progress"])
    out = tmp_path / "results" / "table1.csv"
    result = report_cli("table1", run_dir, out)
    assert result.returncode == 0, result.stderr
    labels = set(pd.read_csv(out)["protocol"])
    assert labels == {"4 updates, batch 8, 1 episodes/task (capped at 20 steps), final checkpoint, dataset 3 "
                      "episodes (90 rows)"}, labels


def fake_run(tmp_path: Path, **kwargs) -> Path:
    """A finished paper-protocol run: 3 scheduled checkpoints (OGBench's mean of the last three), 4 episodes/task."""
    schedule = {"episodes_per_task": 4, "every": 100, "aggregate": "mean_last", "last_k": 3}
    return write_run(tmp_path / "runs", budget="paper", steps=300, schedule=schedule, **kwargs)


def rewrite(run_dir: Path, change) -> None:
    path = run_dir / "eval_episodes.csv"
    change(pd.read_csv(path)).to_csv(path, index=False)


CUT_OR_WRONG = {
    "cut mid-row": (lambda p: p.write_bytes(p.read_bytes()[:-7]), "ends mid-row"),
    "cut at a row end": (lambda p: p.write_bytes(p.read_bytes()[:p.read_bytes()[:-1].rfind(b"\n") + 1]),
                         "not 4 episodes"),
    "rows duplicated": (lambda p: p.write_bytes(p.read_bytes() + p.read_bytes().split(b"\n", 1)[1]),
                        "duplicated episode"),
    "a task missing": (lambda p: rewrite(p.parent, lambda f: f[f["task"] != 3]), "step 100 task 3: 0"),
    "only the last checkpoint": (lambda p: rewrite(p.parent, lambda f: f[f["step"] == 300]),
                                 "evaluated checkpoints of steps [300], not the schedule's [100, 200, 300]"),
    "half the episodes nan": (lambda p: rewrite(p.parent, lambda f: f.assign(
        success=np.where(np.arange(len(f)) % 2, np.nan, f["success"]))), "missing or non-finite success"),
    "an episode count other than recorded": (lambda p: rewrite(p.parent, lambda f: f.assign(episodes_per_task=50)),
                                             "not 50 episodes"),
    "no evaluation": (lambda p: p.unlink(), "has no eval_episodes.csv"),
    "steps_trained null": (lambda p: (p.parent / "summary.json").write_text(json.dumps(
        {**json.loads((p.parent / "summary.json").read_text()), "steps_trained": None})), "steps_trained is None"),
}


@pytest.mark.parametrize("case", CUT_OR_WRONG, ids=list(CUT_OR_WRONG))
def test_an_incomplete_evaluation_is_neither_tabulated_nor_a_verdict(tmp_path, case):
    corrupt, needle = CUT_OR_WRONG[case]
    good = [fake_run(tmp_path, seed=seed) for seed in range(3)]
    corrupt(good[1] / "eval_episodes.csv")
    for read in (tables.load_episodes, claims.measure):
        with pytest.raises(DataError) as err:
            read(good)
        assert_one_line(err, str(good[1]), needle)
    out = tmp_path / "results" / "table1.csv"
    assert report_cli("table1", good[1], out).returncode == 2 and not out.exists()


def test_a_copied_run_is_refused_naming_both_folders(tmp_path):
    runs = [fake_run(tmp_path, seed=seed) for seed in range(2)]
    copy = tmp_path / "elsewhere" / "seed1"
    shutil.copytree(runs[1], copy)
    for read in (tables.load_episodes, claims.measure):  # the Δ_t claims read the same records
        with pytest.raises(DataError) as err:
            read([*runs, copy])
        assert_one_line(err, str(runs[1]), str(copy), "count twice")


@pytest.mark.parametrize("summary, needle", [
    ([1, 2], "holds a JSON list"),
    ("protocol-null", "protocol fields steps"),
])
def test_a_summary_that_is_not_a_record_is_one_line(tmp_path, summary, needle):
    run_dir = fake_run(tmp_path)
    record = json.loads((run_dir / "summary.json").read_text())
    (run_dir / "summary.json").write_text(json.dumps({**record, "protocol": None} if summary == "protocol-null"
                                                     else summary))
    out = tmp_path / "results" / "table1.csv"
    assert_cli_error(report_cli("table1", run_dir, out), "summary.json", needle)
    assert not out.exists()


# --- 6. validation before work ------------------------------------------------------------------------------------
BEFORE_WORK = [
    ("gcbc", {"lr": float("nan")}, {}, "method.lr must be a finite number"),
    ("gcbc", {"lr": -1e-3}, {}, "method.lr must be a positive learning rate"),
    ("gcbc", {"actor_hidden_dims": (0,)}, {}, "method.actor_hidden_dims must list widths of at least 1"),
    ("dt", {"embed_dim": 10, "n_heads": 3}, {}, "method.embed_dim=10 is not divisible by method.n_heads=3"),
    ("dt", {"embed_dim": 0}, {}, "method.embed_dim must be at least 1"),
    ("gcbc", {"batch_size": 91}, {}, "method.batch_size=91 exceeds the 90 rows"),
    ("gcbc", {}, {"study": "mian"}, "unknown study 'mian'"),
    ("gcbc", {}, {"device": "cuda:7"}, "train.device=cuda:7"),
    ("gcbc", {}, {"device": "tpu"}, "train.device=tpu"),
]


@pytest.mark.parametrize("method, fields, run, needle", BEFORE_WORK, ids=[case[-1][:40] for case in BEFORE_WORK])
def test_a_config_no_run_can_train_with_is_refused_before_any_file(tmp_path, method, fields, run, needle):
    cfg = with_method(tiny_config(tmp_path, method, steps=2), **fields)
    if "device" in run:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=run["device"]))
    elif run:
        cfg = dataclasses.replace(cfg, **run)
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert_one_line(err, needle)
    assert not Path(cfg.run_dir).exists()


@pytest.mark.parametrize("change, line", [
    ({"train": {"method_overrides": {"gcbc": {"method.lr": -0.1}}}},
     "train.method_overrides.gcbc: method.lr must be a positive learning rate (got -0.1)"),
    ({"train": {"method_overrides": {"gcbc": {"method.actor_hidden_dims": [0]}}}},
     "train.method_overrides.gcbc: method.actor_hidden_dims must list widths of at least 1"),
    ({"train": {"method_overrides": {"dt": {"method.embed_dim": 10, "method.n_heads": 3}}}},
     "train.method_overrides.dt: method.embed_dim=10 is not divisible by method.n_heads=3"),
    ({"train": {"method_overrides": {"gcbc": {"method.batch_size": 6000}}}},
     "gcbc on cube-single-play-v0: method.batch_size=6000 exceeds the 101 rows of the smallest file"),
    ({"runs_root": "A_FILE"}, "runs_root: "),
])
def test_the_dag_config_check_refuses_what_the_train_job_would(tmp_path, change, line):
    from qhyer.runs import merge_config, workflow_config
    from qhyer.workflow_config import check_workflow_config

    (tmp_path / "a file").write_text("")
    if change.get("runs_root"):
        change = {"runs_root": str(tmp_path / "a file")}
    repo = Path(__file__).resolve().parents[1]
    config = merge_config(workflow_config(repo / "workflow" / "config", "smoke"), change)
    schema = __import__("yaml").safe_load((repo / "workflow" / "schemas" / "config.schema.yaml").read_text())
    problems = check_workflow_config(config, schema)
    assert any(problem.startswith(line) for problem in problems), problems


def test_generating_a_dataset_without_a_transition_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "qhyer.data", "generate", "maze2d-umaze", "--steps", "1", "--out",
                             "data", "--no-progress"], cwd=tmp_path, capture_output=True, text=True)
    assert_cli_error(result, "--steps must be at least 2 (got 1)")
    assert not (tmp_path / "data").exists()


# --- 7. one line for the errors of Hydra and the OS -----------------------------------------------------------------
@pytest.mark.parametrize("override, needle", [
    ("colour=blue", "Could not override 'colour'"),
    ("train.steps=many", "could not be converted to Integer"),
    ("method=gcbx", "Could not find 'method/gcbx'; Available options in 'method': dt, gcbc"),
])
def test_a_bad_override_is_one_line_and_exit_2(tmp_path, override, needle):
    run_dir = tmp_path / "run"
    args = ["method=gcbc", override] if not override.startswith("method=") else [override]
    result = subprocess.run([sys.executable, "-m", "qhyer.train", *args, f"run_dir={run_dir}"], cwd=tmp_path,
                            capture_output=True, text=True)
    assert_cli_error(result, needle)
    assert not run_dir.exists()


def train_cli(tmp_path: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cfg = gcbc(tmp_path)  # writes the tiny dataset
    argv = ["method=gcbc", f"dataset={DATASET}", f"data_dir={cfg.data_dir}", f"run_dir={run_dir}", "seed=3",
            "method.batch_size=8", "method.actor_hidden_dims=[32,32]", "train.steps=4", "train.progress=false",
            "train.threads=1", "eval.enabled=false", *extra]
    return subprocess.run([sys.executable, "-m", "qhyer.train", *argv], cwd=tmp_path, capture_output=True, text=True)


@pytest.fixture
def mounted(tmp_path):
    """A small tmpfs at <tmp>/mnt (root only, as CI runs): `mounted(size, read_only)` mounts it; unmounted after."""
    point = tmp_path / "mnt"
    point.mkdir()
    mounts = []

    def mount(size: str = "64m", read_only: bool = False) -> Path:
        options = f"size={size}" + (",ro" if read_only else "")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                                text=True)
        if result.returncode:
            pytest.skip(f"mounting a tmpfs is not permitted here ({result.stderr.strip() or 'not root'})")
        mounts.append(point)
        return point

    yield mount
    for path in mounts:
        subprocess.run(["umount", str(path)], check=False)


def test_training_into_a_read_only_folder_is_one_line(tmp_path, mounted):
    folder = mounted(read_only=True)  # read-only for root too
    result = train_cli(tmp_path, folder / "run")
    assert_cli_error(result, str(folder / "run"), "Read-only file system", "write to another folder")


def fill(folder: Path) -> None:
    """Fill the file system of `folder` to the last byte (unbuffered: a partial write takes what is left)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * (1 << 20)):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(tmp_path, mounted):
    folder = mounted(size="64m")
    run_dir = folder / "run"
    assert train_cli(tmp_path, run_dir).returncode == 0
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    (run_dir / "summary.json").unlink()  # an unfinished run: the rerun resumes and writes its record
    fill(folder)
    result = train_cli(tmp_path, run_dir, "train.steps=8")
    assert_cli_error(result, "No space left on device" if "No space" in result.stderr else "disk is probably full")
    assert not any(".tmp" in path.name for path in run_dir.rglob(".*"))
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    assert not (run_dir / "summary.json").exists()
    (folder / "filler").unlink()
    assert train_cli(tmp_path, run_dir, "train.steps=8").returncode == 0  # resumes once there is space


def test_evaluating_on_a_full_disk_is_one_line(tmp_path, mounted):
    folder = mounted(size="64m")
    run_dir = folder / "run"
    assert train_cli(tmp_path, run_dir).returncode == 0
    fill(folder)
    result = subprocess.run([sys.executable, "-m", "qhyer.evaluate", str(run_dir), *EVAL_FLAGS], cwd=tmp_path,
                            capture_output=True, text=True)
    assert_cli_error(result, "No space left on device")
    assert not (run_dir / "eval_episodes.csv").exists()
    assert not any(".tmp" in path.name for path in run_dir.rglob(".*"))


# --- 8. SIGTERM as SLURM sends it -----------------------------------------------------------------------------------
def test_sigterm_writes_a_checkpoint_says_so_and_the_resumed_run_is_bit_identical(tmp_path):
    steps = 2000
    cfg = gcbc(tmp_path)

    def argv(run_dir: Path) -> list[str]:
        return ["method=gcbc", f"dataset={DATASET}", f"data_dir={cfg.data_dir}", f"run_dir={run_dir}", "seed=3",
                "method.batch_size=8", "method.actor_hidden_dims=[32,32]", f"train.steps={steps}",
                "train.checkpoint_every=100000", "train.log_every=1", "train.progress=false", "train.threads=1",
                "eval.enabled=false"]

    run_dir = tmp_path / "run"
    trainer = subprocess.Popen([sys.executable, "-m", "qhyer.train", *argv(run_dir)], cwd=tmp_path,
                               stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 120
    while (not metrics.exists() or metrics.read_text().count("\n") < 20) and time.monotonic() < deadline:
        time.sleep(0.05)
    trainer.send_signal(signal.SIGTERM)
    _, stderr = trainer.communicate(timeout=60)
    assert trainer.returncode == 128 + signal.SIGTERM, stderr
    stopped = torch.load(checkpoint_path(run_dir), weights_only=False)["step"]
    assert 0 < stopped < steps  # checkpoint_every is beyond the run: written on the signal
    assert stderr.strip().splitlines()[-1] == (f"error: stopped by SIGTERM at step {stopped} of {steps}; checkpoint "
                                               f"written to {checkpoint_path(run_dir)} — rerun the same command to "
                                               "resume")
    assert not (run_dir / "summary.json").exists()
    for folder in (run_dir, tmp_path / "straight"):  # resumed, and trained in one go
        finished = subprocess.run([sys.executable, "-m", "qhyer.train", *argv(folder)], cwd=tmp_path,
                                  capture_output=True, text=True)
        assert finished.returncode == 0, finished.stderr
    ours, theirs = (torch.load(checkpoint_path(d), weights_only=False)["agent"]["modules"]
                    for d in (run_dir, tmp_path / "straight"))
    assert all(torch.equal(ours[key], theirs[key]) for key in ours)


def test_the_slurm_profile_asks_for_a_signal_before_the_time_limit():
    profile = Path(__file__).resolve().parents[1] / "workflow" / "profiles" / "slurm" / "config.yaml"
    train_resources = __import__("yaml").safe_load(profile.read_text())["set-resources"]["train"]
    assert "--signal=TERM@" in train_resources["slurm_extra"]


def test_cost_refuses_a_speedup_that_is_not_a_positive_number(tmp_path):
    for value in ("nan", "inf", "0"):
        result = subprocess.run([sys.executable, "-m", "qhyer.report", "cost", "--budget", "smoke",
                                 "--assumed-gpu-speedup", value], capture_output=True, text=True, cwd=tmp_path)
        assert_cli_error(result, "assumed GPU speed-up must be a positive number")


@pytest.mark.parametrize("arguments, needle", [(["--seed", "-1"], "--seed at least 0"),
                                               (["--out", "taken"], "--out taken is a file")])
def test_rollout_sanity_refuses_bad_arguments_before_any_episode(tmp_path, arguments, needle):
    (tmp_path / "taken").write_text("a file")
    result = subprocess.run([sys.executable, "-m", "qhyer.rollout", "sanity", "--dataset", "maze2d-umaze",
                             "--episodes", "1000", *arguments], capture_output=True, text=True, cwd=tmp_path)
    assert_cli_error(result, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and (tmp_path / "taken").read_text() == "a file"
