"""Report layer: tables, statistics, the claims check and figures, on synthetic run folders with known rates."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qhyer.report import claims, stats, tables, timing
from qhyer.report.__main__ import main as report_main

BUDGET = "profile=quick; steps=100; batch=8; episodes_per_task=4"
PAPER_BUDGET = "profile=paper; steps=1000000; batch=256; episodes_per_task=50"
EPISODES = 4                       # per task; rates below are multiples of 1/4 so every mean is exact
OGBENCH = ("cube-single-play-v0", "cube-single-noisy-v0")
RATES = {"qhyer": 0.75, "gciql": 0.5, "dt": 0.25}
CARD = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_cfc73569487fcb25.txt"
REPS = 200


def write_run(root: Path, study: str, variant: str, method: str, dataset: str, seed: int, rate: float,
              tasks: int = 5, drop: tuple[str, ...] = ()) -> Path:
    """A run folder as the DAG writes it, with `rate` success on every task (`drop`: columns an older file lacks)."""
    run = root / "quick" / study / variant / method / dataset / f"seed{seed}"
    run.mkdir(parents=True)
    hits = round(rate * EPISODES)
    rows = [{"method": method, "dataset": dataset, "seed": seed, "task": task, "episode": ep,
             "success": int(ep < hits), "return": 300.0 * (ep < hits), "length": 100, "budget": BUDGET,
             "profile": "quick", "study": study, "variant": variant}
            for task in range(1, tasks + 1) for ep in range(EPISODES)]
    pd.DataFrame(rows).drop(columns=list(drop)).to_csv(run / "eval_episodes.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"method": method, "dataset": dataset, "seed": seed,
                                                  "profile": "quick", "budget": BUDGET}))
    return run


def write_metrics(run: Path, values: dict[str, float], layers: int = 2) -> None:
    """metrics.csv with an early and a last val step; only the last step's values are `values`."""
    rows = []
    for step, scale in ((5, 10.0), (10, 1.0)):
        for name, value in values.items():
            rows.append({"step": step, "split": "val", "metric": name, "value": value * scale})
            rows += [{"step": step, "split": "val", "metric": f"{name}/layer{k}", "value": value * scale + k}
                     for k in range(layers)]
        rows.append({"step": step, "split": "train", "metric": "loss", "value": 1.0})
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Synthetic runs of every study, reported through the CLI into <tmp>/results."""
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    main = [write_run(runs, "main", "default", m, d, s, r) for m, r in RATES.items() for d in OGBENCH for s in (0, 1)]
    maze = [write_run(runs, "main", "default", m, "maze2d-umaze-v1", 0, r, tasks=1) for m, r in RATES.items()]
    ablation = [write_run(runs, "ablation", f"{b}-{c}", "qhyer", d, 0, 0.25 * (1 + (b == "hybrid") + (c == "nf")))
                for b in tables.BACKBONES for c in ("nf", "crl") for d in OGBENCH]
    taus = [write_run(runs, "tau", f"tau{t}", "qhyer", OGBENCH[0], 0, r)
            for t, r in ((0.5, 0.25), (0.7, 0.5), (0.9, 0.75), (0.95, 0.75), (0.99, 0.5))]
    for run in main[:4]:  # qhyer's runs: play and noisy, two seeds
        noisy = "noisy" in run.parent.name
        play_noisy = {"delta_mean": (0.38, 1.05), "abar_mean": (0.92, 0.61), "effective_memory": (12.0, 3.0),
                      "gate_attention_share": (0.57, 0.42)}
        write_metrics(run, {name: pair[noisy] for name, pair in play_noisy.items()})
    out = root / "results"
    calls = [("table1", main, []), ("table2", maze, ["--absent", "antmaze-large-play-v2"]), ("ablation", ablation, []),
             ("tau_sweep", taus, []), ("aggregate", main, []), ("dt_stats", [r / "summary.json" for r in main[:4]], [])]
    for target, inputs, extra in calls:
        assert report_main([target, "--runs", *map(str, inputs), *extra, "--out", str(out / f"{target}.csv"),
                            "--reps", str(REPS)]) == 0
    claim_tables = [str(out / f"{t}.csv") for t in claims.TABLES]
    assert report_main(["claims", "--tables", *claim_tables, "--out", str(out / "claims_check.csv")]) == 0
    return out


def read(results: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(results / f"{name}.csv")


def test_table1_values_columns_and_bold(results):
    table = read(results, "table1")
    assert len(table) == len(OGBENCH) * len(RATES)
    assert {"dataset", "method", "mean", "ci_low", "ci_high", "n_seeds", "episodes", "budget", "profile"} <= set(table)
    for row in table.itertuples():
        assert row.mean == pytest.approx(100 * RATES[row.method]) and row.n_seeds == 2
        assert row.episodes == 2 * 5 * EPISODES and row.profile == "quick" and row.budget == BUDGET
    md, tex = (results / "table1.md").read_text(), (results / "table1.tex").read_text()
    assert md.count("**75.0 [75.0, 75.0]**") == len(OGBENCH) and "**50.0" not in md
    assert tex.count(r"\textbf{75.0 [75.0, 75.0]}") == len(OGBENCH)
    assert list(table["method"][:3]) == ["qhyer", "dt", "gciql"]  # the harness's method order


def test_older_files_without_tag_columns_are_read_from_path_and_summary(tmp_path):
    run = write_run(tmp_path, "main", "default", "qhyer", OGBENCH[0], 3, 0.5,
                    drop=("method", "dataset", "seed", "study", "variant", "budget", "profile", "task"))
    episodes = tables.load_episodes([run])
    assert set(episodes["method"]) == {"qhyer"} and set(episodes["seed"]) == {3}
    assert set(episodes["profile"]) == {"quick"} and set(episodes["study"]) == {"main"}


def test_interval_covers_true_rate_and_is_deterministic():
    rng = np.random.default_rng(1)
    p = 0.6
    many = pd.DataFrame([{"seed": s, "task": t, "success": float(rng.random() < p)}
                         for s in range(10) for t in range(5) for _ in range(100)])
    first, again = stats.summarize_episodes(many, "success"), stats.summarize_episodes(many, "success")
    assert first == again and first["ci_method"] == stats.SEED_BOOTSTRAP
    assert first["ci_low"] < p < first["ci_high"] and first["ci_high"] - first["ci_low"] < 0.05
    one_seed = stats.summarize_episodes(many[many["seed"] == 0], "success")
    assert one_seed["ci_method"] == stats.EPISODE_BOOTSTRAP and one_seed["ci_low"] < p < one_seed["ci_high"]


def test_aggregate_point_estimates_equal_rliable():
    from rliable import metrics

    rng = np.random.default_rng(0)
    x, y = rng.random((5, 4)), rng.random((3, 4))
    ours = stats.aggregate_intervals(x, reps=REPS)
    assert ours["iqm"].estimate == pytest.approx(metrics.aggregate_iqm(x))
    assert ours["mean"].estimate == pytest.approx(metrics.aggregate_mean(x))
    assert ours["optimality_gap"].estimate == pytest.approx(metrics.aggregate_optimality_gap(x))
    assert stats.probability_of_improvement(x, y, reps=REPS).estimate == pytest.approx(
        metrics.probability_of_improvement(x, y))
    assert all(i.low <= i.estimate <= i.high for i in ours.values())


def test_aggregate_table(results):
    table = read(results, "aggregate")
    point = table[table["metric"] == "mean"].set_index("method")["estimate"]
    assert point.to_dict() == pytest.approx(RATES)
    improvement = table[table["metric"] == "probability_of_improvement"].set_index("baseline")["estimate"]
    assert improvement.to_dict() == pytest.approx({"dt": 1.0, "gciql": 1.0})
    profile = table[table["metric"] == "performance_profile"]
    assert len(profile) == len(RATES) * len(tables.PROFILE_THRESHOLDS)
    gap_row = next(line for line in (results / "aggregate.md").read_text().splitlines() if "optimality_gap" in line)
    assert "**0.25 [0.25, 0.25]**" in gap_row  # lower is better: QHyer's gap is bold


def test_table2_absent_dataset_is_a_row(results, tmp_path):
    table = read(results, "table2")
    absent = table[table["status"] == "absent"]
    assert list(absent["dataset"]) == ["antmaze-large-play-v2"] and "cannot be regenerated" in absent["note"].iloc[0]
    maze = table[table["status"] == "measured"].set_index("method")
    expected = 100 * (300 * RATES["qhyer"] - 23.85) / (161.86 - 23.85)  # D4RL reference scores of maze2d-umaze
    assert maze.loc["qhyer", "mean"] == pytest.approx(expected) and maze.loc["qhyer", "metric"] == "normalized_score"
    assert "antmaze-large-play-v2" in (results / "table2.md").read_text()
    run = write_run(tmp_path, "main", "default", "qhyer", "antmaze-large-play-v2", 0, 0.5, tasks=1)
    with pytest.raises(tables.ConfigError, match="--absent"):
        tables.table2(tables.load_episodes([run]), absent=["antmaze-large-play-v2"], reps=REPS)


def test_ablation_and_tau_tables(results):
    ablation = read(results, "ablation")
    assert len(ablation) == len(tables.BACKBONES) * 2 * len(OGBENCH)
    assert set(ablation["backbone"]) == set(tables.BACKBONES) and set(ablation["conditioning"]) == {"nf", "crl"}
    best = ablation.loc[ablation["mean"].idxmax()]
    assert (best["variant"], best["mean"]) == ("hybrid-nf", 75.0)
    tau = read(results, "tau_sweep")
    assert list(tau["tau"]) == [0.5, 0.7, 0.9, 0.95, 0.99]
    assert (results / "tau_sweep.md").read_text().count("**75.0") == 2  # ties are both bold


def test_dt_stats_from_last_val_step(results):
    table = read(results, "dt_stats")
    overall = table[(table["layer"] == "all") & (table["variant"] == "default")]
    kind = overall[overall["level"] == "kind"].set_index(["kind", "metric"])
    assert kind.loc[("play", "delta_mean"), "mean"] == pytest.approx(0.38)
    assert kind.loc[("noisy", "gate_attention_share"), "mean"] == pytest.approx(0.42)
    assert set(kind["n_runs"]) == {2} and set(table["step"].astype(str)) == {"10"}
    layer1 = table[(table["level"] == "dataset") & (table["layer"] == "1") & (table["metric"] == "delta_mean")]
    assert sorted(layer1["mean"]) == pytest.approx([1.38, 2.05])
    assert len(table[table["level"] == "run"]) == 4 * 4 * 3  # runs x metrics x (all + 2 layers)


def test_verdicts_on_synthetic_tables(results):
    check = read(results, "claims_check").set_index("id")
    assert set(check["verdict"]) <= {"not comparable", "missing"}  # everything here is profile quick
    assert check.loc["main.cube-single-play.qhyer", "verdict"] == "not comparable"
    assert check.loc["main.cube-double-play.qhyer", "verdict"] == "missing"  # dataset not in the synthetic runs
    assert check.loc["main.antmaze-large-play.qhyer", "verdict"] == "missing"  # absent dataset
    assert check.loc["coverage.rtg", "verdict"] == "missing"
    dt = check.loc["dt.play.delta"]
    assert dt["verdict"] == "not comparable" and "at this budget: reproduced" in dt["evidence"]
    assert "profile quick is not paper" in dt["evidence"] and "seeds 2 < 8" in dt["evidence"]
    assert check.loc["tau.trend", "verdict"] == "missing"  # tau 0.6 and 0.8 were not run
    md = (results / "claims_check.md").read_text()
    assert "profile `quick`" in md.splitlines()[2] and "not comparable" in md


def _measured(mean: float, low: float, high: float, budget: str = PAPER_BUDGET, seeds: int = 8, **keys) -> dict:
    return {**keys, "mean": mean, "ci_low": low, "ci_high": high, "n_seeds": seeds, "budget": budget,
            "profile": budget_profile(budget), "metric": "success_x100"}


def budget_profile(budget: str) -> str:
    return tables.budget_fields(budget)["profile"]


@pytest.mark.parametrize("interval, budget, seeds, verdict", [
    ((83.0, 80.0, 86.0), PAPER_BUDGET, 8, "reproduced"),
    ((84.4, 84.4, 84.4), PAPER_BUDGET, 8, "reproduced"),       # inside the rounding band of "84"
    ((70.0, 65.0, 75.0), PAPER_BUDGET, 8, "below"),
    ((95.0, 90.0, 99.0), PAPER_BUDGET, 8, "above"),
    ((84.0, 80.0, 88.0), BUDGET, 8, "not comparable"),          # profile quick
    ((84.0, 80.0, 88.0), PAPER_BUDGET, 5, "not comparable"),    # fewer seeds than the paper
    ((84.0, 80.0, 88.0), PAPER_BUDGET.replace("1000000", "100000"), 8, "not comparable"),  # fewer steps
])
def test_value_verdicts(interval, budget, seeds, verdict):
    doc = claims.load_claims()
    claim = next(c for c in doc["claims"] if c["id"] == "main.cube-single-play.qhyer")
    table = pd.DataFrame([_measured(*interval, budget=budget, seeds=seeds, dataset=OGBENCH[0], method="qhyer")])
    assert claims.check_claim(claim, doc["budgets"], {"table1": table})["verdict"] == verdict


def test_missing_ordering_and_total_verdicts():
    doc = claims.load_claims()
    by_id = {c["id"]: c for c in doc["claims"]}
    assert claims.check_claim(by_id["main.cube-single-play.qhyer"], doc["budgets"], {})["verdict"] == "missing"
    order = by_id["ablation.order.backbone"]
    means = {"hybrid-nf": 84, "mamba-nf": 80, "attention-nf": 74}
    table = pd.DataFrame([_measured(m, m - 1, m + 1, dataset=d, variant=v) for d in OGBENCH for v, m in means.items()])
    assert claims.check_claim(order, doc["budgets"], {"ablation": table})["verdict"] == "reproduced"
    table.loc[table["variant"] == "attention-nf", "mean"] = 99.0
    result = claims.check_claim(order, doc["budgets"], {"ablation": table})
    assert result["verdict"] == "not reproduced" and "does not hold" in result["evidence"]
    maze = ("maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1")
    d4rl = "profile=paper; steps=100000; batch=256; episodes_per_task=100"
    totals = pd.DataFrame([_measured(s, s - 5, s + 5, budget=d4rl, dataset=d, method=m)
                           for m, s in (("qhyer", 120.0), ("qt", 45.5), ("dt", 10.0)) for d in maze])
    best = claims.check_claim(by_id["total.maze2d.previous-best"], doc["budgets"], {"table2": totals})
    assert (best["method"], best["measured"], best["verdict"]) == ("qt", pytest.approx(136.5), "reproduced")
    assert claims.check_claim(by_id["total.maze2d.qhyer"], doc["budgets"], {"table2": totals})["verdict"] == "above"


def test_claims_quotes_are_verbatim_from_the_card():
    if not CARD.exists():
        pytest.skip(f"paper card not present at {CARD}")
    card = CARD.read_text()
    assert [c["id"] for c in claims.load_claims()["claims"] if c["quote"] not in card] == []


FIGURES = {"fig_table1": "table1", "fig_ablation": "ablation", "fig_tau": "tau_sweep", "fig_dt": "dt_stats",
           "fig_gate": "dt_stats", "fig_aggregate": "aggregate", "fig_profiles": "aggregate"}


@pytest.mark.parametrize("script, table", FIGURES.items())
def test_figures_written(results, tmp_path, monkeypatch, script, table):
    outputs = [tmp_path / f"{script}.png", tmp_path / f"{script}.pdf"]
    path = Path(__file__).resolve().parents[1] / "paper_figures" / f"{script}.py"
    monkeypatch.setattr("sys.argv", [str(path), str(results / f"{table}.csv"), *map(str, outputs)])
    with pytest.raises(SystemExit) as exit_info:  # the thin script exactly as the DAG runs it
        runpy.run_path(str(path), run_name="__main__")
    assert exit_info.value.code == 0
    assert all(p.stat().st_size > 1000 for p in outputs)


def test_cli_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        from qhyer.errors import cli_main

        cli_main(lambda: report_main(["table1", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "t.csv")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "does not exist" in err and "\n" not in err
    bad = tmp_path / "eval_episodes.csv"
    bad.write_text("method,dataset\nqhyer\n\"unterminated")
    with pytest.raises(tables.DataError, match="not a readable CSV|lacks|cannot tell"):
        tables.load_episodes([bad])


def write_benchmark(path: Path, seconds: float, rss: float = 100.0) -> None:
    """A Snakemake `benchmark:` TSV (its column layout)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{seconds}\t0:00:{int(seconds):02d}\t{rss}\t1\t1\t1\t0\t0\t50\t{seconds}\n")


def test_timing_sums_job_time_per_method_and_stage(tmp_path):
    root = tmp_path / "benchmark"
    write_benchmark(root / "data" / "cube-single-play-v0.tsv", 30.0)
    for method, train_s in (("qhyer", 240.0), ("dt", 60.0)):
        for seed in (0, 1):
            run = f"main/default/{method}/cube-single-play-v0/seed{seed}.tsv"
            write_benchmark(root / "train" / run, train_s, rss=500.0 if method == "qhyer" else 200.0)
            write_benchmark(root / "evaluate" / run, 6.0)
    jobs = timing.load_benchmarks(root)
    assert len(jobs) == 9 and set(jobs["seed"].dropna()) == {"0", "1"}
    table = timing.summary(jobs).set_index("method")
    assert table.loc["qhyer", "train"] == pytest.approx(8.0) and table.loc["qhyer", "evaluate"] == pytest.approx(0.2)
    assert table.loc["(data)", "total"] == pytest.approx(0.5) and table.loc["all", "jobs"] == 9
    assert table.index[0] == "qhyer"  # the costliest method first
    assert table.loc["all", "total"] == pytest.approx((30 + 2 * 240 + 2 * 60 + 4 * 6) / 60)
    written = report_main(["timing", "--benchmarks", str(root), "--out", str(tmp_path / "timing.csv")])
    assert written == 0 and "peak memory of one job: 500 MB" in (tmp_path / "timing.md").read_text()
    write_benchmark(root / "train" / "stray.tsv", 1.0)
    with pytest.raises(tables.DataError, match="not a benchmark file"):
        timing.load_benchmarks(root)
    with pytest.raises(tables.DataError, match="no benchmark files"):
        timing.load_benchmarks(tmp_path / "nowhere")
