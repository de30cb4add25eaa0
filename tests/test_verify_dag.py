"""The staged `verify` target at the smoke budget (workflow/rules/verify.smk): seeds are added stage by stage only to
the runs of undecided claims; a second run does nothing; a run killed in stage 2 resumes to the same tables."""

from __future__ import annotations

import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from test_workflow import SNAKEMAKE, copy_of_repo  # tests/ (pytest puts the test folder on sys.path)

CUBE = "cube-single-play-v0"
# Decided and undecided at stage 1 by construction: a band a billion wide holds any finite interval; a method
# against itself differs by 0 on every seed, so no interval of the difference lies above or below 0.
CLAIMS = {
    "version": 1, "paper": "verify DAG test", "source": "tests/test_verify_dag.py",
    "protocols": {"none": {"source": "the test's own: no requirement, so each verdict is the statistical one"}},
    "tolerances": {"success_x100": 5},
    "claims": [
        {"id": "decided", "type": "value", "quote": "test", "metric": "success_x100", "value": 50, "tolerance": 1e9,
         "match": {"study": "main", "method": "gcbc", "dataset": CUBE}, "protocol": "none"},
        {"id": "undecided", "type": "ordering", "quote": "test", "match": {"study": "main", "dataset": CUBE},
         "key": "method", "chains": [["dt", "dt"]], "protocol": "none"}]}
VERIFY = {"claims": ["decided", "undecided"],
          "verify": {"first_seeds": 2, "step_seeds": 1, "max_seeds": 4, "claims_file": "verify_claims.yaml"}}
RUNS = f"runs/smoke/main/default/{{method}}/{CUBE}/seed{{seed}}"


@pytest.mark.dag
def test_verify_adds_seeds_only_where_undecided_reruns_nothing_and_resumes_a_killed_stage(tmp_path):
    env = copy_of_repo(tmp_path)
    (tmp_path / "verify_claims.yaml").write_text(yaml.safe_dump(CLAIMS))
    (tmp_path / "verify_config.yaml").write_text(yaml.safe_dump(VERIFY))
    command = [*SNAKEMAKE, "--cores", "2", "--configfile", "verify_config.yaml", "--config", "budget=smoke"]

    def run(*flags):
        return subprocess.run([*command, *flags, "--", "verify"], cwd=tmp_path, capture_output=True, text=True,
                              env=env)

    first = run()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    seeds = {m: sorted(int(p.name[4:]) for p in (tmp_path / RUNS.format(method=m, seed=0)).parent.glob("seed*"))
             for m in ("gcbc", "dt")}
    assert seeds == {"gcbc": [0, 1], "dt": [0, 1, 2, 3]}  # the decided claim's runs got no stage-2 seed
    check = pd.read_csv(tmp_path / "results" / "verify_check.csv").set_index("id")
    assert check.loc["decided", ["verdict", "stage", "seeds"]].tolist() == ["reproduced", 1, 2]
    assert check.loc["undecided", ["verdict", "stage", "seeds"]].tolist() == ["inconclusive", 3, 4]
    stages = tmp_path / "results" / "verify" / "smoke"
    assert sorted(p.name for p in stages.iterdir()) == ["stage1", "stage2", "stage3"]
    assert (tmp_path / "results" / "verify_citations.csv").is_file()
    assert (tmp_path / "paper_figures" / "verify_claims.png").stat().st_size > 0  # the forest plot with stages

    again = run("-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]

    # kill it in stage 2: stage 1's decision is kept, stage 2's first training job is running
    for name in ("verify_check.csv", "verify_check.md"):
        (tmp_path / "results" / name).unlink()
    for stage in ("stage2", "stage3"):
        for path in (stages / stage).iterdir():
            path.unlink()
    for seed in (2, 3):
        subprocess.run(["rm", "-r", str(tmp_path / RUNS.format(method="dt", seed=seed))], check=True)
    started = tmp_path / "logs" / "smoke" / "train" / "main" / "default" / "dt" / CUBE / "seed2.log"
    started.unlink()
    killed = subprocess.Popen([*command, "--", "verify"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not started.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert killed.poll() is None, "the run ended before its stage-2 training started"
    killed.send_signal(signal.SIGINT)  # Ctrl-C: Snakemake stops its jobs and keeps what finished
    killed.wait(timeout=300)
    assert not (tmp_path / RUNS.format(method="dt", seed=3) / "summary.json").exists()
    resumed = run("--rerun-incomplete")
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert pd.read_csv(tmp_path / "results" / "verify_check.csv").set_index("id").equals(check)
