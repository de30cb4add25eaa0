"""The claims forest plot and the learning curves (qhyer/report/figures.py), drawn through their thin scripts from
a hand-made claims check and fake run folders; bad inputs are one-line errors."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from run_folders import write_run

from qhyer.errors import DataError
from qhyer.methods import METHODS
from qhyer.report import claims, figures

SCRIPTS = Path(__file__).resolve().parents[1] / "paper_figures"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_script(name: str, monkeypatch, *args) -> int:
    """The thin figure script exactly as the DAG runs it; its exit code."""
    path = SCRIPTS / f"fig_{name}.py"
    monkeypatch.setattr("sys.argv", [str(path), *map(str, args)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(path), run_name="__main__")
    return exit_info.value.code


def assert_figures_written(*paths: Path) -> None:
    assert all(p.stat().st_size > 1000 for p in paths)
    assert [p.read_bytes()[:8] == PNG_MAGIC for p in paths if p.suffix == ".png"] == [True]


# --- claims forest ----------------------------------------------------------------------------------------------

def claim_row(ident: str, kind: str, verdict: str, claimed: float = math.nan, tolerance: float = math.nan,
              estimate: float = math.nan, half: float = math.nan) -> dict:
    band = (0.0, math.inf) if kind in ("ordering", "gain") else (claimed - tolerance, claimed + tolerance)
    return {**dict.fromkeys(claims.COLUMNS, ""), "id": ident, "type": kind, "verdict": verdict, "claimed": claimed,
            "tolerance": tolerance, "band_low": band[0], "band_high": band[1], "estimate": estimate,
            "ci_low": estimate - half, "ci_high": estimate + half, "n_seeds": 8, "budget": "paper"}


# One claim per verdict, on the scales the card mixes: success %, a total in the hundreds, Δ_t, differences.
CHECK = [claim_row("value.reproduced", "value", "reproduced", 84.0, 5.0, 85.0, 2.0),
         claim_row("total.below", "total", "below", 483.4, 30.0, 400.0, 20.0),
         claim_row("dt.above", "value", "above", 0.38, 0.05, 0.50, 0.03),
         claim_row("value.inconclusive", "value", "inconclusive", 56.0, 5.0, 58.0, 6.0),
         claim_row("value.far-off", "value", "not comparable", 94.0, 5.0, 0.0, 0.0),  # 18.8 tolerances below
         claim_row("gain.reversed", "gain", "reversed", estimate=-4.0, half=2.0),
         claim_row("ordering.reproduced", "ordering", "reproduced", estimate=6.0, half=3.0),
         claim_row("value.missing", "unmeasured", "missing", 12.0)]


def write_check(path: Path, rows: list[dict] = CHECK, drop: tuple[str, ...] = ()) -> Path:
    pd.DataFrame(rows, columns=list(claims.COLUMNS)).drop(columns=list(drop)).to_csv(path, index=False)
    return path


def test_claims_forest_script_writes_png_and_pdf(tmp_path, monkeypatch):
    outputs = [tmp_path / "claims.png", tmp_path / "claims.pdf"]
    assert run_script("claims", monkeypatch, write_check(tmp_path / "claims_check.csv"), *outputs) == 0
    assert_figures_written(*outputs)


def test_claims_forest_normalises_value_claims_and_draws_differences_apart():
    fig = figures.claims_forest(pd.DataFrame(CHECK))
    bands, differences = fig.axes[:2]
    assert [t.get_text().split()[0] for t in bands.get_yticklabels()] == [
        "value.reproduced", "total.below", "dt.above", "value.inconclusive", "value.far-off"]
    assert [t.get_text() for t in differences.get_yticklabels()] == ["gain.reversed", "ordering.reproduced"]
    # points at (estimate − claimed) / tolerance, one colour per verdict; the far-off claim sits at the view's edge
    points = {round(y): (x, tuple(np.round(c.get_facecolors()[i][:3], 3)))  # row -> (x, colour)
              for c in bands.collections[1:] for i, (x, y) in enumerate(c.get_offsets())}
    x = [0.2, -83.4 / 30, 0.12 / 0.05, 0.4, -figures.NORMALISED_VIEW]
    assert [points[row][0] for row in range(5)] == pytest.approx(x)
    assert [points[row][1] for row in range(5)] == [tuple(np.round(figures.VERDICT_COLORS[CHECK[row]["verdict"]], 3))
                                                    for row in range(5)]
    assert bands.get_xlim() == (-figures.NORMALISED_VIEW, figures.NORMALISED_VIEW)
    title = fig.get_suptitle()
    assert "7 claims drawn, 1 without an estimate" in title and "budget paper" in title
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {*figures.VERDICT_COLORS, "paper's band"}


def test_claims_forest_shows_each_claims_stage_seeds_and_what_would_decide_it():
    """Right of each row: the seeds (and a staged check's stage) the verdict rests on; for `inconclusive`, the
    plug-in seeds that would decide it and the verdict expected (∞ when no finite number would); a gain's label
    gives the claimed gain. A fixed check (no `stage` column) shows no stage."""
    staged = [{**row, "stage": 1 + i % 3, "n_seeds": 3 + i} for i, row in enumerate(CHECK)]
    undecided = next(i for i, row in enumerate(staged) if row["verdict"] == "inconclusive")
    staged[undecided].update(seeds_to_decide=14.0, expected="reproduced")
    gain = next(i for i, row in enumerate(staged) if row["type"] == "gain")
    staged[gain]["claimed"] = 16.0
    staged.append({**claim_row("ordering.undecidable", "ordering", "inconclusive", estimate=1.0, half=3.0),
                   "stage": 3, "seeds_to_decide": math.inf, "expected": "reversed"})
    drawn = [row for row in staged if row["verdict"] != "missing"]
    fig = figures.claims_forest(pd.DataFrame(staged))
    texts = {}
    for ax in fig.axes[:2]:
        for label, note in zip(ax.get_yticklabels(), ax.texts, strict=True):
            texts[label.get_text().split()[0]] = note.get_text()
    assert len(texts) == len(drawn)
    for row in drawn:
        note = texts[row["id"]]
        assert f"stage {row['stage']}, {row['n_seeds']} seeds" in note
        assert ("seeds to decide" in note) == (row["verdict"] == "inconclusive")
    assert texts[staged[undecided]["id"]].endswith("14 seeds to decide → reproduced)")
    assert texts["ordering.undecidable"].endswith("∞ seeds to decide → reversed)")
    assert f"{staged[gain]['id']}  (+16)" in [t.get_text() for t in fig.axes[1].get_yticklabels()]
    fixed = figures.claims_forest(pd.DataFrame(CHECK))
    assert all("stage" not in t.get_text() and "8 seeds" in t.get_text() for ax in fixed.axes[:2] for t in ax.texts)


def test_claims_forest_with_nothing_measured_says_so():
    fig = figures.claims_forest(pd.DataFrame([claim_row("m", "unmeasured", "missing")]))
    assert [t.get_text() for t in fig.axes[0].texts] == ["no claim has an estimate (1 missing)"]


@pytest.mark.parametrize("drop, rows, message", [
    (("verdict",), CHECK, "lacks column(s) verdict"),
    ((), [claim_row("odd", "value", "maybe", 1.0, 1.0, 1.0, 0.0)], "unknown verdict(s) maybe"),
])
def test_claims_forest_bad_input_is_one_line(tmp_path, monkeypatch, capsys, drop, rows, message):
    table = write_check(tmp_path / "claims_check.csv", rows, drop)
    assert run_script("claims", monkeypatch, table, tmp_path / "claims.png") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "claims.png").exists()


# --- learning curves --------------------------------------------------------------------------------------------

SCHEDULE = {"episodes_per_task": 4, "every": 50, "aggregate": "best", "last_k": 1}
STEPS = 200
DATASETS = ("cube-single-play-v0", "maze2d-umaze-v1")


def loss_value(term: int, seed: int, step: int) -> float:
    return (term + 1) * 10.0 / step + seed


def fake_run(root: Path, method: str, dataset: str, seed: int) -> Path:
    """A finished run (tests/run_folders.py) evaluated every 50 updates, whose metrics.csv also logs the method's
    loss terms at every 50 updates (value `loss_value`)."""
    score = {step: 25.0 * (step // 50) - 25.0 * seed for step in range(50, STEPS + 1, 50)}
    run = write_run(root, method=method, dataset=dataset, seed=seed, steps=STEPS, schedule=SCHEDULE, score=score)
    losses = pd.DataFrame([{"step": step, "split": "train", "metric": term, "value": loss_value(i, seed, step)}
                           for i, term in enumerate(figures.LOSS_TERMS[method]) for step in range(50, STEPS + 1, 50)])
    pd.concat([pd.read_csv(run / "metrics.csv"), losses]).to_csv(run / "metrics.csv", index=False)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    return [fake_run(root, m, d, s) for m in ("qhyer", "gciql") for d in DATASETS for s in (0, 1)]


def test_every_method_has_loss_terms():
    assert set(figures.LOSS_TERMS) == set(METHODS)


def test_curves_hold_each_seeds_losses_and_checkpoint_scores(runs):
    curves = figures.load_curves([r / "summary.json" for r in runs])
    losses = curves[(curves["source"] == "loss") & (curves["method"] == "gciql")]
    assert set(losses["series"]) == set(figures.LOSS_TERMS["gciql"])  # not the helper's plain `loss`
    row = losses[(losses["series"] == "critic_loss") & (losses["seed"] == 1) & (losses["step"] == 100)
                 & (losses["dataset"] == "maze2d-umaze-v1")]
    assert row["value"].tolist() == pytest.approx([loss_value(1, 1, 100)])
    scores = curves[(curves["source"] == figures.EVALUATION) & (curves["dataset"] == "cube-single-play-v0")]
    seed1 = scores[(scores["method"] == "qhyer") & (scores["seed"] == 1)].set_index("step")["value"]
    assert seed1.to_dict() == pytest.approx({50: 0.0, 100: 25.0, 150: 50.0, 200: 75.0})  # success x100 per checkpoint
    maze = curves[(curves["source"] == figures.EVALUATION) & (curves["dataset"] == "maze2d-umaze-v1")]
    assert set(maze["series"]) == {"normalized_score"} and maze["value"].max() == pytest.approx(100.0)


def test_learning_curves_draw_seed_means_and_ranges(runs):
    fig = figures.learning_curves(figures.load_curves(runs))
    axes = np.array(fig.axes).reshape(len(DATASETS), 3)  # evaluation column, then qhyer, gciql
    assert [ax.get_title() for ax in axes[0]] == [f"{c} · cube-single-play-v0" for c in ("evaluation", "qhyer",
                                                                                            "gciql")]
    qhyer_eval = {line.get_label(): line for line in axes[0, 0].get_lines()}["qhyer"]
    assert qhyer_eval.get_ydata().tolist() == pytest.approx([12.5, 37.5, 62.5, 87.5])  # mean of seeds 0 and 1
    band = axes[0, 0].collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(0.0) and band.max() == pytest.approx(100.0)  # seed range
    bc = {line.get_label(): line for line in axes[1, 1].get_lines()}["loss_bc"]
    assert bc.get_xdata().tolist() == [50, 100, 150, 200]
    assert bc.get_ydata().tolist() == pytest.approx([np.mean([loss_value(0, s, t) for s in (0, 1)])
                                                      for t in (50, 100, 150, 200)])
    assert "band = min-max over 2 seed(s)" in fig.get_suptitle() and "budget quick" in fig.get_suptitle()


def test_learning_curves_script_writes_png_and_pdf(runs, tmp_path, monkeypatch):
    outputs = [tmp_path / "learning_curves.png", tmp_path / "learning_curves.pdf"]
    assert run_script("learning_curves", monkeypatch, "--runs", *(r / "summary.json" for r in runs),
                      "--out", *outputs) == 0
    assert_figures_written(*outputs)


def test_final_checkpoint_only_has_no_evaluation_column(tmp_path):
    run = write_run(tmp_path, method="dt", steps=STEPS)  # tests/run_folders.py logs dt's `loss`
    fig = figures.learning_curves(figures.load_curves([run]))
    assert [ax.get_title() for ax in fig.axes] == ["dt · cube-single-play-v0"]


def test_learning_curves_bad_input_is_one_line(runs, tmp_path, monkeypatch, capsys):
    broken = write_run(tmp_path, method="gcbc")
    pd.read_csv(broken / "metrics.csv").drop(columns="split").to_csv(broken / "metrics.csv", index=False)
    assert run_script("learning_curves", monkeypatch, "--runs", runs[0], broken, "--out", tmp_path / "l.png") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "metrics.csv lacks column(s) split" in err and "\n" not in err
    with pytest.raises(DataError, match="no training rows of loss_bc, loss_critic, loss_q"):
        figures.load_curves([write_run(tmp_path / "other", method="qhyer")])
