"""The Snakemake DAG: lint, config validation, job counts per profile."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


def planned_jobs(*args: str) -> Counter:
    """Jobs per rule of a dry run (`snakemake -n` prints a 'job  count' table)."""
    result = snakemake("-n", *args, "--quiet", "rules")
    assert result.returncode == 0, result.stderr + result.stdout
    counts = Counter()
    for line in (result.stdout + result.stderr).splitlines():
        match = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_smoke_profile_job_counts():
    counts = planned_jobs("--config", "profile=smoke", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data")
    methods, table1, ablation, taus = 7, 2, 3 * 2, 2
    table2 = 1  # maze2d-umaze; AntMaze has no user file here, so it is an 'absent' row, not a job
    runs = methods * (table1 + table2) + ablation + taus
    assert counts["generate_ogbench"] == 2 and counts["generate_maze2d"] == 1
    assert counts["train"] == runs and counts["evaluate"] == runs
    for rule in ("table1", "table2", "ablation", "tau_sweep", "dt_stats", "aggregate", "claims"):
        assert counts[rule] == 1, rule


@pytest.mark.parametrize("profile, runs", [
    ("quick", 7 * (4 + 3) + 2 * 15 + 7),   # Table 1 rows + Maze2d rows, ablation, τ sweep; one seed
    ("paper", 5 * (7 * (10 + 3) + 2 * 15 + 2 * 7)),
])
def test_profile_job_counts(profile, runs):
    counts = planned_jobs("--config", f"profile={profile}", "runs_root=/nonexistent/runs",
                          "data_root=/nonexistent/data")
    assert counts["train"] == runs and counts["evaluate"] == runs


def test_main_job_for_table1_only_plans_what_it_needs():
    counts = planned_jobs("results/table1.csv", "--config", "profile=smoke", "runs_root=/nonexistent/runs",
                          "data_root=/nonexistent/data")
    assert counts["train"] == 7 * 2 and counts["table1"] == 1 and "ablation" not in counts


def test_invalid_config_is_rejected_before_any_job(tmp_path):
    result = snakemake("-n", "--config", "profile=smoke", "seeds=[-1]")
    assert result.returncode != 0
    assert "seeds" in result.stdout + result.stderr


def test_unknown_profile_is_one_clear_error():
    result = snakemake("-n", "--config", "profile=huge")
    assert result.returncode != 0 and "huge" in result.stdout + result.stderr
