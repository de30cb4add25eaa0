"""The Mamba-statistics claims and the dt_stats table are decided over training seeds: each seed's value is its
mean over the OGBench datasets of the claim's kind, then the t-interval runs over seeds (a dataset x seed run is
not a seed). AntMaze play runs are not the card's play data. Also the claims file's labels: baseline sources,
CQL's AntMaze total, `dataset: official_size`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from run_folders import write_run

from qhyer.errors import ConfigError
from qhyer.report import claims, stats, tables, verdicts
from qhyer.report.__main__ import main as report_main

PLAY = ("cube-single-play-v0", "cube-double-play-v0")
ANTMAZE_PLAY = "antmaze-large-play-v2"  # kind 'play' too, but not OGBench
STEPS = 100
PROTOCOL = {"steps": STEPS, "seeds": 3, "dataset": "official_size", "source": "test"}
# Δ per dataset and seed: the datasets differ far more than the seeds, so pooling dataset x seed runs as if each
# were a seed widens the interval by the dataset spread (below: inconclusive), the per-seed means do not.
LEVELS = {"cube-single-play-v0": 0.30, "cube-double-play-v0": 0.46}
OFFSETS = (-0.004, 0.0, 0.004)
PER_SEED = np.array([0.376, 0.38, 0.384])


def delta_claim(value: float = 0.38) -> dict:
    return {"id": "dt.play.delta", "type": "value", "quote": "q", "table": "dt_stats",
            "match": {"study": "main", "family": "ogbench", "kind": "play"}, "metric": "delta_mean", "value": value,
            "tolerance": 0.05, "protocol": "test"}


def claims_file(tmp_path: Path, claim_list: list[dict], protocol: dict = PROTOCOL) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump({"version": 2, "paper": "test", "source": "test", "protocols": {"test": protocol},
                                    "tolerances": {}, "claims": claim_list}, sort_keys=False))
    return path


def play_runs(root: Path, seeds=range(3), datasets=PLAY) -> list[Path]:
    return [write_run(root, dataset=d, seed=s, steps=STEPS, dt_values={"delta_mean": LEVELS[d] + OFFSETS[s]})
            for d in datasets for s in seeds]


def check(tmp_path: Path, runs: list[Path], claim: dict):
    doc = claims.load_claims(claims_file(tmp_path, [claim]))
    return claims.check_claims(doc, claims.measure(runs)).set_index("id").loc[claim["id"]]


def test_statistic_is_decided_over_seeds_not_dataset_seed_runs(tmp_path):
    row = check(tmp_path, play_runs(tmp_path), delta_claim())
    per_seed = verdicts.value_verdict(PER_SEED, 0.38, 0.05)
    assert row["n_seeds"] == 3 and row["verdict"] == "reproduced" == per_seed.verdict
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((per_seed.ci_low, per_seed.ci_high))
    assert "3 seeds, each the mean over 2 datasets" in row["evidence"]
    # the same six runs pooled as six "seeds": the dataset spread swamps the band
    pooled = verdicts.value_verdict([LEVELS[d] + o for d in PLAY for o in OFFSETS], 0.38, 0.05)
    assert pooled.verdict == "inconclusive" and pooled.n_seeds == 6


def test_antmaze_play_runs_are_not_the_cards_play_data(tmp_path):
    # AntMaze play runs below the OGBench protocol (50 < 100 updates) and far from 0.38: matched, they would make
    # the claim `not comparable` and move its estimate
    antmaze = [write_run(tmp_path, dataset=ANTMAZE_PLAY, seed=s, steps=50, dt_values={"delta_mean": 2.0})
               for s in range(3)]
    row = check(tmp_path, play_runs(tmp_path) + antmaze, delta_claim())
    assert row["verdict"] == "reproduced" and row["protocol_met"] == "yes"
    assert row["estimate"] == pytest.approx(0.38) and ANTMAZE_PLAY not in row["evidence"]


def test_a_seed_lacking_a_dataset_is_left_out_and_named(tmp_path):
    runs = play_runs(tmp_path) + [write_run(tmp_path, dataset=PLAY[0], seed=3, steps=STEPS,
                                            dt_values={"delta_mean": 5.0})]
    row = check(tmp_path, runs, delta_claim())
    assert row["n_seeds"] == 3 and row["estimate"] == pytest.approx(0.38)
    assert "seeds [3] lack some of these datasets and are left out" in row["evidence"]


def test_explain_and_seeds_to_decide_count_seeds(tmp_path, capsys):
    runs = play_runs(tmp_path)
    claim = delta_claim(value=0.425)  # band [0.375, 0.475]: the interval [0.37, 0.39] crosses its lower edge
    row = check(tmp_path, runs, claim)
    per_seed = verdicts.value_verdict(PER_SEED, 0.425, 0.05)
    assert row["verdict"] == "inconclusive" == per_seed.verdict
    assert row["seeds_to_decide"] == per_seed.seeds_to_decide and np.isfinite(per_seed.seeds_to_decide)
    path = claims_file(tmp_path, [claim])
    assert report_main(["claims", "--runs", *map(str, runs), "--claims", str(path), "--explain", claim["id"]]) == 0
    text = capsys.readouterr().out
    assert "test: t-interval over 3 seeds" in text and "seeds in the interval: 3;" in text
    assert "per seed: 3 seeds, each the mean over 2 datasets (cube-double-play-v0, cube-single-play-v0)" in text


def test_dt_stats_kind_rows_are_over_seeds_and_per_family(tmp_path):
    antmaze = [write_run(tmp_path, dataset=ANTMAZE_PLAY, seed=s, dt_values={"delta_mean": 2.0}) for s in range(2)]
    table = tables.dt_stats(tables.load_dt_runs(play_runs(tmp_path) + antmaze)).tidy
    kind = table[(table["level"] == "kind") & (table["layer"] == "all") & (table["metric"] == "delta_mean")]
    kind = kind.set_index("dataset")
    assert set(kind.index) == {"all ogbench play", "all antmaze play"}
    ogbench = kind.loc["all ogbench play"]
    expected = stats.t_interval(PER_SEED)
    assert (ogbench["n_seeds"], ogbench["n_runs"], ogbench["ci_method"]) == (3, 6, stats.SEED_T_INTERVAL)
    assert (ogbench["mean"], ogbench["ci_low"], ogbench["ci_high"]) == pytest.approx(
        (expected.estimate, expected.low, expected.high))
    assert kind.loc["all antmaze play", "mean"] == pytest.approx(2.0)


# --- the claims file's labels ----------------------------------------------------------------------------------

def test_every_quoted_baseline_number_names_its_source():
    doc = claims.load_claims()
    by_id = {c["id"]: c for c in doc["claims"]}
    baseline = [c for c in doc["claims"] if "value" in c and c.get("match", {}).get("method", "qhyer") != "qhyer"]
    quoted_elsewhere = ["main.antmaze-large-play.iql", "gain.antmaze-large-play", "total.antmaze.previous",
                        "gain.total.antmaze"]
    assert [c["id"] for c in baseline + [by_id[i] for i in quoted_elsewhere] if not c.get("value_source")] == []


def test_the_antmaze_total_the_card_contrasts_is_cqls_and_unmeasured():
    by_id = {c["id"]: c for c in claims.load_claims()["claims"]}
    scores = (74.0, 84.0, 61.2, 53.7, 15.8, 14.9)  # CQL's six AntMaze scores, IQL paper Table 1
    previous, gain, qhyer = by_id["total.antmaze.previous"], by_id["gain.total.antmaze"], by_id["total.antmaze.qhyer"]
    assert previous["value"] == pytest.approx(sum(scores)) and "CQL" in previous["value_source"]
    assert previous["type"] == gain["type"] == "unmeasured" and "CQL" in previous["reason"] and "CQL" in gain["reason"]
    assert gain["value"] == pytest.approx(qhyer["value"] - previous["value"]) and qhyer["type"] == "total"
    assert "2110.06169" in previous["value_source"] and "Table 1" in previous["value_source"]


def test_dataset_protocol_says_official_size(tmp_path):
    doc = claims.load_claims()
    assert {p.get("dataset") for p in doc["protocols"].values()} == {claims.OFFICIAL_SIZE}
    with pytest.raises(ConfigError, match="dataset 'official'"):
        claims.load_claims(claims_file(tmp_path, [], {**PROTOCOL, "dataset": "official"}))
    assert all(c["match"]["family"] == "ogbench" for c in doc["claims"] if c.get("table") == "dt_stats")
