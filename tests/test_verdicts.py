"""Verdicts: calibration by simulation, every verdict path on hand-built inputs, and the sample-size formulas."""

import math
import subprocess
import sys
from itertools import pairwise

import numpy as np
import pytest
from scipy import stats

from qhyer.errors import ConfigError, DataError
from qhyer.report.verdicts import (
    ABOVE,
    BELOW,
    DISTRIBUTIONS,
    INCONCLUSIVE,
    INTERVALS,
    REPRODUCED,
    REVERSED,
    VERDICTS,
    Contrast,
    SeedScores,
    SequentialDesign,
    binomial_sd_floor,
    calibrate,
    contrast_verdict,
    difference_verdict,
    gain_verdict,
    main,
    seeds_needed,
    seeds_needed_ordering,
    simulate_sequential,
    total_verdict,
    value_verdict,
)

EXPERIMENTS = 2000
SKEWED = [name for name in DISTRIBUTIONS if name != "normal"]


def mc_margin(rate: float) -> float:
    """Three Monte-Carlo standard errors of a rate estimated from EXPERIMENTS simulated experiments."""
    return 3 * math.sqrt(rate * (1 - rate) / EXPERIMENTS)


@pytest.fixture(scope="module")
def table():
    return calibrate(n_seeds=(5, 8), methods=("t", "percentile"), experiments=EXPERIMENTS, reps=1000)


def rows(table, method="t", **match):
    selected = table[table["method"] == method]
    for column, value in match.items():
        selected = selected[selected[column] == value]
    assert len(selected), match
    return selected


# --- calibration ------------------------------------------------------------------------------------------------

def test_no_false_below_above_or_reversed_when_the_claim_is_true(table):
    # value / total: below or above with the truth at the claim; ordering: reversed with every true difference 0
    assert (rows(table)["false_call"] <= 0.05 + mc_margin(0.05)).all()


def test_no_false_reproduced_when_the_claim_is_false(table):
    # value / total: truth two tolerances away; ordering: one true difference 0 (the least favourable truth)
    assert (rows(table)["false_reproduced"] <= 0.05 + mc_margin(0.05)).all()
    # with normal seed scores the intersection-union test keeps its one-sided 2.5%
    assert (rows(table, distribution="normal", procedure="ordering")["false_reproduced"]
            <= 0.025 + mc_margin(0.025)).all()


def test_t_interval_covers_and_the_percentile_bootstrap_does_not(table):
    assert (rows(table, distribution="normal")["coverage"] >= 0.95 - mc_margin(0.95)).all()
    percentile = rows(table, "percentile", distribution="normal", seeds=5)
    assert (percentile["coverage"] < 0.95 - mc_margin(0.95)).all()
    # under skew no method holds 95% at so few seeds, but the t-interval stays clearly closer
    t, boot = rows(table).set_index(["procedure", "distribution", "seeds"]), rows(table, "percentile").set_index(
        ["procedure", "distribution", "seeds"])
    assert (t["coverage"] > boot["coverage"] + 0.02).all()
    assert (t.loc[(slice(None), SKEWED, slice(None)), "coverage"] >= 0.85).all()


def test_calibration_is_deterministic_and_rejects_unknown_names():
    first = calibrate(n_seeds=(3,), experiments=50, reps=50)
    assert first.equals(calibrate(n_seeds=(3,), experiments=50, reps=50))
    with pytest.raises(ConfigError, match="lognormal"):
        calibrate(distributions=("lognormal",))


def test_intervals_equal_scipy_t_tests_and_the_simulated_ones():
    rng = np.random.default_rng(1)
    simulated = rng.normal(size=(20, 5))
    low, high = INTERVALS["t"]([simulated], [1.0], 0.95, 0, rng)  # what `calibrate` computes for value claims
    for i, a in enumerate(simulated):
        b, c = rng.normal(size=7), rng.gamma(2, size=5)
        decision = value_verdict(a, 0.0, 1.0)
        assert (decision.ci_low, decision.ci_high) == pytest.approx((low[i], high[i]))
        one_sample = stats.ttest_1samp(a, 0).confidence_interval()
        assert (decision.ci_low, decision.ci_high) == pytest.approx(tuple(one_sample))
        total = total_verdict([a, b], 0.0, 1.0)
        welch_sum = stats.ttest_ind(a, -b, equal_var=False).confidence_interval()
        assert (total.ci_low, total.ci_high) == pytest.approx(tuple(welch_sum))
        paired, unpaired = difference_verdict([(a, c)]), difference_verdict([(a, b)])
        assert (paired.ci_low, paired.ci_high) == pytest.approx(tuple(stats.ttest_rel(a, c).confidence_interval()))
        welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval()
        assert (unpaired.ci_low, unpaired.ci_high) == pytest.approx(tuple(welch))


# --- value and total verdicts -----------------------------------------------------------------------------------

SCORES = np.array([10.0, 11.0, 12.0, 10.5, 11.5])  # mean 11, sd sqrt(0.625)
HALF_WIDTH = stats.t.ppf(0.975, 4) * math.sqrt(0.625 / 5)  # ~0.98


@pytest.mark.parametrize(("claimed", "tolerance", "verdict"), [
    (11.0, 1.0, REPRODUCED), (12.5, 0.5, BELOW), (9.5, 0.5, ABOVE), (11.0, 0.5, INCONCLUSIVE),
    (12.0, 1.0, INCONCLUSIVE)])
def test_value_verdicts(claimed, tolerance, verdict):
    decision = value_verdict(SCORES, claimed, tolerance)
    assert decision.verdict == verdict and verdict in VERDICTS
    assert (decision.estimate, decision.ci_low, decision.ci_high) == pytest.approx((11, 11 - HALF_WIDTH,
                                                                                   11 + HALF_WIDTH))
    assert decision.tolerance == (claimed - tolerance, claimed + tolerance)
    assert decision.n_seeds == 5 and decision.interval_method == "t-interval over 5 seeds (df 4), 95%"
    assert math.isnan(decision.seeds_to_decide) == (verdict != INCONCLUSIVE)


def test_inconclusive_value_says_how_many_seeds_would_decide():
    sd = SCORES.std(ddof=1)
    inside = value_verdict(SCORES, 11.2, 0.5)  # estimate inside the band: seeds to show equivalence
    assert inside.seeds_to_decide == seeds_needed(sd, 0.2, 0.5, alpha=0.025) > 5
    outside = value_verdict(SCORES, 12.0, 0.7)  # estimate 0.3 beyond the band: seeds to show `below`
    assert outside.seeds_to_decide == seeds_needed_ordering(sd, 0.3, alpha=0.025) > 5


def test_one_seed_and_zero_spread():
    one = value_verdict([5.0], 5.0, 2.0)
    assert one.verdict == INCONCLUSIVE and math.isnan(one.ci_low) and "seed" in one.reason
    assert math.isnan(one.seeds_to_decide)
    same = value_verdict([5.0, 5.0, 5.0], 5.0, 0.0)
    assert same.verdict == REPRODUCED and same.ci_low == same.ci_high == 5.0 and "zero spread" in same.reason
    assert value_verdict([5.0, 5.0, 5.0], 6.0, 0.5).verdict == BELOW


def test_total_verdict_sums_means_with_welch_satterthwaite_df():
    datasets = {"umaze": np.array([1.0, 2.0, 3.0]), "medium": np.array([4.0, 5.0, 6.0, 7.0])}
    se2 = [1.0 / 3, (5 / 3) / 4]
    df = sum(se2) ** 2 / (se2[0] ** 2 / 2 + se2[1] ** 2 / 3)
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(se2))
    decision = total_verdict(datasets, 7.5, 3.0)
    assert decision.verdict == REPRODUCED and decision.n_seeds == 3
    assert (decision.estimate, decision.ci_low, decision.ci_high) == pytest.approx((7.5, 7.5 - half, 7.5 + half))
    assert f"df {df:.3g}" in decision.interval_method
    assert total_verdict(datasets, 20.0, 3.0).verdict == BELOW
    assert total_verdict({**datasets, "large": [9.0]}, 16.5, 3.0).verdict == INCONCLUSIVE


# --- difference verdicts ----------------------------------------------------------------------------------------

def test_ordering_reproduced_over_pairs_names_the_decisive_difference():
    pairs = [([5.0, 6.0, 7.0, 8.0], [1.0, 2.5, 3.0, 4.2]), ([10.0, 11.0, 12.0], [1.0, 2.0, 3.0, 2.5])]
    decision = difference_verdict(pairs, labels=["medium", "large"])
    assert decision.verdict == REPRODUCED
    assert all(d.low > 0 for d in decision.differences)
    decisive = min(decision.differences, key=lambda d: d.low)
    assert decision.decisive == decisive.label and decision.ci_low == decisive.low
    assert decision.differences[0].method.startswith("paired t over 4 seeds")
    assert decision.differences[1].method.startswith("Welch t (3 vs 4 seeds)")


def test_ordering_inconclusive_and_reversed():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    weak = difference_verdict([(a + 5, a), (a + [0.5, -0.4, 0.3, 0.1], a)], labels=["clear", "weak"])
    assert weak.verdict == INCONCLUSIVE and weak.decisive == "weak"
    diffs = np.array([0.5, -0.4, 0.3, 0.1])
    # two differences must both be shown: each planned for power 0.8^(1/2), so the claim's is 0.8
    assert weak.seeds_to_decide == seeds_needed_ordering(diffs.std(ddof=1), diffs.mean(), alpha=0.025,
                                                         power=math.sqrt(0.8))
    assert weak.expected == REPRODUCED
    backwards = difference_verdict([(a + 5, a), (a, a + [6.0, 6.5, 8.0, 9.0])])
    assert backwards.verdict == REVERSED and backwards.decisive == "pair 2" and backwards.ci_high < 0


def test_reversed_is_bonferroni_adjusted_over_the_claims_differences():
    # a paired difference whose t statistic lies between the 95% and the 97.5% two-sided critical values (df 4)
    diffs = -1 + 0.4562 * np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    t_stat = abs(diffs.mean()) / (diffs.std(ddof=1) / math.sqrt(5))
    assert stats.t.ppf(0.975, 4) < t_stat < stats.t.ppf(0.9875, 4)
    b = np.arange(5.0)
    assert difference_verdict([(b + diffs, b)]).verdict == REVERSED
    two = difference_verdict([(b + diffs, b), (b + 5 + diffs, b)])
    assert two.verdict == INCONCLUSIVE and two.differences[0].high < 0 <= two.differences[0].high_familywise


def test_paired_and_unpaired_differences():
    b = np.array([1.0, 5.0, 9.0, 13.0])
    a = b + [1.0, 1.5, 0.8, 1.2]  # seeds share most of their variation: pairing removes it
    paired, unpaired = difference_verdict([(a, b)]), difference_verdict([(a, b)], paired=False)
    assert paired.verdict == REPRODUCED and unpaired.verdict == INCONCLUSIVE
    assert paired.estimate == pytest.approx(unpaired.estimate)
    with pytest.raises(DataError, match="paired"):
        difference_verdict([(a, b[:3])], paired=True)


def test_gain_in_a_total_over_datasets():
    a = [np.array([50.0, 52.0, 51.0]), np.array([80.0, 84.0, 82.0, 83.0])]
    b = [np.array([40.0, 41.0, 43.0]), np.array([60.0, 62.0, 61.0])]
    decision = difference_verdict([(a, b)])
    assert decision.estimate == pytest.approx(sum(x.mean() for x in a) - sum(x.mean() for x in b))
    assert decision.verdict == REPRODUCED and decision.differences[0].method.startswith("Welch t (3+4 vs 3+3 seeds)")


def test_ordering_with_one_seed_is_inconclusive():
    decision = difference_verdict([([5.0], [1.0]), ([5.0, 6.0], [1.0, 2.0])])
    assert decision.verdict == INCONCLUSIVE and decision.decisive == "pair 1" and decision.n_seeds == 1


# --- gain, trend, sd floor, seeds for k differences ------------------------------------------------------------

GAIN_B = np.array([60.0, 62.0, 64.0, 66.0, 68.0])


@pytest.mark.parametrize(("shift", "claimed", "verdict", "expected"), [
    (16.0, 16.0, REPRODUCED, ""), (3.0, 16.0, BELOW, ""), (30.0, 16.0, ABOVE, ""), (-10.0, 16.0, REVERSED, ""),
    (7.0, 16.0, INCONCLUSIVE, REPRODUCED), (2.0, 1.0, INCONCLUSIVE, REPRODUCED),
    (-1.5, 1.0, INCONCLUSIVE, REVERSED)])
def test_gain_verdict_checks_sign_and_magnitude(shift, claimed, verdict, expected):
    a = GAIN_B + shift + np.array([1.0, -2.0, 0.5, 2.0, -1.5])  # paired by seed: per-seed differences shift + noise
    decision = gain_verdict(a, GAIN_B, claimed, 10.0)
    assert decision.verdict == verdict and decision.expected == expected
    assert decision.tolerance == (max(claimed - 10.0, 0.0), claimed + 10.0)  # a gain's band stops at 0
    ttest = stats.ttest_rel(a, GAIN_B).confidence_interval()
    assert (decision.ci_low, decision.ci_high) == pytest.approx(tuple(ttest))
    assert math.isnan(decision.seeds_to_decide) == (verdict != INCONCLUSIVE)
    with pytest.raises(ConfigError, match="positive"):
        gain_verdict(a, GAIN_B, 0.0, 10.0)


def test_identical_seeds_do_not_decide_below_the_evaluations_sampling_error():
    qhyer, gciql = np.full(8, 100.0), np.full(8, 99.87)
    assert gain_verdict(qhyer, gciql, 0.13, 0.1).verdict == REPRODUCED  # the interval is the point
    floor_a, floor_b = binomial_sd_floor(qhyer, 250), binomial_sd_floor(gciql, 250)
    z2 = 1.96 ** 2
    rate = (250 + z2 / 2) / (250 + z2)
    assert floor_a == pytest.approx(100 * math.sqrt(rate * (1 - rate) / (250 + z2)))  # ~0.55 points at 100%
    assert 0.5 < floor_a <= floor_b < 0.7
    floored = difference_verdict([(SeedScores(qhyer, floor_a), SeedScores(gciql, floor_b))])
    assert floored.verdict == INCONCLUSIVE and "sampling error" in floored.differences[0].method
    value = value_verdict(SeedScores(qhyer, floor_a), 100.0, 0.1)
    assert value.verdict == INCONCLUSIVE and "sampling error" in value.reason
    assert value.ci_high - value.ci_low == pytest.approx(2 * stats.t.ppf(0.975, 7) * floor_a / math.sqrt(8))
    # a floor below the seeds' own spread changes nothing
    spread = SeedScores(SCORES, 0.1)
    assert value_verdict(spread, 11.0, 1.0) == value_verdict(SCORES, 11.0, 1.0)
    with pytest.raises(ConfigError):
        binomial_sd_floor(qhyer, 0)


def test_trend_is_the_least_squares_slope_over_rising_levels():
    rng = np.random.default_rng(4)
    levels = [rng.normal(5.0 * i, 6.0, size=8) for i in range(5)]
    contrast = Contrast.trend("tau 0.5-0.9", levels)
    assert sum(contrast.coefs) == pytest.approx(0) and contrast.coefs[-1] == pytest.approx(0.2)
    per_seed = [stats.linregress(np.arange(5), [lv[s] for lv in levels]).slope for s in range(8)]
    decision = contrast_verdict([contrast, Contrast.difference("0.95 > 0.99", levels[4], levels[0])])
    trend = decision.differences[0]
    assert trend.estimate == pytest.approx(np.mean(per_seed))  # paired by seed: the mean per-seed slope
    assert (trend.low, trend.high) == pytest.approx(tuple(stats.ttest_1samp(per_seed, 0).confidence_interval()))
    assert decision.verdict == REPRODUCED
    unpaired = contrast_verdict([Contrast.trend("t", [levels[0][:5], *levels[1:]])])
    assert unpaired.differences[0].method.startswith("Welch-Satterthwaite t (5 / 8 / 8 / 8 / 8 seeds)")
    with pytest.raises(ConfigError, match="two levels"):
        Contrast.trend("t", levels[:1])


def test_trend_has_the_power_that_adjacent_differences_lack():
    # the card's tau claim read as 4 strict adjacent differences vs one trend: +5 per step, seed sd 6, 8 seeds
    rng = np.random.default_rng(5)
    levels = [5.0 * i + 6.0 * rng.standard_normal((EXPERIMENTS, 8)) for i in range(5)]
    coefs = Contrast.trend("t", [np.zeros(1)] * 5).coefs
    trend_low = INTERVALS["t"]([sum(c * lv for c, lv in zip(coefs, levels, strict=True))], [1.0], 0.95, 0, rng)[0]
    step_lows = [INTERVALS["t"]([hi - lo], [1.0], 0.95, 0, rng)[0] for lo, hi in pairwise(levels)]
    chain_power = float((np.stack(step_lows) > 0).all(axis=0).mean())
    trend_power = float((trend_low > 0).mean())
    assert chain_power < 0.02 and trend_power > 0.99


def test_seeds_for_k_differences_give_the_claim_80_percent_power():
    # 10 differences of +5 at per-seed sd 6: each planned for power 0.8^(1/10), all 10 together 0.8
    k, effect, sd = 10, 5.0, 6.0
    n = int(seeds_needed_ordering(sd, effect, alpha=0.025, power=0.8 ** (1 / k)))
    assert n > seeds_needed_ordering(sd, effect, alpha=0.025)
    rng = np.random.default_rng(6)
    diffs = effect + sd * rng.standard_normal((k, EXPERIMENTS, n))
    lows = INTERVALS["t"]([diffs], [1.0], 0.95, 0, rng)[0]
    assert (lows > 0).all(axis=0).mean() >= 0.8 - mc_margin(0.8)
    # what the decision reports for such a claim, inconclusive at 4 seeds
    pairs = [(effect + sd * rng.standard_normal(4), np.zeros(4)) for _ in range(k)]
    decision = difference_verdict(pairs)
    assert decision.verdict == INCONCLUSIVE and decision.expected in (REPRODUCED, REVERSED)


# --- staged design ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def staged():
    return simulate_sequential(experiments=EXPERIMENTS)


def test_lan_demets_pocock_boundaries_match_the_published_ones():
    # Pocock-type spending at 5 equally spaced looks, two-sided 0.05: critical values 2.438, 2.427, 2.410, 2.397,
    # 2.386 (e.g. gsDesign's sfLDPocock, one-sided 0.025)
    design = SequentialDesign(first_seeds=2, step_seeds=2, max_seeds=10, spending="pocock")
    critical = [stats.norm.isf((1 - design.level_at(n)) / 2) for n in design.looks()]
    assert design.looks() == [2, 4, 6, 8, 10]
    assert critical == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=1.5e-3)


def test_repeated_intervals_cover_at_all_looks_together():
    # Brownian motion in information at the default looks: |Z_k| >= c_k at some look with probability alpha
    design = SequentialDesign()
    looks = np.array(design.looks())
    critical = stats.norm.isf((1 - np.array([design.level_at(n) for n in looks])) / 2)
    rng = np.random.default_rng(3)
    paths = 200_000
    steps = rng.standard_normal((paths, len(looks))) * np.sqrt(np.diff(looks, prepend=0) / looks[-1])
    z = np.cumsum(steps, axis=1) / np.sqrt(looks / looks[-1])
    crossed = (np.abs(z) >= critical).any(axis=1).mean()
    assert abs(crossed - design.alpha) < 3 * math.sqrt(design.alpha * (1 - design.alpha) / paths)
    assert all(design.level_at(n) > 0.95 for n in looks)  # every look is wider than the fixed design's


def test_design_looks_unplanned_looks_and_bad_settings():
    design = SequentialDesign(first_seeds=2, step_seeds=3, max_seeds=10)
    assert design.looks() == [2, 5, 8, 10]
    assert design.level_at(12) == design.level_at(10)
    unplanned = design.level_at(6)  # boundary for looks 2, 5 and 6
    assert design.level_at(5) != unplanned and 0.95 < unplanned < 1
    early = SequentialDesign(first_seeds=2, max_seeds=64, spending="obrien-fleming")  # spends ~1e-28 at 2 seeds
    assert early.level_at(2) < 1
    assert value_verdict([1.0, 1.1], 1.0, 5.0, level=early.level_at(2)).verdict == INCONCLUSIVE
    for bad in ({"first_seeds": 1}, {"step_seeds": 0}, {"max_seeds": 2}, {"alpha": 1.5}, {"spending": "wald"},
                {"spending": "hsd:0"}, {"spending": "power:x"}):
        with pytest.raises(ConfigError):
            SequentialDesign(**bad)


def staged_rows(table, design="staged", **match):
    return rows(table.rename(columns={"design": "method"}), design, **match)


def test_staged_error_rates_hold_over_all_looks(staged):
    # a true claim called below/above/reversed, a claim two tolerances off called reproduced: at most 5% over all
    # looks together, for every claim type, distribution and between-seed sd
    assert set(staged["claim"]) == {"value", "total", "ordering", "gain", "trend"}
    assert (staged_rows(staged)["false_call"] <= 0.05 + mc_margin(0.05)).all()
    assert (staged_rows(staged)["false_reproduced"] <= 0.05 + mc_margin(0.05)).all()
    # the least favourable false claim (truth at a band edge, or a contrast at 0): 5% with normal seed scores
    # (2.5-3.7% measured); skewed ones break the t-interval's one-sided level there, fixed design and staged alike
    assert (staged_rows(staged, distribution="normal")["false_reproduced_edge"] <= 0.05 + mc_margin(0.05)).all()
    for claim in ("value", "total", "ordering", "gain"):
        assert (staged_rows(staged, distribution="normal", claim=claim)["false_reproduced_edge"]
                <= 0.025 + mc_margin(0.025)).all()


def test_staged_design_meets_issue_19s_targets(staged):
    # at sd = 1 tolerance: power >= 80% for a true value claim, <= 7 seeds on average to call one 3 tolerances off
    value = staged_rows(staged, claim="value", sd=1.0)
    assert (value["power"] >= 0.80).all() and (value["seeds_far_mean"] <= 7).all()
    assert (value["decided_far"] >= 0.99).all()
    fixed = staged_rows(staged, "fixed 8", sd=1.0).set_index(["claim", "distribution"])
    both = staged_rows(staged, sd=1.0).set_index(["claim", "distribution"]).join(fixed, rsuffix="_fixed")
    assert (both["power"] > both["power_fixed"] + 0.25).all()  # fixed 8 seeds: about half of the true claims
    assert (both["seeds_far_mean"] < 8).all() and (both["seeds_true_p95"] <= 16).all()


def test_staged_simulation_is_deterministic_and_rejects_unknown_names():
    first = simulate_sequential(claims=("value",), distributions=("normal",), experiments=50)
    assert first.equals(simulate_sequential(claims=("value",), distributions=("normal",), experiments=50))
    with pytest.raises(ConfigError, match="trend2"):
        simulate_sequential(claims=("trend2",))


# --- sample sizes and bad input ---------------------------------------------------------------------------------

def test_seeds_needed_matches_hand_computation():
    z95, z80, z90 = 1.6448536, 0.8416212, 1.2815516
    assert seeds_needed(2.0, 0.5, 1.5, t_quantiles=False) == math.ceil(((z95 + z80) * 2.0 / 1.0) ** 2) == 25
    assert seeds_needed(2.0, 0.0, 1.5, t_quantiles=False) == math.ceil(((z95 + z90) * 2.0 / 1.5) ** 2) == 16
    assert seeds_needed_ordering(1.0, 0.5, t_quantiles=False) == math.ceil(((z95 + z80) * 1.0 / 0.5) ** 2) == 25
    assert seeds_needed(1.0, 1.5, 1.5) == seeds_needed_ordering(1.0, -0.2) == math.inf
    # t quantiles: the smallest n that satisfies the inequality at df n - 1
    n = int(seeds_needed(2.0, 0.5, 1.5))
    def need(k):
        return ((stats.t.ppf(0.95, k - 1) + stats.t.ppf(0.8, k - 1)) * 2.0 / 1.0) ** 2
    assert n >= need(n) and n - 1 < need(n - 1) and n > 25


@pytest.mark.parametrize("scores", [[[1.0, 2.0]], [1.0, math.nan], []])
def test_bad_scores_raise_one_line(scores):
    with pytest.raises(DataError, match="per-seed scores"):
        value_verdict(scores, 1.0, 1.0)


def test_bad_settings():
    with pytest.raises(ConfigError, match="negative"):
        value_verdict([1.0, 2.0], 1.0, -1.0)
    with pytest.raises(ConfigError, match="level"):
        value_verdict([1.0, 2.0], 1.0, 1.0, level=95)
    with pytest.raises(ConfigError, match="labels"):
        difference_verdict([([1.0, 2.0], [0.0, 1.0])], labels=["a", "b"])


def test_cli_prints_the_calibration_table():
    command = [sys.executable, "-m", "qhyer.report.verdicts", "--experiments", "40", "--reps", "40", "--seeds", "3"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "coverage" in done.stdout and done.stdout.count("percentile") == 9  # 3 procedures x 3 distributions
    bad = subprocess.run([*command[:-1], "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error:")


def test_cli_prints_the_staged_design_table(monkeypatch, capsys):
    arguments = ["verdicts", "--experiments", "40", "--sequential", "--max-seeds", "5"]
    monkeypatch.setattr(sys, "argv", arguments)
    main()
    shown = capsys.readouterr().out
    assert "looks at [3, 4, 5] seeds" in shown and shown.count(" staged ") == 45  # 5 claims x 3 distributions x 3 sds
    monkeypatch.setattr(sys, "argv", [*arguments, "--spending", "wald"])
    with pytest.raises(ConfigError, match="wald"):
        main()
