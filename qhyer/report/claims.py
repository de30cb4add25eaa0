"""Check every claim of `claims.yaml` against the runs that measure it: `results/claims_check.csv` and `.md`.

Input is run folders (their `summary.json` records, `eval_episodes.csv` and, for the Mamba statistics,
`metrics.csv`) — not the tables, because a verdict is decided over per-seed scores. For each claim:
  1. its rows: the runs whose records match the claim (study, method, dataset, recorded method fields); a value
     claim over several datasets (the Mamba statistics: every OGBench play or noisy dataset) is decided over
     seeds, each seed's score the mean over the datasets (a dataset x seed run is not a seed of its own);
  2. its protocol (`protocols` in claims.yaml): every run must meet it — updates trained, evaluation schedule,
     episodes per task actually evaluated, dataset size (`dataset: official_size`: the rows of the regenerated
     or supplied data are at least the official dataset's), number of seeds. A run below it makes the claim
     `not comparable`; the evidence then says what falls short and what the verdict would be at this budget;
  3. its test (qhyer/report/verdicts.py): value and total claims by equivalence within the claim's tolerance
     (`reproduced`, `below`, `above`, `inconclusive`), ordering and gain claims by the intervals of their
     differences (`reproduced`, `reversed`, `inconclusive`);
  4. `missing` when nothing measures it (no runs, a dataset the harness lacks, a quantity it does not compute).
`python -m qhyer.report claims --explain ID` prints one claim's protocol, rows, test, interval and the seeds that
would decide it.

Provenance: the check gives no verdict over runs of mixed provenance (several commits or dirty states, several
sha256 of one dataset, several versions of a package that changes numbers): it stops with one line naming which runs
differ in what, since a verdict over them would not say which code, data or packages it is about. Stopping (rather
than writing every claim `not comparable`) keeps a mixed results folder from yielding a claims file at all, which
is what a DAG that does not retrain on code changes needs: the failed `claims` job names the stale runs.
`--allow-mixed-provenance` checks them anyway and says so in the .md. Runs that agree but differ from the current
checkout only get a WARNING line (stderr and .md). Every row states its runs' commits, dataset sha256 and versions.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError, UserError
from qhyer.io import write_text_atomic
from qhyer.report import stats, verdicts
from qhyer.report.tables import (
    SCORES,
    distinct,
    last_dt_metrics,
    provenance_lines,
    run_table,
    to_markdown,
    write_csv,
)
from qhyer.runs import (
    PROVENANCE_COLUMNS,
    checkout_provenance,
    provenance_differences,
    provenance_warning,
    read_records,
    run_evaluation,
)

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
CLAIM_TYPES = {"value": ("match", "metric", "value", "protocol"),
               "total": ("match", "datasets", "metric", "value", "protocol"),
               "ordering": ("match", "key", "chains", "protocol"), "gain": ("match", "key", "chains", "protocol"),
               "unmeasured": ("value", "reason")}
PROTOCOL_KEYS = ("steps", "seeds", "episodes_per_task", "eval_aggregate", "eval_every", "eval_last_k", "dataset",
                 "source")
# `dataset` of a protocol: the one check there is, a row count. Regenerated data of the official size is not the
# official file (OGBench's and D4RL's own files are not downloaded), so the value says "size", not "official".
OFFICIAL_SIZE = "official_size"
# `missing`: the runs the claim needs are absent (a budget, dataset or AntMaze file away). `unmeasured`: the harness
# cannot measure the quantity at all (claims.yaml type `unmeasured`, whose `reason` is the evidence): no run helps.
NOT_COMPARABLE, MISSING, UNMEASURED = "not comparable", "missing", "unmeasured"
VERDICTS = (*verdicts.VERDICTS, NOT_COMPARABLE, MISSING, UNMEASURED)
COLUMNS = ("id", "type", "verdict", "claimed", "tolerance", "band_low", "band_high", "estimate", "ci_low", "ci_high",
           "n_seeds", "interval_method", "seeds_to_decide", "expected", "protocol", "protocol_met", "budget",
           *PROVENANCE_COLUMNS, "evidence", "assumption", "quote", "value_source")
ALLOW_MIXED = "--allow-mixed-provenance"


class Missing(Exception):
    """Nothing measures the claim; the message says why."""


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """The claims file, checked for the fields each claim type needs and for known protocols."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read claims file {path} ({err})".splitlines()[0]) from None
    if not isinstance(doc, dict) or not {"version", "protocols", "tolerances", "claims"} <= doc.keys():
        raise ConfigError(f"{path} needs the keys version, protocols, tolerances and claims")
    for name, protocol in doc["protocols"].items():
        unknown = set(protocol) - {*PROTOCOL_KEYS, "assumption"}
        if unknown or "source" not in protocol:
            raise ConfigError(f"{path}: protocol '{name}' has unknown keys {sorted(unknown)} or no source")
        if protocol.get("dataset", OFFICIAL_SIZE) != OFFICIAL_SIZE:
            raise ConfigError(f"{path}: protocol '{name}' has dataset '{protocol['dataset']}'",
                              f"the only dataset check is `dataset: {OFFICIAL_SIZE}` (a row count)")
    seen = set()
    for claim in doc["claims"]:
        ident = claim.get("id")
        need = CLAIM_TYPES.get(claim.get("type"))
        if need is None or ident in seen or "quote" not in claim:
            raise ConfigError(f"{path}: claim '{ident}' has an unknown type, a duplicate id or no quote")
        lacking = [f for f in need if f not in claim]
        if lacking or claim.get("protocol", next(iter(doc["protocols"]))) not in doc["protocols"]:
            raise ConfigError(f"{path}: claim '{ident}' lacks {', '.join(lacking) or 'a known protocol'}")
        if claim["type"] in ("value", "total") and tolerance_of(claim, doc) is None:
            raise ConfigError(f"{path}: claim '{ident}' has no tolerance", "give `tolerance` or a `metric` default")
        if claim["type"] == "gain" and not claim.get("value", 1) > 0:
            raise ConfigError(f"{path}: gain claim '{ident}' states gain {claim['value']}", "a gain is > 0")
        if any(len(trend) < 2 for trend in claim.get("trends", [])):
            raise ConfigError(f"{path}: claim '{ident}' has a trend of fewer than two levels")
        seen.add(ident)
    return doc


def tolerance_of(claim: dict, doc: dict, metric: str = "") -> float | None:
    """The claim's own tolerance, else its metric's default (`metric`: the runs', where the claim names none) per
    mean it adds or subtracts: a total's datasets, a gain's two sides (each summed over `total_over`)."""
    if "tolerance" in claim:
        return float(claim["tolerance"])
    default = doc["tolerances"].get(claim.get("metric", metric))
    if default is None:
        return None
    means = {"total": len(claim.get("datasets", ())), "gain": 2 * len(claim.get("total_over", [None]))}
    return float(default) * means.get(claim["type"], 1)


# --- what was measured ------------------------------------------------------------------------------------------

@dataclass
class Measurements:
    """Per-run scores and records of every run given, keyed for claim lookups."""

    runs: pd.DataFrame                                     # one row per run: record fields + `score`
    dt_runs: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run x Mamba metric (last val step)
    provenance: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per run given (`run_table`)


def _scored(record: dict) -> dict:
    """A run's record with its score (the family's metric, scaled as the tables report it) and the fewest episodes
    any task had at its final checkpoint."""
    record, episodes = run_evaluation(record)  # complete and bound to the run's checkpoints, or one line
    episodes = episodes.assign(seed=record["seed"], **{"protocol.eval_aggregate": record["protocol.eval_aggregate"]})
    column, scale, metric = SCORES[get_spec(record["dataset"]).family]
    final = episodes[episodes["step"] == episodes["step"].max()]
    return {**record, "metric": metric, "score": float(stats.seed_scores(episodes, column).iloc[0]) * scale,
            "episodes_evaluated": int(final.groupby("task").size().min()), "episodes_scored": len(final)}


def _seed_scores(rows: pd.DataFrame, values: np.ndarray | None = None) -> verdicts.SeedScores:
    """The rows' per-seed scores (or `values` computed from them); success rates carry the sampling sd of one
    seed's final evaluation (`episodes_scored` binary episodes) as the floor of their spread."""
    values = rows["score"].to_numpy(float) if values is None else values
    episodes = rows["episodes_scored"].min() if "episodes_scored" in rows else math.nan
    if pd.isna(episodes) or set(rows["metric"]) != {"success_x100"}:  # not a success rate, or episodes unknown
        return verdicts.SeedScores(values)
    return verdicts.SeedScores(values, verdicts.binomial_sd_floor(values, int(episodes)))


def measure(paths: Iterable[str | Path]) -> Measurements:
    """Read every run folder given, one at a time (a paper budget holds ~10^3 runs of ~10^3 episodes): episode
    scores of runs with evaluations, Mamba statistics of QHyer runs."""
    records = read_records(paths)
    runs = [_scored(r) for r in records]  # every run given: one without its evaluation is named, never dropped
    dt_rows = []
    for record in (r for r in records if r["method"] == "qhyer"):
        last = last_dt_metrics(Path(record["run_dir"]))
        last = last[last["layer"] == "all"]
        spec = get_spec(record["dataset"])
        dt_rows += [{**record, "family": spec.family, "kind": spec.kind, "metric": m.metric, "score": float(m.value)}
                    for m in last.itertuples()]
    return Measurements(pd.DataFrame(runs), pd.DataFrame(dt_rows), run_table(pd.DataFrame(records)))


def require_one_provenance(meas: Measurements, allow_mixed_provenance: bool = False) -> None:
    """Refuse runs of mixed provenance (one line: which runs differ in what) unless `allow_mixed_provenance`."""
    mixed = provenance_differences(meas.provenance)
    if mixed and not allow_mixed_provenance:
        raise UserError(f"no verdict from runs of mixed provenance: {'; '.join(mixed)}",
                        "retrain the runs that differ (delete their folders and rerun the DAG) or pass "
                        f"{ALLOW_MIXED} (DAG: --config allow_mixed_provenance=True) to check them anyway")


# --- checking one claim ------------------------------------------------------------------------------------------

def _matching(frame: pd.DataFrame, match: dict, what: str) -> pd.DataFrame:
    unknown = [c for c in match if c not in frame]
    if frame.empty or unknown:
        raise Missing(f"no runs recorded {', '.join(unknown) or what}")
    keep = np.logical_and.reduce([frame[c].astype(str) == str(v) for c, v in match.items()])
    rows = frame[keep]
    if rows.empty:
        raise Missing("no run with " + ", ".join(f"{c}={v}" for c, v in match.items()))
    return rows


def _rows(meas: Measurements, claim: dict, **extra) -> pd.DataFrame:
    """The runs (one per seed) measuring one quantity of the claim; Missing when there are none."""
    match = {**claim["match"], **extra}
    if "dataset" in match:
        spec = get_spec(match["dataset"])
        match["dataset"] = spec.name
    if claim.get("table") == "dt_stats":
        rows = _matching(meas.dt_runs, {**match, "metric": claim["metric"]}, "Mamba statistics")
    else:
        rows = _matching(meas.runs, match, "evaluations")
    # one run per seed; only the Mamba statistics average several datasets within a seed (`_value`)
    if rows.duplicated(["seed", "dataset"] if claim.get("table") == "dt_stats" else ["seed"]).any():
        raise ConfigError(f"claim '{claim['id']}': several runs per seed match {match}", "make its match unique")
    return rows


def _dataset_missing(claim: dict, datasets: list[str]) -> None:
    for name in datasets:
        try:
            get_spec(name)
        except ConfigError:
            raise Missing(f"dataset {name} is not in the harness's registry") from None


def _number(value: float) -> str:
    """A count in full (1001000, not 1.001e+06), other numbers to 4 significant digits."""
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def _shortfalls(rows: pd.DataFrame, protocol: dict, n_seeds: int) -> list[str]:
    """How the runs fall short of the claim's protocol (empty: comparable)."""
    out = []

    def below(label: str, have: Iterable, need: float) -> None:
        have = [h for h in have if h is not None and not pd.isna(h)]
        if not have:
            out.append(f"{label} unrecorded")
        elif min(have) < need:
            out.append(f"{label} {_number(min(have))} < {_number(need)}")

    if "steps" in protocol:
        below("updates", rows["steps_trained"], protocol["steps"])
    if "episodes_per_task" in protocol and "episodes_evaluated" in rows:
        below("episodes/task", rows["episodes_evaluated"], protocol["episodes_per_task"])
    if "seeds" in protocol:
        below("seeds", [n_seeds], protocol["seeds"])
    for key in ("eval_aggregate", "eval_every", "eval_last_k"):
        if key in protocol and "episodes_evaluated" in rows:
            found = sorted({str(v) for v in rows[f"protocol.{key}"]})
            if found != [str(protocol[key])]:
                out.append(f"{key} {', '.join(found)} is not {protocol[key]}")
    if protocol.get("dataset") == OFFICIAL_SIZE:
        for name, group in rows.groupby("dataset"):
            spec = get_spec(name)
            official = spec.train_episodes * spec.episode_length if spec.family == "ogbench" else spec.total_steps
            below(f"{name} rows", group["protocol.dataset_rows"], official)
    return out


@dataclass
class Outcome:
    decision: verdicts.Decision
    rows: pd.DataFrame
    detail: str


def _value(claim: dict, doc: dict, meas: Measurements, level: float = stats.LEVEL) -> Outcome:
    """One score per seed: its run's, or over several datasets the mean of its runs' (`stats.seed_means_over_
    datasets`; a seed lacking one of the datasets is left out and named)."""
    rows = _rows(meas, claim)
    per_seed, incomplete = stats.seed_means_over_datasets(rows, "score")
    if per_seed.empty:
        raise Missing(f"no seed has runs on every dataset matched ({', '.join(sorted(rows['dataset'].unique()))})")
    decision = verdicts.value_verdict(_seed_scores(rows, per_seed.to_numpy(float)), claim["value"],
                                      tolerance_of(claim, doc), level=level)
    datasets = sorted(rows["dataset"].unique())
    shown = ", ".join(f"{s:.4g}" for s in per_seed)
    if len(datasets) == 1:
        return Outcome(decision, rows, f"{len(per_seed)} seeds: {shown}")
    left_out = f"; seeds {incomplete} lack some of these datasets and are left out" if incomplete else ""
    return Outcome(decision, rows[rows["seed"].isin(per_seed.index)],
                   f"{len(per_seed)} seeds, each the mean over {len(datasets)} datasets ({', '.join(datasets)}): "
                   f"{shown}{left_out}")


def _total(claim: dict, doc: dict, meas: Measurements, level: float = stats.LEVEL) -> Outcome:
    _dataset_missing(claim, claim["datasets"])
    per_dataset = {d: _rows(meas, claim, dataset=d) for d in claim["datasets"]}
    decision = verdicts.total_verdict({d: _seed_scores(r) for d, r in per_dataset.items()},
                                      claim["value"], tolerance_of(claim, doc), level=level)
    parts = " + ".join(f"{d} {r['score'].mean():.4g} ({len(r)} seeds)" for d, r in per_dataset.items())
    return Outcome(decision, pd.concat(per_dataset.values(), ignore_index=True), f"sum of means: {parts}")


def _aligned(*sides: pd.DataFrame) -> list[verdicts.SeedScores]:
    """Sides' scores, in seed order when all ran the same seeds (then the test pairs them by seed)."""
    if all(sorted(side["seed"]) == sorted(sides[0]["seed"]) for side in sides):
        sides = tuple(side.sort_values("seed") for side in sides)
    return [_seed_scores(side) for side in sides]


def _differences(claim: dict, doc: dict, meas: Measurements, level: float = stats.LEVEL) -> Outcome:
    """Ordering and gain claims: along each chain, every value of `key` beats the next one, and along each of
    `trends` the scores rise (one test of the slope), on every dataset (or, with `total_over`, in the total over
    those datasets). A gain claim with a `value` checks the claimed gain within its tolerance too."""
    contrasts, found = [], []
    if "total_over" in claim:
        _dataset_missing(claim, claim["total_over"])
        chain = claim["chains"][0]
        sides = {v: [_rows(meas, claim, dataset=d, **{claim["key"]: v}) for d in claim["total_over"]] for v in chain}
        contrasts = [verdicts.Contrast.difference(f"total {a} > total {b}", [_seed_scores(r) for r in sides[a]],
                                                  [_seed_scores(r) for r in sides[b]]) for a, b in pairwise(chain)]
        found = [r for rows in sides.values() for r in rows]
    else:
        datasets = claim.get("datasets", [None])
        _dataset_missing(claim, [d for d in datasets if d])
        for dataset in datasets:
            where, prefix = ({"dataset": dataset}, f"{dataset}: ") if dataset else ({}, "")
            for chain in claim["chains"]:
                sides = [_rows(meas, claim, **where, **{claim["key"]: value}) for value in chain]
                found += sides
                contrasts += [verdicts.Contrast.difference(f"{prefix}{va} > {vb}", *_aligned(a, b))
                              for (va, a), (vb, b) in pairwise(zip(chain, sides, strict=True))]
            for trend in claim.get("trends", []):
                sides = [_rows(meas, claim, **where, **{claim["key"]: value}) for value in trend]
                found += sides
                contrasts.append(verdicts.Contrast.trend(f"{prefix}rise over {' < '.join(map(str, trend))} (slope "
                                                         "per step)", _aligned(*sides)))
    rows = pd.concat(found, ignore_index=True)
    if claim["type"] == "gain" and "value" in claim:
        if len(contrasts) != 1:
            raise ConfigError(f"claim '{claim['id']}': a gain with a value compares one pair, not {len(contrasts)}",
                              "give one chain of two and one dataset (or `total_over`)")
        tolerance = tolerance_of(claim, doc, distinct(rows["metric"]))
        if tolerance is None:
            raise ConfigError(f"claim '{claim['id']}' has no tolerance", "give `tolerance` or a `metric` default")
        decision = verdicts.gain_verdict(*contrasts[0].sides, claim["value"], tolerance, level,
                                         label=contrasts[0].label)
        return Outcome(decision, rows, f"{contrasts[0].label}: {decision.estimate:+.4g} [{decision.ci_low:.4g}, "
                                       f"{decision.ci_high:.4g}], claimed +{claim['value']:g} ± {tolerance:g}")
    decision = verdicts.contrast_verdict(contrasts, level)
    shown = "; ".join(f"{d.label}: {d.estimate:+.4g} [{d.low:.4g}, {d.high:.4g}]" for d in decision.differences)
    return Outcome(decision, rows, shown)


CHECKS = {"value": _value, "total": _total, "ordering": _differences, "gain": _differences}


def check_claim(claim: dict, doc: dict, meas: Measurements, level: float = stats.LEVEL) -> dict:
    """One row of claims_check.csv; `level`: of its intervals (the staged design's repeated intervals: verify.py)."""
    protocol_name = claim.get("protocol", "")
    protocol = doc["protocols"].get(protocol_name, {})
    tolerance = tolerance_of(claim, doc) if claim["type"] in ("value", "total") else math.nan
    result = {"id": claim["id"], "type": claim["type"], "claimed": claim.get("value", math.nan),
              "tolerance": tolerance, "band_low": math.nan, "band_high": math.nan, "estimate": math.nan,
              "ci_low": math.nan, "ci_high": math.nan, "n_seeds": math.nan, "interval_method": "",
              "seeds_to_decide": math.nan, "expected": "", "protocol": protocol_name, "protocol_met": "",
              "budget": "", "assumption": claim.get("assumption", ""), "quote": claim["quote"],
              "value_source": claim.get("value_source", "")}
    if claim["type"] == "unmeasured":
        return {**result, "verdict": UNMEASURED, "evidence": claim["reason"]}
    try:
        outcome = CHECKS[claim["type"]](claim, doc, meas, level)
    except Missing as gap:
        return {**result, "verdict": MISSING, "evidence": str(gap)}
    d = outcome.decision
    result.update(band_low=d.tolerance[0], band_high=d.tolerance[1], estimate=d.estimate, ci_low=d.ci_low,
                  ci_high=d.ci_high, n_seeds=d.n_seeds, interval_method=d.interval_method,
                  seeds_to_decide=d.seeds_to_decide, expected=d.expected, budget=distinct(outcome.rows["budget"]),
                  **{c: distinct(outcome.rows[c]) for c in PROVENANCE_COLUMNS})
    if claim["type"] == "gain" and "value" in claim:  # the tolerance may come from the runs' metric
        result["tolerance"] = d.tolerance[1] - claim["value"]
    short = _shortfalls(outcome.rows, protocol, d.n_seeds)
    result["protocol_met"] = "no: " + "; ".join(short) if short else "yes"
    evidence = f"{d.reason}. {outcome.detail}"
    if short:
        result.update(verdict=NOT_COMPARABLE,
                      evidence=f"below protocol {protocol_name} ({'; '.join(short)}); at this budget: {d.verdict}. "
                               + evidence)
    else:
        result.update(verdict=d.verdict, evidence=evidence)
    return result


def check_claims(doc: dict, meas: Measurements, allow_mixed_provenance: bool = False) -> pd.DataFrame:
    """One row per claim; refused over runs of mixed provenance unless `allow_mixed_provenance`."""
    require_one_provenance(meas, allow_mixed_provenance)
    return pd.DataFrame([check_claim(claim, doc, meas) for claim in doc["claims"]], columns=list(COLUMNS))


def explain(claim_id: str, doc: dict, meas: Measurements, allow_mixed_provenance: bool = False) -> str:
    """Everything behind one claim's verdict, as text."""
    require_one_provenance(meas, allow_mixed_provenance)
    claims = {c["id"]: c for c in doc["claims"]}
    if claim_id not in claims:
        raise ConfigError(f"unknown claim '{claim_id}'", f"ids are listed in {CLAIMS_FILE.name}")
    claim = claims[claim_id]
    row = check_claim(claim, doc, meas)
    protocol = doc["protocols"].get(claim.get("protocol", ""), {})
    lines = [f"claim {claim_id} ({claim['type']}): {claim['quote']}"]
    if claim.get("value_source"):
        lines.append(f"source of the quoted number: {claim['value_source']}")
    if claim.get("assumption"):
        lines.append(f"assumption: {claim['assumption']}")
    lines.append(f"protocol {claim.get('protocol', '-')}: " + json.dumps(protocol, ensure_ascii=False))
    if claim["type"] in CHECKS:
        try:
            outcome = CHECKS[claim["type"]](claim, doc, meas)
            shown = outcome.rows[[c for c in ("study", "variant", "method", "dataset", "seed", "budget",
                                               "steps_trained", "score") if c in outcome.rows]]
            lines += ["rows used:", shown.to_string(index=False), f"per seed: {outcome.detail}"]
        except Missing:
            pass
    lines += [f"test: {row['interval_method'] or 'none'}",
              f"interval: {row['estimate']:.4g} [{row['ci_low']:.4g}, {row['ci_high']:.4g}]; "
              f"band [{row['band_low']:.4g}, {row['band_high']:.4g}]",
              f"protocol met: {row['protocol_met'] or '-'}",
              f"seeds in the interval: {row['n_seeds']:.4g}; seeds that would decide it: {row['seeds_to_decide']:.4g}"
              + (f" (toward {row['expected']})" if row["expected"] else ""),
              f"verdict: {row['verdict']} — {row['evidence']}"]
    return "\n".join(lines) + "\n"


def provenance_header(meas: Measurements, allow_mixed_provenance: bool, warning: str | None) -> list[str]:
    """The .md lines on the runs' provenance: the warning, the flag when given, what the runs came from."""
    mixed = bool(provenance_differences(meas.provenance))
    flag = [f"**Checked with `{ALLOW_MIXED}`**: " + ("the verdicts below pool runs of different commits, data or "
                                                      "package versions." if mixed else
                                                      "given, though the runs share one provenance.")]
    return [*([f"**{warning}**"] if warning else []), *(flag if allow_mixed_provenance else []),
            "Provenance of the runs:\n" + "\n".join(f"- {line}" for line in provenance_lines(meas.provenance))]


def report_markdown(check: pd.DataFrame, doc: dict, provenance: Iterable[str] = ()) -> str:
    """The claims check as Markdown; `provenance`: its header lines (`provenance_header`)."""
    counts = check["verdict"].value_counts()
    protocols = "\n".join(f"- `{name}`: {p.get('assumption', '')} (source: {p['source']})"
                          for name, p in doc["protocols"].items())

    def fmt(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.4g}"

    def to_decide(row: tuple) -> str:  # the plug-in plan of an undecided claim (verdicts: seeds_to_decide)
        if row.verdict != verdicts.INCONCLUSIVE or pd.isna(row.seeds_to_decide):
            return ""
        seeds = "∞" if math.isinf(row.seeds_to_decide) else f"{row.seeds_to_decide:.0f}"
        return f"{seeds} seeds → {row.expected}"

    rows = pd.DataFrame({
        "claim": check["id"],
        "claimed": [f"+{fmt(r.claimed)}" if r.type == "gain" and not pd.isna(r.claimed) else fmt(r.claimed)
                    for r in check.itertuples()],
        "band": [f"[{fmt(r.band_low)}, {fmt(r.band_high)}]" if not pd.isna(r.band_low) else ""
                 for r in check.itertuples()],
        "measured [95% CI]": [f"{fmt(r.estimate)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}]" if not pd.isna(r.estimate)
                              else "" for r in check.itertuples()],
        "seeds": check["n_seeds"].map(fmt), "verdict": check["verdict"],
        "to decide (plug-in)": [to_decide(r) for r in check.itertuples()], "evidence": check["evidence"]})
    measured = check[~check["verdict"].isin((MISSING, UNMEASURED))]
    return "\n\n".join([
        f"# Claims check: {doc['paper']}",
        f"**Budget of the runs: {distinct(measured['budget'])}.** Verdicts per claim at 95% (no family-wise "
        "correction across claims): " + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS) + ".",
        "How a verdict is reached: qhyer/report/verdicts.py (module docstring) and docs/verdicts.md, "
        "section 'How a verdict is reached'. Protocols (a run below its claim's protocol makes it `not comparable`):\n"
        + protocols,
        f"Claims file version {doc['version']}; source: {doc['source']}.",
        *provenance,
        to_markdown(rows, pd.DataFrame(False, index=rows.index, columns=rows.columns)),
    ]) + "\n"


def write_check(check: pd.DataFrame, doc: dict, out: str | Path, meas: Measurements,
                allow_mixed_provenance: bool = False) -> list[Path]:
    """Write `out` (.csv) and its .md; a WARNING line (mixed provenance, or runs that differ from the current
    checkout) goes to stderr and the .md."""
    warning = provenance_warning(meas.provenance, checkout_provenance())
    if warning:
        print(warning, file=sys.stderr)
    out = write_csv(check, out)
    write_text_atomic(out.with_suffix(".md"),
                      report_markdown(check, doc, provenance_header(meas, allow_mixed_provenance, warning)))
    return [out, out.with_suffix(".md")]
