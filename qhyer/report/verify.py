"""One stage of the staged `verify` target: decide the selected claims at this stage's seeds, plan the next stage.

    python -m qhyer.report verify-stage --stage K [--previous STAGE_K-1/next_plan.json] --runs RUN... \
        --claims-file qhyer/report/claims.yaml --select ID_OR_GLOB... --first-seeds 3 --step-seeds 1 --max-seeds 16 \
        --baselines rerun|published [--published FILE] --out results/verify/<budget>/stageK/claims_check.csv

Stage 1 gives every selected claim `first_seeds`; the plan of stage K > 1 is stage K-1's `next_plan.json`. Each claim
is decided over its own seeds only (0 .. n-1: a run shared with a claim that has more seeds contributes only the
seeds this claim has reached) by the claims check (qhyer/report/claims.py) at the repeated-confidence-interval
level of its look (verdicts.SequentialDesign.level_at(n)), so stopping when a claim is decided keeps its error
rates. A claim stops when it is decided (`reproduced`, `below`, `above`, `reversed`), `missing`, `unmeasured`,
`not comparable` (more seeds cannot lift runs below their protocol), or at `max_seeds`; the others get `step_seeds`
more in the next stage. The protocols' `seeds` requirement is left out: the design sets the seeds. `next_plan.json`
says `done` when no claim is left; its claims check is then the final one (workflow/rules/verify.smk copies it to
results/verify_check.csv).

Baselines `published` (qhyer/report/published.py): a comparison with a baseline whose summary is vendored reads the
summary (as pseudo-scores with its mean, sd and seeds: Welch's interval; exact without a spread) instead of runs;
a baseline's own value claim becomes its citation check. Every row names the baselines published and re-run.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.io import write_text_atomic
from qhyer.report import claims as claims_check
from qhyer.report import plan, published, verdicts
from qhyer.report.tables import to_markdown, write_csv
from qhyer.rollout.eval_env import eval_tasks

DECIDED = (verdicts.REPRODUCED, verdicts.BELOW, verdicts.ABOVE, verdicts.REVERSED)
STAGE_COLUMNS = ("stage", "seeds", "level", "next_seeds", "baselines_published", "baselines_rerun")
PUBLISHED_BUDGET = "published"


def _seed_plan(stage: int, previous: Path | None, selected: list[dict], design: verdicts.SequentialDesign) -> dict:
    """{seeds: {claim: n}, active: [claims decided at this stage], stopped: {claim: stage}} of this stage."""
    if stage == 1:
        if previous is not None:
            raise ConfigError("stage 1 has no previous plan")
        ids = [c["id"] for c in selected]
        return {"seeds": {c: design.first_seeds for c in ids}, "active": ids, "stopped": {}}
    if previous is None:
        raise ConfigError(f"stage {stage} needs --previous (stage {stage - 1}'s next_plan.json)")
    doc = json.loads(Path(previous).read_text())
    if doc.get("stage") != stage or doc.get("done"):
        raise ConfigError(f"{previous} plans stage {doc.get('stage')} (done: {doc.get('done')}), not stage {stage}")
    return doc


def _protocols_without_seeds(doc: dict) -> dict:
    """The claims file with every protocol's `seeds` left out: the staged design decides how many seeds."""
    staged = copy.deepcopy(doc)
    for protocol in staged["protocols"].values():
        protocol.pop("seeds", None)
    return staged


def _published_rows(summaries: list[published.Summary], doc: dict, template: pd.Series) -> pd.DataFrame:
    """A published summary as run rows of the claims check: pseudo-scores (negative seeds: never paired with a
    run's), and the protocol fields of the protocol it was published under (so a mismatch with the claim's
    protocol shows as `not comparable`)."""
    rows = []
    for summary in summaries:
        protocol = doc["protocols"].get(summary.protocol, {})
        spec = get_spec(summary.dataset)
        official = spec.train_episodes * spec.episode_length if spec.family == "ogbench" else spec.total_steps
        for i, score in enumerate(summary.pseudo_scores()):
            row = {c: math.nan for c in template.index}
            row.update({"study": "main", "variant": "default", "method": summary.method, "dataset": summary.dataset,
                        "seed": -1 - i, "score": float(score), "budget": PUBLISHED_BUDGET,
                        "metric": template.get("metric", math.nan),
                        "steps_trained": protocol.get("steps", math.nan),
                        "episodes_evaluated": protocol.get("episodes_per_task", math.nan),
                        # its final evaluation's episodes (the claims check's floor on a seed's sd); the run's own
                        # where the protocol states none
                        "episodes_scored": protocol["episodes_per_task"] * len(eval_tasks(spec))
                        if "episodes_per_task" in protocol else template.get("episodes_scored", math.nan),
                        "protocol.dataset_rows": official,
                        **{f"protocol.{k}": protocol.get(k, math.nan) for k in ("eval_aggregate", "eval_every",
                                                                                  "eval_last_k")},
                        **{c: f"published: {summary.source}" for c in ("commit", "dataset_sha256", "versions")}})
            rows.append(row)
    return pd.DataFrame(rows)


def _claim_measurements(meas: claims_check.Measurements, n_seeds: int, injected: pd.DataFrame
                        ) -> claims_check.Measurements:
    """The runs of seeds 0 .. n_seeds-1 (and the published pseudo-runs)."""
    def upto(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["seed"] < n_seeds] if "seed" in frame else frame

    runs = pd.concat([upto(meas.runs), injected], ignore_index=True) if not injected.empty else upto(meas.runs)
    return claims_check.Measurements(runs, upto(meas.dt_runs), meas.provenance)


def decide(claim: dict, doc: dict, meas: claims_check.Measurements, n_seeds: int,
           design: verdicts.SequentialDesign, summaries: published.Published | None) -> dict:
    """One claim's row at its look with `n_seeds` seeds (published baselines read from `summaries`)."""
    level = design.level_at(n_seeds)
    used = plan.published_baselines(claim, summaries) if summaries is not None else []
    if used and claim["type"] in ("value", "total"):  # a baseline's own published number: the citation check
        found = [summaries.get(m, d) for m, d in used]
        verdict, evidence = published.compare_quote(claim["value"], found)
        row = {c: math.nan for c in claims_check.COLUMNS}
        row.update(id=claim["id"], type=claim["type"], claimed=claim["value"], verdict=verdict,
                   evidence=f"citation check (baselines: published): {evidence}", quote=claim["quote"],
                   assumption=claim.get("assumption", ""), protocol=claim.get("protocol", ""), budget=PUBLISHED_BUDGET)
        return {**row, "level": math.nan, "baselines_published": "; ".join(f"{m} on {d}" for m, d in used),
                "baselines_rerun": ""}
    template = meas.runs.iloc[0] if not meas.runs.empty else pd.Series(dtype=object)
    injected = _published_rows([summaries.get(m, d) for m, d in used], doc, template) if used else pd.DataFrame()
    # the claims check with its matching, protocol and provenance; `level` from the staged design
    row = claims_check.check_claim(claim, doc, _claim_measurements(meas, n_seeds, injected), level=level)
    if used:
        exact = [f"{m} on {d}" for m, d in used if summaries.get(m, d).sd is None]
        row["evidence"] = ("Published baselines: " + "; ".join(summaries.get(m, d).label() for m, d in used)
                           + (f" ({', '.join(exact)}: published without a spread, its seeds' spread taken as 0, "
                              "bounded below by one evaluation's sampling error like every side)" if exact else "")
                           + ". " + row["evidence"])
    rerun = [f"{m} on {d}" for m, d in plan.claim_baselines(claim) if (m, d) not in used]
    return {**row, "level": level, "baselines_published": "; ".join(f"{m} on {d}" for m, d in used),
            "baselines_rerun": "; ".join(rerun)}


def decide_stage(stage: int, previous: Path | None, runs: Sequence[Path], claims_file: Path, patterns: Sequence[str],
                 design: verdicts.SequentialDesign, baselines: str, published_file: Path | None,
                 allow_mixed_provenance: bool = False) -> tuple[pd.DataFrame, dict, dict]:
    """(this stage's claims check, the next stage's plan, the claims file) from the runs trained so far."""
    doc = claims_check.load_claims(claims_file)
    selected = plan.select_claims(doc, patterns)
    summaries = plan.load_summaries(baselines, published_file)
    seed_plan = _seed_plan(stage, previous, selected, design)
    meas = claims_check.measure(runs) if runs else claims_check.Measurements(pd.DataFrame(), pd.DataFrame(),
                                                                             pd.DataFrame())
    if runs:
        claims_check.require_one_provenance(meas, allow_mixed_provenance)
    staged_doc = _protocols_without_seeds(doc)
    rows, seeds, active, stopped = [], dict(seed_plan["seeds"]), [], dict(seed_plan["stopped"])
    for claim in selected:
        n = seed_plan["seeds"][claim["id"]]
        row = decide(claim, staged_doc, meas, n, design, summaries)
        if claim["id"] in seed_plan["active"]:
            undecided = row["verdict"] == verdicts.INCONCLUSIVE
            if undecided and n < design.max_seeds:
                seeds[claim["id"]] = min(n + design.step_seeds, design.max_seeds)
                active.append(claim["id"])
            else:
                stopped[claim["id"]] = stage
        rows.append({**row, "stage": stopped.get(claim["id"], stage), "seeds": n,
                     "next_seeds": seeds[claim["id"]] if claim["id"] in active else math.nan})
    check = pd.DataFrame(rows, columns=[*claims_check.COLUMNS, *STAGE_COLUMNS])
    next_plan = {"stage": stage + 1, "done": not active, "seeds": seeds, "active": active, "stopped": stopped,
                 "design": {"first_seeds": design.first_seeds, "step_seeds": design.step_seeds,
                            "max_seeds": design.max_seeds, "alpha": design.alpha, "spending": design.spending},
                 "baselines": baselines}
    return check, next_plan, doc


def stage_markdown(check: pd.DataFrame, doc: dict, stage: int, next_plan: dict, baselines: str) -> str:
    """The staged claims check as Markdown: how it was reached, then one row per claim."""
    design = next_plan["design"]

    def fmt(value: float) -> str:
        return "" if pd.isna(value) else f"{value:.4g}"

    shown = pd.DataFrame({
        "claim": check["id"], "claimed": check["claimed"].map(fmt), "verdict": check["verdict"],
        "measured [CI at level]": [f"{fmt(r.estimate)} [{fmt(r.ci_low)}, {fmt(r.ci_high)}] at {fmt(r.level)}"
                                   if not pd.isna(r.estimate) else "" for r in check.itertuples()],
        "stage": check["stage"], "seeds": check["seeds"], "next seeds": check["next_seeds"].map(fmt),
        "published": check["baselines_published"], "re-run": check["baselines_rerun"],
        "evidence": check["evidence"]})
    counts = check["verdict"].value_counts()
    status = ("final: every claim is decided or at its last look" if next_plan["done"] else
              f"stage {stage + 1} adds {design['step_seeds']} seeds to {len(next_plan['active'])} undecided claims")
    return "\n\n".join([
        f"# Staged claims check, stage {stage}: {doc['paper']}",
        f"{status}. Design: first {design['first_seeds']} seeds, then +{design['step_seeds']} per stage up to "
        f"{design['max_seeds']}; repeated confidence intervals with {design['spending']} alpha-spending "
        f"(alpha {design['alpha']:g}), so a verdict keeps its error rate whichever look reached it. "
        f"Baselines: {baselines}. Verdicts: " + ", ".join(f"{v} {n}" for v, n in counts.items()) + ".",
        "How a staged verdict is reached: qhyer/report/verify.py and verdicts.SequentialDesign; the claims check "
        "itself: qhyer/report/claims.py.",
        to_markdown(shown, pd.DataFrame(False, index=shown.index, columns=shown.columns))]) + "\n"


def write_stage(check: pd.DataFrame, next_plan: dict, doc: dict, stage: int, out: Path, next_out: Path,
                baselines: str) -> list[Path]:
    """The stage's claims check (.csv, .md) and the next stage's plan, each written atomically."""
    out = write_csv(check, out)
    write_text_atomic(out.with_suffix(".md"), stage_markdown(check, doc, stage, next_plan, baselines))
    write_text_atomic(next_out, json.dumps(next_plan, indent=1) + "\n")
    return [out, out.with_suffix(".md"), Path(next_out)]
