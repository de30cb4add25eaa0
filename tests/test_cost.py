"""The cost estimate (qhyer/report/cost.py): it counts the jobs the DAG plans, and hours = work x time per unit."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_workflow import planned_jobs  # tests/ (pytest puts the test folder on sys.path)

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, DataError
from qhyer.methods import METHODS
from qhyer.report import cost
from qhyer.report.__main__ import main as report_cli

CPU_MS = {method: 10.0 * (i + 1) for i, method in enumerate(METHODS)}  # distinct, so a mix-up shows
EVAL_MS = {"cube-single-play-v0": 2.0, "maze2d-umaze-v1": 0.5}


@pytest.fixture
def tables(tmp_path):
    """Benchmark tables in the formats bench_train_step.py, bench_eval.py and bench_gpu.py write."""
    cpu = tmp_path / "cpu_step_times.csv"
    pd.DataFrame([{"method": m, "size": size, "mode": mode, "params": 1, "repeats": 3, "torch_threads": 1,
                   "ms_per_update": ms if (size, mode) == ("default", "eager") else ms + 1.0}  # only this one counts
                  for m, ms in CPU_MS.items() for size in ("default", "equal") for mode in ("eager", "compiled")]
                 ).to_csv(cpu, index=False)
    evals = tmp_path / "eval_step_times.csv"
    pd.DataFrame([{"dataset": d, "num_envs": n, "workers": w, "ms_per_env_step": ms / w * (1 + (n == 1))}
                  for d, ms in EVAL_MS.items() for n, w in ((1, 1), (20, 1), (20, 2))]).to_csv(evals, index=False)
    return {"cpu_table": cpu, "eval_table": evals}


def test_run_counts_per_stage_equal_the_dag_plan(tables):
    config = cost.workflow_config(cost.CONFIG_DIR, "smoke")
    config["data_root"] = "/nonexistent/data"
    runs = cost.planned_runs(config, cost.data_dir_of(config))
    counts = planned_jobs("--config", "budget=smoke", "runs_root=/nonexistent/runs", "data_root=/nonexistent/data")
    assert len(runs) == counts["train"] == counts["evaluate"]
    data = cost.planned_data(config, runs)
    families = data["family"].value_counts()
    assert families.get("ogbench", 0) == counts["generate_ogbench"]
    assert families.get("maze2d", 0) == counts["generate_maze2d"]


def test_hours_are_work_times_time_per_unit(tables, tmp_path):
    table, plan = cost.estimate("smoke", cost.CONFIG_DIR, gpu_table=None, manifest_dirs=[], **tables)
    runs = plan["runs"]
    train = table[table["stage"] == "train"].set_index("method")
    for method, group in runs.groupby("method"):
        assert train.loc[method, "jobs"] == len(group)
        assert train.loc[method, "hours"] == pytest.approx(group["steps"].sum() * CPU_MS[method] / 3.6e6)
        assert train.loc[method, "device"] == "cpu"  # the smoke budget asks for no GPU
    evaluate = table[table["stage"] == "evaluate"].set_index("method")
    expected = runs.assign(ms=runs["dataset"].map(lambda d: EVAL_MS.get(d, EVAL_MS[
        "cube-single-play-v0" if get_spec(d).family == "ogbench" else "maze2d-umaze-v1"])))
    for method, group in expected.groupby("method"):
        assert evaluate.loc[method, "hours"] == pytest.approx((group["eval_env_steps"] * group["ms"]).sum() / 3.6e6)
    # one episode per task, final checkpoint only, 40-step cap: the smoke evaluation's work per run
    qhyer_cube = runs[(runs["method"] == "qhyer") & (runs["dataset"] == "cube-single-play-v0")].iloc[0]
    assert qhyer_cube["eval_env_steps"] == 5 * 1 * 40


def test_gpu_times_measured_where_the_gpu_table_has_them_else_projected(tables, tmp_path):
    gpu = tmp_path / "gpu_2026-01-01.csv"
    pd.DataFrame([{"benchmark": "train_step", "variant": "qhyer-hybrid", "device": "cuda", "mode": "eager",
                   "ms": CPU_MS["qhyer"] / 4, "status": "ok"},
                  {"benchmark": "train_step", "variant": "dt", "device": "cuda", "mode": "eager",
                   "ms": CPU_MS["dt"] / 2, "status": "ok"}]).to_csv(gpu, index=False)
    cpu = cost.cpu_train_rates(tables["cpu_table"])
    rates = cost.gpu_train_rates(cpu, gpu)
    assert rates["qhyer"].ms == CPU_MS["qhyer"] / 4 and rates["qhyer"].source.startswith("measured")
    assert rates["gcbc"].ms == pytest.approx(CPU_MS["gcbc"] * (0.25 + 0.5) / 2)
    assert rates["gcbc"].source.startswith("projected")
    assumed = cost.gpu_train_rates(cpu, None)
    assert assumed["dt"].ms == pytest.approx(CPU_MS["dt"] / cost.ASSUMED_GPU_SPEEDUP)
    assert "ASSUMPTION" in assumed["dt"].source
    assert cost.gpu_train_rates(cpu, None, assumed_speedup=40.0)["dt"].ms == pytest.approx(CPU_MS["dt"] / 40)


def test_data_time_from_manifests(tables, tmp_path):
    manifests = tmp_path / "data"
    manifests.mkdir()
    (manifests / "cube-single-play-v0.manifest.json").write_text(json.dumps(
        {"dataset": "cube-single-play-v0", "transitions": {"train": 900, "val": 100}, "wall_time_s": 5.0}))
    table, plan = cost.estimate("smoke", cost.CONFIG_DIR, gpu_table=None, manifest_dirs=[manifests], **tables)
    data = table[table["stage"] == "data"].set_index("method")
    rows = plan["data"].set_index("dataset")["rows"]
    # cube-single-noisy shares cube-single's environment, so it takes its measured time per row
    for name in ("cube-single-play-v0", "cube-single-noisy-v0"):
        assert data.loc[name, "hours"] == pytest.approx(rows[name] * 5.0 / 1000 / 3600)
    # no Maze2d manifest: the generation benchmark's rate, labelled projected (no nan row)
    assert data["hours"].notna().all() and data.loc["maze2d-umaze-v1", "source"].startswith("projected: generation")


def test_cli_prints_totals_and_sources(tables, tmp_path, capsys):
    out = tmp_path / "cost.csv"
    argv = ["cost", "--budget", "paper", "--cpu-table", str(tables["cpu_table"]), "--eval-table",
            str(tables["eval_table"]), "--manifests", str(tmp_path), "--out", str(out)]
    assert report_cli(argv) == 0
    text = capsys.readouterr().out
    assert "total GPU-hours" in text and "total CPU-hours" in text and "measured:" in text and "projected:" in text
    written = pd.read_csv(out)
    assert set(written["stage"]) == {"train", "evaluate", "data"} and (written["device"] == "gpu").any()


def test_missing_table_is_one_clear_error(tmp_path, tables):
    with pytest.raises(DataError, match="no benchmarks/bench_train_step.py table"):
        cost.estimate("smoke", cost.CONFIG_DIR, tmp_path / "absent.csv", tables["eval_table"], None, [])


def test_slurm_time_limits_are_each_jobs_estimate_with_the_safety_factor(tables):
    """The train and evaluate rules' `runtime` (SLURM time limit): the job's own estimate x TIME_LIMIT_SAFETY,
    within TIME_LIMIT_MINUTES, for every run the DAG plans; GPU budgets use GPU times."""
    results = tables["cpu_table"].parent
    config = cost.workflow_config(cost.CONFIG_DIR, "paper")
    config["data_root"] = "/nonexistent/data"
    limits = cost.job_time_limits(config, results)
    runs = cost.planned_runs(config, cost.data_dir_of(config))
    assert set(limits) == set(zip(runs["study"], runs["variant"], runs["method"], runs["dataset"], strict=True))
    low, high = cost.TIME_LIMIT_MINUTES
    gpu = cost.gpu_train_rates(cost.cpu_train_rates(tables["cpu_table"]), None)
    evals = cost.eval_rates(tables["eval_table"], list(runs["dataset"].unique()))
    for r in runs.sample(50, random_state=0).itertuples():
        limit = limits[(r.study, r.variant, r.method, r.dataset)]  # every seed alike
        for stage, ms in (("train", r.steps * gpu[r.method].ms), ("evaluate", r.eval_env_steps * evals[r.dataset].ms)):
            expected = min(max(cost.TIME_LIMIT_SAFETY * ms / 60_000, low), high)
            assert limit[stage] == pytest.approx(expected, abs=1), (stage, r)
    values = {limit["train"] for limit in limits.values()}
    assert low in values and len(values) > 3  # short runs clipped to the floor, the others their own estimate


VERIFY_CLAIMS = ["gain.cube-single-play", "main.cube-single-play.qhyer", "ablation.attention-nf.play"]


@pytest.fixture
def fast_simulation(monkeypatch):
    monkeypatch.setattr(cost, "VERIFY_COST_EXPERIMENTS", 200)  # the seeds' expectation, not its precision, is tested


def test_verify_cost_is_the_plans_runs_times_their_seeds(tables, fast_simulation):
    """Worst case: every selected claim's runs at max_seeds, each run once; expected: each run at the largest
    expected seeds of the claims using it. Hours = updates x time per update, as for the fixed plan."""
    from qhyer.report import claims, plan

    bench = cost.Tables(tables["cpu_table"], tables["eval_table"], manifests=())
    table, info = cost.estimate_verify("smoke", VERIFY_CLAIMS, tables=bench)
    rows = table.set_index("plan")
    config, design = info["config"], info["design"]
    plans = plan.plan_claims(claims.load_claims(), config, VERIFY_CLAIMS)
    worst = plan.stage_runs(plans, {c: design.max_seeds for c in plans})
    worst_row = rows.loc["verify, baselines rerun, worst case"]
    assert worst_row["seed_runs"] == len(worst) == 3 * design.max_seeds  # qhyer, gciql, the ablation variant
    steps = {r: cost.run_work(config, *r[:4])["steps"] for r in worst}
    assert worst_row["train"] == pytest.approx(sum(steps[r] * CPU_MS[r[2]] for r in worst) / 3.6e6)
    types = {c["id"]: c["type"] for c in claims.load_claims()["claims"]}
    per_run = {}
    for claim, claim_plan in plans.items():
        for key in claim_plan.runs:
            per_run[key] = max(per_run.get(key, 0.0), info["expected_seeds"][types[claim]])
    assert rows.loc["verify, baselines rerun, expected", "seed_runs"] == pytest.approx(sum(per_run.values()))
    assert design.first_seeds < min(per_run.values()) <= design.max_seeds
    fixed, _ = cost.estimate("smoke", cost.CONFIG_DIR, gpu_table=None, manifest_dirs=[], **tables)
    assert rows.iloc[0]["train"] == pytest.approx(fixed[fixed["stage"] == "train"]["hours"].sum())
    assert table[["train", "evaluate", "data"]].notna().all().all() and (table["data"] > 0).all()


def test_data_hours_without_a_manifest_come_from_the_generation_benchmark(tables):
    table, _ = cost.estimate("smoke", cost.CONFIG_DIR, gpu_table=None, manifest_dirs=[], **tables)
    data = table[table["stage"] == "data"]
    assert len(data) and data["hours"].notna().all() and (data["hours"] > 0).all()
    assert data["source"].str.startswith("projected: generation benchmark").all()


def test_jobs_that_cannot_finish_within_limit_times_attempts_are_flagged(tables):
    config = cost.workflow_config(cost.CONFIG_DIR, "smoke")
    config["data_root"] = "/nonexistent/data"
    runs = cost.planned_runs(config, cost.data_dir_of(config))
    runs = runs[runs["method"].isin(["qhyer", "dt"]) & (runs["study"] == "main")]
    # 10 ms per QHyer update (CPU_MS): 50M updates are 139 h, beyond 24 h x 4 attempts; DT's 20 steps are not
    config["train"]["method_overrides"]["qhyer"]["steps"] = 50_000_000
    runs = runs.assign(steps=[cost.train_steps(r.study, r.method, r.dataset, config) for r in runs.itertuples()])
    flagged = cost.unfinishable_jobs(config, runs, tables["cpu_table"].parent, attempts=4)
    assert set(flagged["method"]) == {"qhyer"} and (flagged["limit_hours"] == 24).all()
    assert (flagged["attempts_needed"] == 12).all()  # ceil(2 x 138.9 h / 24 h): the limit's safety factor too
    assert "cannot finish on SLURM" in cost.unfinishable_lines(flagged)[0]
    assert cost.unfinishable_lines(flagged.iloc[:0]) == []


def test_the_train_rule_resubmits_until_the_longest_run_is_done(tables):
    """`retries` of the train rule: enough attempts of the 24 h limit for the longest planned run's time x the
    safety factor (each attempt resumes from its checkpoint), + the SLURM profile's retries as spare; None (the
    rule then takes --retries, as before) while every run fits one limit. Then nothing is flagged."""
    results = tables["cpu_table"].parent
    config = cost.workflow_config(cost.CONFIG_DIR, "smoke")
    config["data_root"] = "/nonexistent/data"
    assert cost.train_retries(config, results) is None  # smoke's runs are minutes long
    config["train"]["method_overrides"]["qhyer"]["steps"] = 50_000_000  # 139 h at CPU_MS, the longest run
    runs = cost.planned_runs(config, cost.data_dir_of(config))
    longest_ms = runs["steps"].max() * CPU_MS["qhyer"]
    limit = cost.TIME_LIMIT_MINUTES[1]
    info = cost.train_resubmission(config, results)
    spare = cost.slurm_attempts() - 1
    assert info["spare"] == spare >= 1 and info["limit_hours"] * 60 == limit
    assert info["needed"] * limit >= cost.TIME_LIMIT_SAFETY * longest_ms / 60_000 > (info["needed"] - 1) * limit
    assert info["retries"] == info["needed"] - 1 + spare == cost.train_retries(config, results)
    assert cost.train_attempts(config, results) == info["retries"] + 1
    assert cost.unfinishable_jobs(config, runs, results).empty  # the rule's attempts cover every planned run
    flagged = cost.unfinishable_jobs(config, runs, results, attempts=info["needed"] - 1)
    assert set(flagged["method"]) == {"qhyer"}
    assert f"up to {info['retries'] + 1} attempts" in cost.resubmission_line(config, results)


def test_the_train_rule_takes_its_retries_from_the_plan():
    """Snakemake 9 takes a rule's `retries` as one int (no function of the job): the rule reads train_retries."""
    import re

    rule = (cost.ROOT / "workflow" / "rules" / "train.smk").read_text().split("rule train:")[1]
    assert re.search(r"^    retries: train_retries\(config\)$", rule, re.MULTILINE)
    assert "from qhyer.report.cost import train_retries" in (cost.ROOT / "workflow" / "rules" / "train.smk").read_text()


def test_cost_cli_verify_target_and_claims_selection(capsys, fast_simulation):
    assert report_cli(["cost", "--budget", "smoke", "--target", "verify", "--claims", "main.cube-single-play.qhyer"]
                      ) == 0
    out = capsys.readouterr().out
    assert "verify, baselines published, worst case" in out and "fixed 'smoke'" in out
    with pytest.raises(ConfigError, match="--target verify"):
        report_cli(["cost", "--budget", "smoke", "--claims", "main.cube-single-play.qhyer"])
