"""The claims-driven plan (qhyer/report/plan.py), published baselines and their citation check
(qhyer/report/published.py), and one stage of the staged check (qhyer/report/verify.py) on fake runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.stats as sps
import yaml
from run_folders import write_run  # tests/ (pytest puts the test folder on sys.path)

from qhyer.errors import ConfigError
from qhyer.report import claims, plan, published, verdicts, verify
from qhyer.report.__main__ import main as report_cli
from qhyer.report.cost import CONFIG_DIR
from qhyer.runs import workflow_config

CUBE = "cube-single-play-v0"


@pytest.fixture
def smoke():
    config = workflow_config(CONFIG_DIR, "smoke")
    config["data_root"] = "/nonexistent/data"  # no AntMaze file: its claims get no runs
    return config


def by_id(ids):
    return {c["id"]: c for c in claims.load_claims()["claims"] if c["id"] in ids}


def test_selection_takes_ids_and_globs_and_refuses_a_pattern_matching_nothing():
    doc = claims.load_claims()
    chosen = [c["id"] for c in plan.select_claims(doc, ["gain.cube-single-play", "main.cube-single-play.*"])]
    assert chosen == ["main.cube-single-play.qhyer", "main.cube-single-play.gciql", "gain.cube-single-play"]
    assert len(plan.select_claims(doc, ["*"])) == len(doc["claims"])
    with pytest.raises(ConfigError, match="main.cube-singel"):
        plan.select_claims(doc, ["main.cube-singel*"])


def test_claims_map_to_the_runs_their_match_and_chains_name(smoke):
    plans = plan.plan_claims(claims.load_claims(), smoke, ["main.cube-single-play.qhyer", "gain.cube-single-play",
                                                           "ablation.attention-nf.play", "ablation.order.backbone"])
    assert plans["main.cube-single-play.qhyer"].runs == (("main", "default", "qhyer", CUBE),)
    assert set(plans["gain.cube-single-play"].runs) == {("main", "default", m, CUBE) for m in ("qhyer", "gciql")}
    assert plans["ablation.attention-nf.play"].runs == (("ablation", "attention-nf", "qhyer", CUBE),)
    assert "lack cube-single-noisy-v0" in plans["ablation.order.backbone"].unplanned  # smoke ablates one dataset
    paper = workflow_config(CONFIG_DIR, "paper")
    backbone = plan.plan_claim(by_id(["ablation.order.backbone"])["ablation.order.backbone"], paper).runs
    assert {r[1] for r in backbone} == {"hybrid-nf", "mamba-nf", "attention-nf"} and len(backbone) == 6  # 2 datasets


def test_a_claim_the_budget_cannot_measure_in_full_gets_no_runs(smoke):
    for section in ("ablation", "tau_sweep"):  # both datasets, so the variants are what is lacking
        smoke[section]["datasets"] = [CUBE, "cube-single-noisy-v0"]
    plans = plan.plan_claims(claims.load_claims(), smoke, ["ablation.order.conditioning", "tau.trend",
                                                           "main.antmaze-large-play.qhyer", "total.cube-play.qhyer"])
    reasons = {c: p.unplanned for c, p in plans.items()}
    assert all(not p.runs for p in plans.values())
    assert "method.conditioning=crl" in reasons["ablation.order.conditioning"]  # smoke trains nf and none only
    assert "expectile_tau=0.95" in reasons["tau.trend"]  # smoke sweeps 0.7 and 0.9
    assert "user-supplied file" in reasons["main.antmaze-large-play.qhyer"]
    assert "lack cube-double-play-v0" in reasons["total.cube-play.qhyer"]  # smoke's Table 1 has cube-single only
    unknown = {"id": "x", "type": "value", "match": {"study": "main", "method": "qhyer", "dataset": "cube-nine-v0"}}
    assert "registry" in plan.plan_claim(unknown, smoke).unplanned


def test_a_run_shared_by_claims_is_trained_once_with_the_most_seeds():
    plans = {"a": plan.ClaimPlan("a", (("main", "default", "qhyer", CUBE),)),
             "b": plan.ClaimPlan("b", (("main", "default", "qhyer", CUBE), ("main", "default", "dt", CUBE)))}
    runs = plan.stage_runs(plans, {"a": 4, "b": 2})
    assert sorted(runs) == sorted([("main", "default", "qhyer", CUBE, s) for s in range(4)]
                                  + [("main", "default", "dt", CUBE, s) for s in range(2)])


def published_file(tmp_path, entries):
    path = tmp_path / "published.yaml"
    path.write_text(yaml.safe_dump({"baselines": entries}))
    return path


def entry(method, dataset, quoted_by, **numbers):
    """A published_baselines.yaml entry: vendored (with the url it was read from) when given numbers."""
    read_from = {"url": "https://example.org/paper.txt"} if "mean" in numbers else {}
    return {"method": method, "dataset": dataset, "protocol": "ogbench", "quoted_by": quoted_by,
            "source": {"paper": "P", "table": "T", "row": dataset, **read_from}, **(numbers or {"why": "not read"})}


def test_published_baselines_leave_the_plan_and_their_own_claims_become_citations(tmp_path, smoke):
    found = published.load(published_file(tmp_path, [
        entry("gciql", CUBE, ["main.cube-single-play.gciql"], mean=68.0, sd=6.0, seeds=8)]))
    plans = plan.plan_claims(claims.load_claims(), smoke, ["main.cube-single-play.*", "gain.cube-single-play"],
                             found)
    assert plans["gain.cube-single-play"].runs == (("main", "default", "qhyer", CUBE),)
    assert plans["gain.cube-single-play"].published == (("gciql", CUBE),)
    assert plans["main.cube-single-play.gciql"].runs == () and plans["main.cube-single-play.gciql"].published
    assert plans["main.cube-single-play.qhyer"].runs  # QHyer is never read from a table


@pytest.mark.parametrize("seeds, sd", [(2, 3.0), (3, 6.0), (8, 6.0), (5, None)])
def test_pseudo_scores_carry_exactly_the_published_mean_sd_and_seeds(seeds, sd):
    summary = published.Summary("gciql", CUBE, "ogbench", "P, T, R", 68.0, sd, seeds, (), "")
    scores = summary.pseudo_scores()
    assert len(scores) == seeds and scores.mean() == pytest.approx(68.0, rel=1e-12)
    assert scores.std(ddof=1) == pytest.approx(sd or 0.0, rel=1e-12, abs=1e-12)


def test_citation_check_says_quoted_correctly_misquoted_or_not_vendored(tmp_path):
    path = published_file(tmp_path, [
        entry("gciql", CUBE, ["main.cube-single-play.gciql"], mean=68.4, sd=6.0, seeds=8),  # 68 is 68.4 rounded
        entry("gciql", "cube-double-play-v0", ["main.cube-double-play.gciql"], mean=41.0, sd=5.0, seeds=8),
        entry("hiql", CUBE, ["total.cube-play.hiql"], mean=15.0, sd=3.0, seeds=8),
        entry("hiql", "cube-double-play-v0", ["total.cube-play.hiql"])])  # a total needs every part vendored
    table = published.citation_check(claims.load_claims(), published.load(path)).set_index("claim")
    assert table.loc["main.cube-single-play.gciql", "verdict"] == published.QUOTED_CORRECTLY
    assert table.loc["main.cube-double-play.gciql", "verdict"] == published.MISQUOTED  # card 40, source 41
    assert table.loc["total.cube-play.hiql", "verdict"] == published.NOT_VENDORED


def test_the_vendored_file_loads_and_every_quote_it_names_is_a_claim():
    found, doc = published.load(), claims.load_claims()
    quoted = {c for s in found.summaries for c in s.quoted_by}
    assert quoted <= {c["id"] for c in doc["claims"]}  # no entry quotes a claim the card's file lacks
    table = published.citation_check(doc, found)
    assert len(table) == len(quoted)
    assert set(table["verdict"]) <= {published.QUOTED_CORRECTLY, published.MISQUOTED, published.NOT_VENDORED}


def test_published_file_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="seeds"):
        published.load(published_file(tmp_path, [entry("gciql", CUBE, [], mean=68.0, sd=6.0)]))
    with pytest.raises(ConfigError, match="why"):
        published.load(published_file(tmp_path, [{**entry("gciql", CUBE, []), "why": None} | {"sd": 1.0}]))
    unsourced = entry("gciql", CUBE, [], mean=68.0, sd=6.0, seeds=8)
    del unsourced["source"]["url"]
    with pytest.raises(ConfigError, match="source.url"):  # a vendored number says which copy it was read from
        published.load(published_file(tmp_path, [unsourced]))


def test_the_shipped_file_splits_published_and_rerun_by_what_is_vendored(smoke):
    """published_baselines.yaml as shipped: each claim it quotes is cited against the source when every entry
    quoting it is vendored (`source not vendored` otherwise), and `baselines: published` reads exactly the
    vendored entries (the others are re-run). Numbers come from the file, none from this test."""
    found, doc = published.load(), claims.load_claims()
    table = published.citation_check(doc, found).set_index("claim")
    for claim in table.index:
        quoting = [s for s in found.summaries if claim in s.quoted_by]
        expected = (published.compare_quote(table.loc[claim, "quoted"], quoting)[0]
                    if all(s.vendored for s in quoting) else published.NOT_VENDORED)
        assert table.loc[claim, "verdict"] == expected
    for claim_id, claim_plan in plan.plan_claims(doc, smoke, ["*"], found).items():
        claim = next(c for c in doc["claims"] if c["id"] == claim_id)
        read = set(claim_plan.published)
        assert all(found.usable(m, d) for m, d in read)  # never a summary without a number read from its source
        if claim["type"] not in ("value", "total") and claim.get("match", {}).get("study") == "main":
            assert read == {(m, d) for m, d in plan.claim_baselines(claim) if found.usable(m, d)}


STAGED_CLAIMS = {
    "version": 1, "paper": "test", "source": "test",
    "protocols": {"any": {"source": "test: no requirement, so every verdict is the statistical one"}},
    "tolerances": {"success_x100": 5},
    "claims": [
        {"id": "decided", "type": "value", "quote": "q", "match": {"study": "main", "method": "gcbc", "dataset": CUBE},
         "metric": "success_x100", "value": 50, "tolerance": 1e9, "protocol": "any"},
        # a method against itself: the difference is 0 on every seed, never above or below 0
        {"id": "undecided", "type": "ordering", "quote": "q", "match": {"study": "main", "dataset": CUBE},
         "key": "method", "chains": [["dt", "dt"]], "protocol": "any"}]}


def test_a_stage_adds_seeds_only_to_undecided_claims_and_decides_each_over_its_own_seeds(tmp_path):
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(STAGED_CLAIMS))
    rng = np.random.default_rng(0)
    runs = [write_run(tmp_path / "runs", method=m, seed=s, score=float(rng.uniform(20, 80)))
            for m in ("gcbc", "dt") for s in range(3)]
    design = verdicts.SequentialDesign(2, 1, 4)
    check, next_plan, _ = verify.decide_stage(1, None, runs, claims_file, ["*"], design, "rerun", None)
    rows = check.set_index("id")
    assert rows.loc["decided", "verdict"] == "reproduced" and rows.loc["decided", "n_seeds"] == 2  # not seed 2
    assert rows.loc["undecided", "verdict"] == "inconclusive"
    assert rows.loc["decided", "level"] == pytest.approx(design.level_at(2))
    assert next_plan == {**next_plan, "stage": 2, "done": False, "seeds": {"decided": 2, "undecided": 3},
                         "active": ["undecided"], "stopped": {"decided": 1}}
    assert rows.loc["undecided", "baselines_rerun"] == "dt on cube-single-play-v0"
    plan_file = tmp_path / "next_plan.json"
    plan_file.write_text(json.dumps(next_plan))
    check, last, _ = verify.decide_stage(2, plan_file, runs, claims_file, ["*"], design, "rerun", None)
    assert check.set_index("id").loc["decided", "stage"] == 1 and last["seeds"] == {"decided": 2, "undecided": 4}
    with pytest.raises(ConfigError, match="stage 2"):
        verify.decide_stage(3, plan_file, runs, claims_file, ["*"], design, "rerun", None)


def test_plan_cli_prints_the_runs_of_the_selected_claims(capsys):
    assert report_cli(["plan", "--budget", "smoke", "--claims", "gain.cube-single-play"]) == 0
    out = capsys.readouterr().out
    assert "Stage 1 starts 6 runs" in out and "gciql   cube-single-play-v0" in out


def test_a_published_baseline_is_compared_through_its_summary_and_its_own_number_cited(tmp_path):
    doc = {**STAGED_CLAIMS, "claims": [
        {"id": "gain", "type": "ordering", "quote": "q", "match": {"study": "main", "dataset": CUBE}, "key": "method",
         "chains": [["qhyer", "gciql"]], "protocol": "any"},
        {"id": "gciql", "type": "value", "quote": "q", "match": {"study": "main", "method": "gciql", "dataset": CUBE},
         "metric": "success_x100", "value": 10, "protocol": "any"}]}
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(doc))
    summaries = published_file(tmp_path, [{**entry("gciql", CUBE, ["gciql"], mean=10.4, sd=2.0, seeds=8),
                                           "protocol": "any"}])
    runs = [write_run(tmp_path / "runs", method="qhyer", seed=s, score=80.0) for s in range(3)]
    check, next_plan, _ = verify.decide_stage(1, None, runs, claims_file, ["*"], verdicts.SequentialDesign(3, 1, 4),
                                              "published", summaries)
    rows = check.set_index("id")
    assert rows.loc["gain", "verdict"] == "reproduced" and rows.loc["gain", "baselines_rerun"] == ""
    assert rows.loc["gain", "baselines_published"] == f"gciql on {CUBE}"
    assert rows.loc["gain", "evidence"].startswith("Published baselines: gciql on cube-single-play-v0: published 10.4")
    assert rows.loc["gciql", "verdict"] == published.QUOTED_CORRECTLY  # card 10, source 10.4: within half a unit
    assert next_plan["active"] == [] and next_plan["done"]


def test_a_published_spread_gives_welchs_interval_and_none_an_exact_number(tmp_path):
    """QHyer's seeds against a published summary: with an sd, the interval is Welch's t-interval of QHyer's
    scores against the summary's pseudo-scores (what mean, sd and seeds alone determine); without one the number
    is exact, its side's spread only the floor every side has (one evaluation's sampling error), and the evidence
    says so."""
    doc = {**STAGED_CLAIMS, "claims": [
        {"id": f"over-{m}", "type": "ordering", "quote": "q", "match": {"study": "main", "dataset": CUBE},
         "key": "method", "chains": [["qhyer", m]], "protocol": "any"} for m in ("gciql", "hiql")]}
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(yaml.safe_dump(doc))
    summaries = published_file(tmp_path, [{**entry("gciql", CUBE, [], mean=30.0, sd=15.0, seeds=8), "protocol": "any"},
                                          {**entry("hiql", CUBE, [], mean=30.0, seeds=5), "protocol": "any"}])
    runs = [write_run(tmp_path / "runs", method="qhyer", seed=s, score=score) for s, score in enumerate((20, 50, 85))]
    check, _, _ = verify.decide_stage(1, None, runs, claims_file, ["*"], verdicts.SequentialDesign(3, 1, 4),
                                      "published", summaries)
    rows = check.set_index("id")
    measured = claims.measure(runs).runs
    ours, episodes = measured["score"].to_numpy(), int(measured["episodes_scored"].iloc[0])
    found = published.load(summaries)
    welch = rows.loc["over-gciql"]
    theirs = found.get("gciql", CUBE).pseudo_scores()
    assert min(ours.std(ddof=1), theirs.std(ddof=1)) > max(verdicts.binomial_sd_floor(s, episodes)
                                                           for s in (ours, theirs))  # no floor raises a spread
    expected = sps.ttest_ind(ours, theirs, equal_var=False).confidence_interval(welch["level"])
    assert (welch["ci_low"], welch["ci_high"]) == pytest.approx((expected.low, expected.high), rel=1e-9)
    assert welch["baselines_published"] == f"gciql on {CUBE}" and "sd 15" in welch["evidence"]
    exact = rows.loc["over-hiql"]
    number = found.get("hiql", CUBE)
    floor = verdicts.binomial_sd_floor(number.pseudo_scores(), episodes)
    terms = (ours.var(ddof=1) / len(ours), floor ** 2 / number.seeds)
    df = sum(terms) ** 2 / sum(v * v / (n - 1) for v, n in zip(terms, (len(ours), number.seeds), strict=True))
    half = sps.t.ppf(0.5 + exact["level"] / 2, df) * math.sqrt(sum(terms))
    assert exact["estimate"] == pytest.approx(ours.mean() - number.mean, rel=1e-12)
    assert (exact["ci_low"], exact["ci_high"]) == pytest.approx((exact["estimate"] - half, exact["estimate"] + half),
                                                                rel=1e-9)
    assert "published without a spread" in exact["evidence"] and "treated as exact" in exact["evidence"]
