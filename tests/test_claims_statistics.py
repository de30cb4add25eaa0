"""The claims check's statistics of issue 19 on fake run folders: a gain's magnitude, a trend claim, the sd floor of
success rates, and the direction an undecided claim is expected to go."""

from __future__ import annotations

import numpy as np
import pytest
from run_folders import write_run
from test_claims import NEAR_50, PLAY, STEPS, check, claims_file, runs_of

from qhyer.report import claims, verdicts


def gain_claim(ident: str, value: float | None, a: str = "qhyer", b: str = "hiql") -> dict:
    claim = {"id": ident, "type": "gain", "quote": ident, "match": {"study": "main", "dataset": PLAY},
             "key": "method", "chains": [[a, b]], "protocol": "test"}
    return claim if value is None else {**claim, "value": value}


def test_gain_with_a_value_checks_the_magnitude(tmp_path):
    runs = runs_of(tmp_path, "qhyer", NEAR_50) + runs_of(tmp_path, "hiql", (10, 12, 14, 12, 12))  # gain 38
    result = check(tmp_path, [gain_claim("sign", None), gain_claim("at", 38), gain_claim("small", 16),
                              gain_claim("large", 60)], runs)
    assert result["verdict"].to_dict() == {"sign": "reproduced", "at": "reproduced", "small": "above",
                                           "large": "below"}
    # the metric's default per mean (5) for both sides, read from the runs: the claim names no metric
    assert result.loc["at", "tolerance"] == 10 and (result.loc["at", "band_low"], result.loc["at", "band_high"]) == (
        28, 48)
    assert result.loc["small", "claimed"] == 16 and "claimed +16 ± 10" in result.loc["small", "evidence"]
    assert np.isnan(result.loc["sign", "tolerance"])


def test_identical_success_rates_do_not_decide_on_one_evaluation(tmp_path):
    # every QHyer seed at 100%, every baseline seed at 98% (50 episodes x 5 tasks): the seeds agree, the episodes
    # carry a sampling error all the same (~0.55 points at 100%, ~0.9 at 98%)
    runs = runs_of(tmp_path, "qhyer", (100,) * 5) + runs_of(tmp_path, "hiql", (98,) * 5)
    value = {"id": "value", "type": "value", "quote": "q", "match": {"study": "main", "method": "qhyer",
             "dataset": PLAY}, "metric": "success_x100", "value": 100, "tolerance": 0.5, "protocol": "test"}
    gain = {**gain_claim("gain", 2), "tolerance": 0.5}
    result = check(tmp_path, [value, gain], runs)
    # without the floor both intervals are points inside their bands
    assert verdicts.value_verdict([100.0] * 5, 100, 0.5).verdict == verdicts.REPRODUCED
    assert verdicts.gain_verdict([100.0] * 5, [98.0] * 5, 2, 0.5).verdict == verdicts.REPRODUCED
    assert result["verdict"].to_dict() == {"value": verdicts.INCONCLUSIVE, "gain": verdicts.INCONCLUSIVE}
    assert "sampling error" in result.loc["value", "evidence"] and "sampling error" in result.loc["gain", "evidence"]
    episodes = claims.measure(runs[:1]).runs["episodes_scored"].iloc[0]
    floor = verdicts.binomial_sd_floor([100.0] * 5, episodes)
    assert episodes == 250 and result.loc["value", "ci_high"] - 100 == pytest.approx(
        verdicts.sps.t.ppf(0.975, 4) * floor / np.sqrt(5))
    assert result.loc["value", "expected"] == verdicts.REPRODUCED and result.loc["value", "seeds_to_decide"] > 5
    doc = claims.load_claims(claims_file(tmp_path, [value]))
    assert "(toward reproduced)" in claims.explain("value", doc, claims.measure(runs))


def tau_runs(root, means: dict[float, float], seeds: int = 4) -> list:
    """QHyer runs of the tau study, one per tau and seed, at `means` plus a per-seed offset of 0 or 2."""
    return [write_run(root, study="tau", variant=f"tau{tau}", dataset=PLAY, seed=seed, steps=STEPS,
                      schedule={"episodes_per_task": 50, "every": 0, "aggregate": "final", "last_k": 1},
                      score=mean + 2 * (seed % 2), method_fields={"expectile_tau": tau})
            for tau, mean in means.items() for seed in range(seeds)]


PROTOCOL_4 = {"steps": STEPS, "seeds": 4, "episodes_per_task": 50, "eval_aggregate": "final",
              "dataset": "official_size", "source": "test"}
TREND = {"id": "tau", "type": "ordering", "quote": "q", "match": {"study": "tau"}, "key": "method.expectile_tau",
         "datasets": [PLAY], "trends": [[0.5, 0.6, 0.7]], "chains": [[0.95, 0.99]], "protocol": "test"}


@pytest.mark.parametrize(("means", "verdict"), [
    ({0.5: 20, 0.6: 30, 0.7: 40, 0.95: 60, 0.99: 40}, verdicts.REPRODUCED),
    ({0.5: 20, 0.6: 20, 0.7: 22, 0.95: 60, 0.99: 40}, verdicts.INCONCLUSIVE),  # the rise is not steep enough
    ({0.5: 40, 0.6: 30, 0.7: 20, 0.95: 60, 0.99: 40}, verdicts.REVERSED)])
def test_trend_claim_is_one_slope_and_one_difference_per_dataset(tmp_path, means, verdict):
    result = check(tmp_path, [TREND], tau_runs(tmp_path, means), protocol=PROTOCOL_4)
    row = result.loc["tau"]
    assert row["verdict"] == verdict
    assert "rise over 0.5 < 0.6 < 0.7 (slope per step)" in row["evidence"] and "0.95 > 0.99" in row["evidence"]
    if verdict == verdicts.INCONCLUSIVE:
        assert row["expected"] in (verdicts.REPRODUCED, verdicts.REVERSED) and row["seeds_to_decide"] > 4



def test_markdown_shows_the_claimed_gain_and_what_would_decide(tmp_path):
    runs = runs_of(tmp_path, "qhyer", NEAR_50) + runs_of(tmp_path, "hiql", (30, 40, 50, 35, 45))
    doc = claims.load_claims(claims_file(tmp_path, [gain_claim("gain", 16)]))
    check_table = claims.check_claims(doc, claims.measure(runs))
    text = claims.report_markdown(check_table, doc)
    assert check_table.loc[0, "verdict"] == verdicts.INCONCLUSIVE
    assert "| +16 |" in text and f"{check_table.loc[0, 'seeds_to_decide']:.0f} seeds → reproduced" in text
