"""The Snakemake DAG: lint, config validation, job counts per budget."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from qhyer.agent import COMPILE_MODES, PRECISIONS
from qhyer.algorithm import CONDITIONINGS, QHyerConfig
from qhyer.methods import METHODS
from qhyer.models.hybrid import BACKBONES
from qhyer.report import timing
from qhyer.runs import STUDIES, study_variants

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


def test_smoke_budget_job_counts():
    counts = planned_jobs("--config", "budget=smoke", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data")
    methods, table1, ablation, taus, source = 7, 2, 3 * 2, 2, 3  # source: dt, qt, lsdt on maze2d-umaze
    table2 = 1  # maze2d-umaze; AntMaze has no user file here, so it is an 'absent' row, not a job
    runs = methods * (table1 + table2) + ablation + taus + source
    assert counts["generate_ogbench"] == 2 and counts["generate_maze2d"] == 1
    assert counts["train"] == runs and counts["evaluate"] == runs
    for rule in ("table1", "table2", "ablation", "tau_sweep", "dt_stats", "aggregate", "claims", "claims_main"):
        assert counts[rule] == 1, rule


@pytest.mark.parametrize("budget, runs", [
    ("quick", 7 * (6 + 3) + 2 * (15 + 1) + 7 + 3 * 3),  # Table 1 (+ cube-triple/quadruple-play for the cube total)
    #                                                     + Maze2d rows, ablation (+ its rtg-goals control),
    #                                                     τ sweep, source; one seed
    # Table 1: 10 + cube-triple/quadruple-play (cube total)
    ("paper", 8 * (7 * (12 + 3) + 2 * (15 + 1) + 2 * 7 + 3 * 3)),
])
def test_budget_job_counts(budget, runs):
    counts = planned_jobs("--config", f"budget={budget}", "runs_root=/nonexistent/runs",
                          "data_root=/nonexistent/data")
    assert counts["train"] == runs and counts["evaluate"] == runs


def test_main_job_for_table1_only_plans_what_it_needs():
    counts = planned_jobs("results/table1.csv", "--config", "budget=smoke", "runs_root=/nonexistent/runs",
                          "data_root=/nonexistent/data")
    assert counts["train"] == 7 * 2 and counts["table1"] == 1 and "ablation" not in counts and "table2" not in counts


def test_main_tables_target_plans_tables_1_and_2_and_their_claims():
    counts = planned_jobs("main_tables", "--config", "budget=smoke", "runs_root=/nonexistent/runs",
                          "data_root=/nonexistent/data")
    assert counts["train"] == 7 * (2 + 1) + 3 and counts["table1"] == counts["table2"] == counts["claims_main"] == 1
    assert not {"ablation", "tau_sweep", "dt_stats", "aggregate", "claims", "figure"} & set(counts), counts


@pytest.mark.parametrize("budget", ["smoke", "quick", "paper"])
def test_every_study_variant_of_a_budget_is_a_valid_qhyer_config(budget):
    """The ablation grid and τ sweep a budget asks for pass QHyerConfig's validation (the schema alone let
    τ = 0.5 through to a training job that refused it)."""
    config = yaml.safe_load((ROOT / "workflow" / "config" / "budgets" / f"{budget}.yaml").read_text())
    for study in ("ablation", "tau"):
        for fields in study_variants(study, config).values():
            resolved = QHyerConfig(**fields).for_family("ogbench_noisy")
            assert all(getattr(resolved, key) == value for key, value in fields.items()), fields


def test_study_steps_override_the_training_budget():
    """quick: ablation and τ-sweep runs take their section's `steps`, every other run (the source study's too: its
    section sets none) train.steps."""
    result = snakemake("-n", "-p", "--config", "budget=quick", "runs_root=/nonexistent/runs",
                       "data_root=/nonexistent/data")
    commands = re.findall(r"^Shell command: (python -m qhyer\.train .*)$", result.stdout + result.stderr, re.M)
    steps = {(re.search(r"study=(\w+)", c).group(1), re.search(r"train\.steps=(\d+)", c).group(1)) for c in commands}
    assert steps == {("main", "1000"), ("ablation", "500"), ("tau", "500"), ("source", "1000")}, steps


def test_invalid_config_is_rejected_before_any_job(tmp_path):
    result = snakemake("-n", "--config", "budget=smoke", "seeds=[-1]")
    assert result.returncode != 0
    assert "seeds" in result.stdout + result.stderr


def test_unknown_budget_is_one_clear_error():
    result = snakemake("-n", "--config", "budget=huge")
    assert result.returncode != 0 and "huge" in result.stdout + result.stderr


def test_old_profile_key_still_picks_a_budget():
    result = snakemake("-n", "--config", "profile=smoke", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data")
    assert result.returncode == 0 and "`--config profile=` is now `--config budget=`" in result.stderr


def copy_of_repo(dest: Path) -> dict[str, str]:
    """Copy the repository's tracked files into `dest`; return the environment for a DAG run there (rules call
    `python`, which must be this interpreter)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (ROOT / name).exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.dag
def test_smoke_budget_end_to_end(tmp_path):
    """The whole DAG at the smoke budget in a copy of the repository: every target with its columns; a second run
    has nothing to do; the Snakemake report of main_tables alone (`make report`) and of `all` hold their tables (and
    figures); deleting one run's output re-runs only that run and its dependants."""
    env = copy_of_repo(tmp_path)

    def run(*flags, target="all"):
        return subprocess.run([*SNAKEMAKE, "--cores", "2", *flags, "--config", "budget=smoke", "--", target],
                              cwd=tmp_path, capture_output=True, text=True, env=env)

    # `make reproduce` then `make report`: the report of what main_tables built (`--report` alone reports `all`, whose
    # ablation and tau tables main_tables never builds); `all` then builds only the rest
    main = run(target="main_tables")
    assert main.returncode == 0, main.stdout[-3000:] + main.stderr[-3000:]
    main_report = run("--report", "results/main_report.html", target="main_tables")
    assert main_report.returncode == 0, main_report.stderr[-3000:]
    html = (tmp_path / "results" / "main_report.html").read_text()
    assert [name for name in ("table1.csv", "table2.csv", "claims_check_main.csv") if name not in html] == []
    first = run()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    results = tmp_path / "results"
    table1 = pd.read_csv(results / "table1.csv")
    assert set(table1["dataset"]) == {"cube-single-play-v0", "cube-single-noisy-v0"}
    assert {"method", "budget", "protocol"} <= set(table1.columns) and set(table1["budget"]) == {"smoke"}
    assert set(table1["method"]) == {"qhyer", "dt", "qt", "lsdt", "gciql", "hiql", "gcbc"}
    table2 = pd.read_csv(results / "table2.csv")
    assert "antmaze-large-play-v2" in set(table2["dataset"])  # absent file → a row that says so
    assert {"dt (source)", "qt (source)", "lsdt (source)"} <= set(table2["method"])  # the source-protocol runs
    claims = pd.read_csv(results / "claims_check.csv")
    assert set(claims["verdict"]) <= {"not comparable", "missing", "unmeasured"}  # smoke is below every paper budget
    main_claims = pd.read_csv(results / "claims_check_main.csv")  # Tables 1 and 2 only: the rest is missing
    assert len(main_claims) == len(claims) and main_claims["verdict"].eq("missing").sum() > claims["verdict"].eq(
        "missing").sum()
    for name in ("ablation", "tau_sweep", "dt_stats", "aggregate"):
        assert len(pd.read_csv(results / f"{name}.csv")) > 0, name
        assert (results / f"{name}.md").stat().st_size and (results / f"{name}.tex").stat().st_size
    for figure in ("table1", "ablation", "tau", "dt", "gate", "aggregate", "profiles", "claims", "learning_curves"):
        assert (tmp_path / "paper_figures" / f"{figure}.png").stat().st_size > 0
    jobs = timing.load_benchmarks(tmp_path / "logs" / "smoke" / "benchmark")  # one benchmark file per job
    assert jobs["stage"].value_counts().to_dict() == {"train": 7 * 3 + 6 + 2 + 3, "evaluate": 7 * 3 + 6 + 2 + 3,
                                                        "data": 3}

    def planned(target="all"):
        plan = run("-n", "--quiet", "rules", target=target)
        text = plan.stdout + plan.stderr
        return {k: v for k, v in re.findall(r"^(\w+)\s+(\d+)$", text, re.M) if k != "total"}, text

    jobs, text = planned()
    assert "Nothing to be done" in text and not jobs, text
    report = run("--report", "results/report.html")
    assert report.returncode == 0, report.stderr[-3000:]
    html = (results / "report.html").read_text()
    for name in [*(f"{t}.csv" for t in ("table1", "table2", "ablation", "tau_sweep", "dt_stats", "aggregate")),
                 "claims_check.csv", *(f"{f}.png" for f in ("table1", "ablation", "tau", "dt", "gate", "aggregate",
                                                             "profiles", "claims", "learning_curves"))]:
        assert name in html, name
    # deleting one run's output: the target rules redo that run (not its training) and only what reads it
    deleted = "runs/smoke/main/default/dt/cube-single-play-v0/seed0/eval_episodes.csv"
    (tmp_path / deleted).unlink()
    jobs, text = planned("main_tables")
    assert jobs == {"evaluate": "1", "table1": "1", "claims_main": "1", "main_tables": "1"}, text
    jobs, text = planned("all")
    assert jobs == {"evaluate": "1", "table1": "1", "aggregate": "1", "claims": "1", "claims_main": "1", "figure": "4",
                    "learning_curves": "1", "all": "1"}, text
    assert run(target="main_tables").returncode == 0 and (tmp_path / deleted).exists()


def test_schema_lists_are_the_packages_lists():
    """One list per concept: the config schema's enums are the registries the code uses."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())["properties"]
    assert set(schema["methods"]["items"]["enum"]) == set(METHODS)
    assert set(schema["ablation"]["properties"]["backbones"]["items"]["enum"]) == set(BACKBONES)
    assert set(schema["ablation"]["properties"]["conditionings"]["items"]["enum"]) == set(CONDITIONINGS)
    assert set(schema["train"]["properties"]["precision"]["enum"]) == set(PRECISIONS)
    assert set(schema["train"]["properties"]["compile_mode"]["enum"]) == set(COMPILE_MODES)
    assert set(STUDIES) == {"main", "ablation", "tau", "source"}  # each has its config section or Tables 1 and 2
    assert all(STUDIES[s].section in (None, *schema) for s in STUDIES)


@pytest.mark.dag
def test_changed_data_retrains_only_the_runs_that_read_it(tmp_path):
    """The data's content is part of a run's identity (issue 20): a dataset regenerated from another seed retrains
    the runs that read it from zero (their checkpoints bound to the new files' sha256, as the manifest states) and
    nothing else; changing `data_seed` regenerates every dataset and retrains every run."""
    import torch

    env = copy_of_repo(tmp_path)
    runs = {dataset: f"runs/smoke/main/default/gcbc/{dataset}/seed0" for dataset in ("maze2d-umaze-v1",
                                                                                     "cube-single-play-v0")}

    def run(*flags, data_seed=0):
        return subprocess.run([*SNAKEMAKE, "--cores", "2", *flags, "--config", "budget=smoke", f"data_seed={data_seed}",
                               "--", *(f"{run}/eval_episodes.csv" for run in runs.values())],
                              cwd=tmp_path, capture_output=True, text=True, env=env)

    def planned(data_seed=0):
        plan = run("-n", "--quiet", "rules", data_seed=data_seed)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        return {k: v for k, v in re.findall(r"^(\w+)\s+(\d+)$", plan.stdout + plan.stderr, re.M) if k != "total"}

    def bound_to_manifest(dataset):
        checkpoint = torch.load(tmp_path / runs[dataset] / "checkpoints" / "last.pt", weights_only=False)
        manifest = yaml.safe_load((tmp_path / "data" / "smoke" / f"{dataset}.manifest.json").read_text())
        train_file = min(manifest["files"], key=len)  # `<name>.npz` beside `<name>-val.npz`
        return checkpoint["config_identity"]["data_sha256"]["train"] == manifest["files"][train_file]["sha256"]

    first = run()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    hashes = {d: torch.load(tmp_path / r / "checkpoints" / "last.pt", weights_only=False)["config_hash"]
              for d, r in runs.items()}
    # one dataset regenerated outside the DAG from another seed: only its run retrains
    regenerated = subprocess.run([sys.executable, "-m", "qhyer.data", "generate", "maze2d-umaze", "--out",
                                  "data/smoke", "--seed", "7", "--steps", "5000", "--no-progress"],
                                 cwd=tmp_path, capture_output=True, text=True, env=env)
    assert regenerated.returncode == 0, regenerated.stderr
    assert planned() == {"train": "1", "evaluate": "1"}
    second = run()
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    log = (tmp_path / "logs" / "smoke" / "train" / "main" / "default" / "gcbc" / "maze2d-umaze-v1" /
           "seed0.log").read_text()
    assert "resuming" not in log and bound_to_manifest("maze2d-umaze-v1")
    assert torch.load(tmp_path / runs["cube-single-play-v0"] / "checkpoints" / "last.pt",
                      weights_only=False)["config_hash"] == hashes["cube-single-play-v0"]
    # data_seed changed: every dataset regenerated, every run retrained on its new data
    assert planned(data_seed=3) == {"generate_maze2d": "1", "generate_ogbench": "1", "train": "2", "evaluate": "2"}
    assert run(data_seed=3).returncode == 0
    assert all(bound_to_manifest(d) for d in runs)
    assert planned(data_seed=3) == {}
