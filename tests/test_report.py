"""Report layer: tables, statistics and figures on fake run folders with known rates; every run setting is read from
the run's summary.json record, never from its folder's path."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_folders import DT_VALUES, write_run

from qhyer.errors import DataError, cli_main
from qhyer.report import claims, stats, tables, timing, verdicts
from qhyer.report.__main__ import main as report_main
from qhyer.runs import STUDIES, get_study, load_records, study_datasets, study_variants, workflow_config

EPISODES = 4                       # per task; rates below are multiples of 1/4 so every mean is exact
SCHEDULE = {"episodes_per_task": EPISODES, "every": 0, "aggregate": "final", "last_k": 1}
OGBENCH = ("cube-single-play-v0", "cube-single-noisy-v0")
RATES = {"qhyer": 0.75, "gciql": 0.5, "dt": 0.25}
CARD = Path(__file__).resolve().parents[2] / "shared" / "seed" / "000_cfc73569487fcb25.txt"
CONFIG_DIR = Path(__file__).resolve().parents[1] / "workflow" / "config"
REPS = 200


def run(root: Path, rate: float, **kwargs) -> Path:
    return write_run(root, schedule=SCHEDULE, score=100 * rate, **kwargs)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Fake runs of every study, reported through the CLI into <tmp>/results."""
    root = tmp_path_factory.mktemp("report")
    runs = root / "runs"
    main = [run(runs, r, method=m, dataset=d, seed=s) for m, r in RATES.items() for d in OGBENCH for s in (0, 1)]
    maze = [run(runs, r, method=m, dataset="maze2d-umaze-v1") for m, r in RATES.items()]
    ablation = [run(runs, 0.25 * (1 + (b == "hybrid") + (c == "nf")), study="ablation", variant=f"{b}-{c}",
                    dataset=d, method_fields={"backbone": b, "conditioning": c})
                for b in tables.BACKBONES for c in ("nf", "crl") for d in OGBENCH]
    taus = [run(runs, r, study="tau", variant=f"tau{t}", method_fields={"expectile_tau": t})
            for t, r in ((0.5, 0.25), (0.7, 0.5), (0.9, 0.75), (0.95, 0.75), (0.99, 0.5))]
    out = root / "results"
    calls = [("table1", main, []), ("table2", maze, ["--absent", "antmaze-large-play-v2"]), ("ablation", ablation, []),
             ("tau_sweep", taus, []), ("aggregate", main, []),
             ("dt_stats", [r / "summary.json" for r in main if "qhyer" in r.parts], [])]
    for target, inputs, extra in calls:
        assert report_main([target, "--runs", *map(str, inputs), *extra, "--out", str(out / f"{target}.csv"),
                            "--reps", str(REPS)]) == 0
    return out


def read(results: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(results / f"{name}.csv")


def test_table1_values_columns_and_bold(results):
    table = read(results, "table1")
    assert len(table) == len(OGBENCH) * len(RATES)
    assert {"dataset", "method", "mean", "ci_low", "ci_high", "n_seeds", "episodes", "budget", "protocol"} <= set(table)
    for row in table.itertuples():
        assert row.mean == pytest.approx(100 * RATES[row.method]) and row.n_seeds == 2
        assert row.episodes == 2 * 5 * EPISODES and row.budget == "quick"
        assert row.protocol.startswith("100 updates") and f"{EPISODES} episodes/task, final checkpoint" in row.protocol
    md, tex = (results / "table1.md").read_text(), (results / "table1.tex").read_text()
    assert md.count("**75.0 [75.0, 75.0]**") == len(OGBENCH) and "**50.0" not in md
    assert "Budget: quick" in md and "Protocol: 100 updates" in md
    assert tex.count(r"\textbf{75.0 [75.0, 75.0]}") == len(OGBENCH)
    assert list(table["method"][:3]) == ["qhyer", "dt", "gciql"]  # the harness's method order


def test_settings_come_from_the_record_not_the_folder(tmp_path):
    """A folder renamed to say another budget, study, variant, method, dataset and seed changes nothing."""
    misleading = tmp_path / "runs" / "paper" / "tau" / "tau0.5" / "dt" / "puzzle-4x5-play-v0" / "seed9"
    ablation = run(tmp_path, 0.5, study="ablation", variant="attention-nf", dataset=OGBENCH[1], seed=3,
                   method_fields={"backbone": "attention", "conditioning": "nf"}, folder=misleading)
    table = tables.ablation(tables.load_episodes([ablation]), reps=REPS).tidy.iloc[0]
    assert (table["backbone"], table["conditioning"], table["dataset"], table["budget"]) == \
        ("attention", "nf", OGBENCH[1], "quick")
    tau = run(tmp_path, 0.5, study="tau", variant="tau0.9", method_fields={"expectile_tau": 0.9},
              folder=tmp_path / "runs" / "quick" / "tau" / "tau0.5" / "qhyer" / OGBENCH[0] / "seed0")
    assert list(tables.tau_sweep(tables.load_episodes([tau]), reps=REPS).tidy["tau"]) == [0.9]


def test_every_studys_runs_are_recovered_from_their_folders(tmp_path):
    """Each budget's run list (qhyer.runs.study_variants over the merged workflow config): a run written under an
    anonymous folder reads back with its identity and the method fields its variant sets."""
    expected = {}
    for budget in sorted(p.stem for p in (CONFIG_DIR / "budgets").glob("*.yaml")):
        config = workflow_config(CONFIG_DIR, budget)
        for study in STUDIES:
            dataset, method = study_datasets(study, config)[0], (get_study(study).methods or config["methods"])[0]
            for variant, fields in study_variants(study, config).items():
                folder = tmp_path / f"run{len(expected)}"
                run(tmp_path, 0.5, budget=budget, study=study, variant=variant, method=method, dataset=dataset,
                    method_fields=fields, folder=folder)
                expected[str(folder)] = {"budget": budget, "study": study, "variant": variant, "method": method,
                                         "dataset": dataset, **{f"method.{k}": v for k, v in fields.items()}}
    records = load_records(expected).set_index("run_dir")
    for folder, fields in expected.items():
        assert {k: records.loc[folder, k] for k in fields} == fields
    assert set(records["study"]) == set(STUDIES) and len(records) == len(expected)


def test_unfinished_run_is_a_one_line_error(tmp_path, capsys):
    folder = tmp_path / "runs" / "quick" / "main" / "default" / "qhyer" / OGBENCH[0] / "seed0"
    folder.mkdir(parents=True)
    (folder / "eval_episodes.csv").write_text("task,episode,success,return,step\n")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(lambda: report_main(["table1", "--runs", str(folder), "--out", str(tmp_path / "t.csv")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no summary.json" in err and "\n" not in err


def test_interval_covers_true_rate_and_is_deterministic():
    rng = np.random.default_rng(1)
    p = 0.6
    many = pd.DataFrame([{"seed": s, "step": 100, "task": t, "success": float(rng.random() < p)}
                         for s in range(10) for t in range(5) for _ in range(100)])
    first, again = stats.summarize_episodes(many, "success"), stats.summarize_episodes(many, "success")
    assert first == again and first["ci_method"] == stats.SEED_T_INTERVAL
    assert first["ci_low"] < p < first["ci_high"] and first["ci_high"] - first["ci_low"] < 0.05
    # a cell over seeds shows the interval the verdicts decide with (the t-interval, not a bootstrap)
    verdict = verdicts.value_verdict(stats.seed_scores(many, "success"), claimed=p, tolerance=1.0)
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((verdict.ci_low, verdict.ci_high), rel=1e-12)
    one_seed = stats.summarize_episodes(many[many["seed"] == 0], "success")
    assert one_seed["ci_method"] == stats.EPISODE_BOOTSTRAP and one_seed["ci_low"] < p < one_seed["ci_high"]


def test_one_seed_cell_is_labelled_as_an_episode_interval(results):
    maze_row = next(line for line in (results / "table2.md").read_text().splitlines()
                    if line.startswith("| maze2d-umaze"))
    assert maze_row.count(tables.ONE_SEED_MARK) == len(RATES)  # one seed per method: every cell says so
    table1 = (results / "table1.md").read_text()  # two seeds: t-intervals, unmarked
    assert tables.ONE_SEED_MARK not in table1 and tables.INTERVAL_NOTE in table1


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
    assert maze.loc["qhyer", "mean"] == pytest.approx(100 * RATES["qhyer"])  # normalised from the D4RL references
    assert maze.loc["qhyer", "metric"] == "normalized_score"
    assert "antmaze-large-play-v2" in (results / "table2.md").read_text()
    antmaze = run(tmp_path, 0.5, dataset="antmaze-large-play-v2")
    with pytest.raises(tables.ConfigError, match="--absent"):
        tables.table2(tables.load_episodes([antmaze]), absent=["antmaze-large-play-v2"], reps=REPS)


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
    assert set(kind["n_runs"]) == {2} and set(table["step"].astype(str)) == {"100"}  # the last val step
    assert set(kind["dataset"]) == {"all ogbench play", "all ogbench noisy"} and set(kind["n_seeds"]) == {2}
    layer1 = table[(table["level"] == "dataset") & (table["layer"] == "1") & (table["metric"] == "delta_mean")]
    assert sorted(layer1["mean"]) == pytest.approx([1.38, 2.05])
    assert len(table[table["level"] == "run"]) == 4 * len(DT_VALUES["play"]) * 3  # runs x metrics x (all + 2 layers)


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
        cli_main(lambda: report_main(["table1", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "t.csv")]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no summary.json" in err and "\n" not in err
    bad = run(tmp_path, 0.5) / "eval_episodes.csv"
    bad.write_text("method,dataset\nqhyer\n\"unterminated")
    with pytest.raises(DataError, match="not a readable CSV|lacks"):
        tables.load_episodes([bad])
    bad.write_text("task,episode,success,return,step\n1,0,1,1.0,50\n")
    with pytest.raises(DataError, match="lacks column.*bound to their checkpoint"):
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
