"""The smoke DAG through Snakemake's SLURM executor on a real SLURM (needs `tests/slurm/local_cluster.sh start`):

    .venv/bin/python -m pytest -m slurm tests/slurm

Jobs are checked in the cluster's job-completion log (JobCompLoc): the test cluster has no accounting database,
so `sacct` answers nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import SNAKEMAKE, copy_of_repo, planned_jobs

pytestmark = pytest.mark.slurm

CLUSTER_SCRIPT = Path(__file__).with_name("local_cluster.sh")
# The user's profile with the test cluster's settings layered over it (paths relative to a copy of the repository).
SLURM_FLAGS = ["--profile", "workflow/profiles/slurm", "--workflow-profile", "tests/slurm/profile"]
BUDGET = "smoke"
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/")
SLURM_RULES = ("generate_ogbench", "generate_maze2d", "train", "evaluate")  # every other rule is a localrule
DAG_TIMEOUT_S = 3600  # a hung status loop fails the test instead of CI's 90-minute limit
# Fault test: one GCBC run made long enough (checkpoint every 200 of 4000 updates) for a cancel to land mid-run.
# A config file, not --config: Snakemake reads nested --config values as strings, which the schema rejects.
FAULT_RUN = f"runs/{BUDGET}/main/default/gcbc/maze2d-umaze-v1/seed0"
FAULT_STEPS = 4000
FAULT_CONFIG = {"train": {"checkpoint_every": 200, "method_overrides": {"gcbc": {"steps": FAULT_STEPS}}}}
# A `python` first on PATH that fails the first evaluation job once (atomic mkdir marks it done), else execs python.
FAIL_ONCE_PYTHON = """#!/bin/sh
if [ "$2" = qhyer.evaluate ] && mkdir "{marker}" 2>/dev/null; then echo "injected failure" >&2; exit 1; fi
exec "{python}" "$@"
"""


@pytest.fixture(scope="module", autouse=True)
def running_cluster():
    status = subprocess.run([str(CLUSTER_SCRIPT), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        pytest.fail(f"no SLURM here ({status.stderr.strip()}); start one with: sudo {CLUSTER_SCRIPT} start")


def finished_slurm_jobs() -> dict[str, dict[str, str]]:
    """Every finished job of the cluster's job-completion log: JobId → its fields (JobState, WorkDir, ...)."""
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    log = Path(re.search(r"^JobCompLoc\s*=\s*(\S+)", config, re.M).group(1))
    records = (dict(re.findall(r"(\w+)=(\S*)", line)) for line in log.read_text().splitlines())
    return {record["JobId"]: record for record in records}


def submitted_jobs(output: str) -> dict[str, list[str]]:
    """Rule → SLURM job ids, in submission order, from the executor's 'submitted with SLURM jobid' lines."""
    jobs = defaultdict(list)
    for job_id, rule in SUBMITTED.findall(output):
        jobs[rule].append(job_id)
    return dict(jobs)


def slurm_states(job_ids: list[str]) -> list[str]:
    finished = finished_slurm_jobs()
    return [finished[job_id]["JobState"] for job_id in job_ids]


def test_smoke_dag_runs_as_slurm_jobs_and_gives_the_local_executors_tables(tmp_path):
    """Every data, training and evaluation job is a SLURM job that completed in the run's folder; tables,
    figures and claims stay local (localrules); every table equals the local executor's, cell for cell."""
    slurm_dir, local_dir = tmp_path / "slurm", tmp_path / "local"
    env = copy_of_repo(slurm_dir)
    copy_of_repo(local_dir)

    started = time.perf_counter()
    result = subprocess.run([*SNAKEMAKE, *SLURM_FLAGS, "--config", f"budget={BUDGET}", "--", "all"], cwd=slurm_dir,
                            capture_output=True, text=True, env=env, timeout=DAG_TIMEOUT_S)
    slurm_seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr

    jobs = submitted_jobs(output)
    planned = planned_jobs("--config", f"budget={BUDGET}", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data")
    assert {rule: len(ids) for rule, ids in jobs.items()} == {rule: planned[rule] for rule in SLURM_RULES}, output
    finished = finished_slurm_jobs()
    for job_id in (job_id for ids in jobs.values() for job_id in ids):
        assert finished[job_id]["JobState"] == "COMPLETED", finished[job_id]
        assert Path(finished[job_id]["WorkDir"]) == slurm_dir

    started = time.perf_counter()
    local = subprocess.run([*SNAKEMAKE, "--cores", "2", "--config", f"budget={BUDGET}", "--", "all"], cwd=local_dir,
                           capture_output=True, text=True, env=env, timeout=DAG_TIMEOUT_S)
    local_seconds = time.perf_counter() - started
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    print(f"smoke DAG: SLURM executor {slurm_seconds:.0f} s, local executor {local_seconds:.0f} s")

    tables = sorted(path.name for path in (local_dir / "results").glob("*.csv"))
    assert "table1.csv" in tables and "claims_check.csv" in tables
    assert tables == sorted(path.name for path in (slurm_dir / "results").glob("*.csv"))
    for name in tables:
        pd.testing.assert_frame_equal(pd.read_csv(slurm_dir / "results" / name),
                                      pd.read_csv(local_dir / "results" / name), obj=name)


def running_train_job(deadline: float, snakemake: subprocess.Popen, checkpoint: Path) -> str:
    """The SLURM id of the training job once it has written its first checkpoint."""
    while time.monotonic() < deadline and snakemake.poll() is None:
        if checkpoint.exists():
            queue = subprocess.run(["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"],
                                   capture_output=True, text=True, check=True).stdout
            ids = [line.split("|")[0] for line in queue.splitlines() if "|rule_train_" in line]
            assert len(ids) == 1, queue
            return ids[0]
        time.sleep(0.5)
    pytest.fail(f"no checkpoint at {checkpoint} while the training job ran (Snakemake exit {snakemake.poll()})")


def test_cancelled_training_resumes_and_a_failed_job_is_retried(tmp_path):
    """`scancel` of a training job mid-run (as a pre-emption would): Snakemake resubmits it and the trainer resumes
    from checkpoints/last.pt (its summary.json records the step); an evaluation job that fails once is resubmitted;
    the target is then built."""
    env = copy_of_repo(tmp_path)
    shim = tmp_path / "fail_once"
    shim.mkdir()
    python = Path(env["PATH"].split(":")[0]) / "python"
    (shim / "python").write_text(FAIL_ONCE_PYTHON.format(marker=tmp_path / "failed_once", python=python))
    (shim / "python").chmod(0o755)
    env["PATH"] = f"{shim}:{env['PATH']}"
    (tmp_path / "fault.yaml").write_text(yaml.safe_dump(FAULT_CONFIG))

    command = [*SNAKEMAKE, *SLURM_FLAGS, "--configfile", "fault.yaml", "--config", f"budget={BUDGET}", "--",
               f"{FAULT_RUN}/eval_episodes.csv"]
    with subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as snakemake:
        deadline = time.monotonic() + DAG_TIMEOUT_S
        cancelled = running_train_job(deadline, snakemake, tmp_path / FAULT_RUN / "checkpoints" / "last.pt")
        subprocess.run(["scancel", cancelled], check=True)
        output, _ = snakemake.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert snakemake.returncode == 0, output[-4000:]

    jobs = submitted_jobs(output)
    assert jobs["train"][0] == cancelled and slurm_states(jobs["train"]) == ["CANCELLED", "COMPLETED"], output
    assert slurm_states(jobs["evaluate"]) == ["FAILED", "COMPLETED"], output
    summary = json.loads((tmp_path / FAULT_RUN / "summary.json").read_text())
    assert 0 < summary["resumed_from_step"] < FAULT_STEPS and summary["steps_trained"] == FAULT_STEPS, summary
    assert len(pd.read_csv(tmp_path / FAULT_RUN / "eval_episodes.csv")) > 0
