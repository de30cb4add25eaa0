"""Which runs a selection of claims needs, and how many seeds each stage of the staged `verify` target gives them.

    python -m qhyer.report plan --budget paper [--claims 'main.*' gain.cube-single-play] [--baselines published]

A claim's runs come from its `match` fields in claims.yaml (study, method, dataset, `method.<field>`), its
`datasets` / `total_over` lists, and its `key` chains (the methods or variants it orders), resolved against the
runs the budget can make (qhyer.runs: a study's datasets, methods and variants; AntMaze only when its file is
present). A run is (study, variant, method, dataset); its seeds are 0 .. n-1, where n is the largest seed count of
the claims that use it, so a run shared by several claims is trained once. A claim the budget cannot measure in
full (a dataset, method or variant the budget lacks) gets no runs: training half of what it needs decides nothing.
With `baselines: published`, a baseline whose published summary is vendored (qhyer/report/published.py) is not
re-run: the claims that compare QHyer with it read the summary instead.

Stages (workflow/rules/verify.smk): stage 1 gives every planned claim `first_seeds`; after each stage
qhyer/report/verify.py decides the claims again and the next stage adds `step_seeds` to the claims still
undecided, up to `max_seeds`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qhyer.data.registry import get_spec
from qhyer.errors import ConfigError
from qhyer.report import published as published_summaries
from qhyer.report.cost import data_dir_of, dataset_present
from qhyer.runs import STUDIES, run_dir, study_datasets, study_variants

QHYER = "qhyer"  # the paper's own method: every other method of a claim is a baseline
SPEC_FIELDS = ("family", "kind")  # match fields the claims check reads from the dataset's registry entry
RunKey = tuple[str, str, str, str]  # (study, variant, method, dataset); seeds are added per stage


@dataclass(frozen=True)
class ClaimPlan:
    """The runs one claim needs, the baselines it reads from published summaries, or why it gets no runs."""

    claim: str
    runs: tuple[RunKey, ...]
    published: tuple[tuple[str, str], ...] = ()  # (method, dataset) read from their published summaries
    unplanned: str = ""                          # why the budget cannot measure it ('' when planned)


def select_claims(doc: dict, patterns: Sequence[str]) -> list[dict]:
    """The claims whose id matches one of `patterns` (ids or shell globs), in file order; a pattern matching no
    claim is a ConfigError (a typo would otherwise verify nothing)."""
    ids = [claim["id"] for claim in doc["claims"]]
    unmatched = [p for p in patterns if not fnmatch.filter(ids, p)]
    if unmatched:
        raise ConfigError(f"claims selection {', '.join(map(repr, unmatched))} matches no claim id",
                          "ids are listed in qhyer/report/claims.yaml; globs like 'main.*' are accepted")
    return [claim for claim in doc["claims"] if any(fnmatch.fnmatchcase(claim["id"], p) for p in patterns)]


def _same(recorded: object, wanted: object) -> bool:
    """A variant's field equals a claim's value (numbers compared as numbers: τ 0.9 == 0.90)."""
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        try:
            return float(recorded) == float(wanted)
        except (TypeError, ValueError):
            return False
    return str(recorded) == str(wanted)


def key_values(claim: dict) -> list:
    """The values of a claim's `key` it compares: those of its chains (orderings) and trends, each once."""
    return list(dict.fromkeys(v for levels in (*claim.get("chains", []), *claim.get("trends", [])) for v in levels))


class _Unplanned(Exception):
    """The budget cannot measure the claim in full; the message says what it lacks."""


def _claim_datasets(claim: dict, config: dict, study: str) -> list[str]:
    match = claim["match"]
    if "dataset" in match:
        return [match["dataset"]]
    if "datasets" in claim or "total_over" in claim:
        return list(claim.get("datasets") or claim["total_over"])
    spec_fields = {k: v for k, v in match.items() if k in SPEC_FIELDS}
    if spec_fields:  # Mamba statistics: every dataset of that family and kind the study runs
        found = [d for d in study_datasets(study, config)
                 if all(getattr(get_spec(d), k) == v for k, v in spec_fields.items())]
        if not found:
            raise _Unplanned(f"the budget runs no dataset with {spec_fields} in study {study}")
        return found
    return study_datasets(study, config)


def _check_datasets(datasets: list[str], config: dict, study: str) -> None:
    budget_datasets = study_datasets(study, config)
    for name in datasets:  # the harness's registry first: no budget can add a dataset it lacks
        try:
            get_spec(name)
        except ConfigError:
            raise _Unplanned(f"dataset {name} is not in the harness's registry") from None
    for spec in map(get_spec, datasets):
        if spec.name not in budget_datasets:
            raise _Unplanned(f"the budget's {STUDIES[study].section or 'table1/table2'} datasets lack {spec.name}")
        if not dataset_present(spec, data_dir_of(config)):
            raise _Unplanned(f"{spec.name} needs its user-supplied file (absent from {data_dir_of(config)})")


def _variants(claim: dict, config: dict, study: str) -> list[str]:
    """The study variants the claim reads: those with its `method.<field>` values (and its `variant`, if it names
    one), and, for a key over a method field or over `variant`, one per value of its chains (each must exist)."""
    fields = {k.removeprefix("method."): v for k, v in claim["match"].items() if k.startswith("method.")}
    named = claim["match"].get("variant")
    variants = {name: f for name, f in study_variants(study, config).items()
                if all(field in f and _same(f[field], value) for field, value in fields.items())
                and name == (named or name)}
    key = claim.get("key", "")
    if key == "variant":
        wanted = key_values(claim)
        lacking = [v for v in wanted if v not in variants]
        if lacking:
            raise _Unplanned(f"the budget has no {study} variant {', '.join(lacking)} with {fields}")
        return wanted
    if not key.startswith("method."):
        if not variants:
            raise _Unplanned(f"no {study} variant of the budget has {fields}")
        return list(variants)
    field, chosen = key.removeprefix("method."), []
    for value in key_values(claim):
        found = [name for name, f in variants.items() if field in f and _same(f[field], value)]
        if not found:
            raise _Unplanned(f"the budget has no {study} variant with {key}={value}")
        chosen += found
    return list(dict.fromkeys(chosen))


def _methods(claim: dict, config: dict, study: str) -> list[str]:
    offered = STUDIES[study].methods or config["methods"]
    if claim.get("table") == "dt_stats":
        wanted = [QHYER]  # the Mamba statistics are QHyer's own
    elif "method" in claim["match"]:
        wanted = [claim["match"]["method"]]
    elif claim.get("key") == "method":
        wanted = key_values(claim)
    else:
        wanted = list(offered)
    lacking = [m for m in wanted if m not in offered]
    if lacking:
        raise _Unplanned(f"the budget's {study} study runs no {', '.join(lacking)}")
    return wanted


def plan_claim(claim: dict, config: dict, summaries: published_summaries.Published | None = None) -> ClaimPlan:
    """The runs `claim` needs under the (merged) workflow config; with `summaries` (baselines: published), the
    baseline runs whose published summary is vendored are left out and listed as published."""
    try:
        if claim["type"] == "unmeasured":
            raise _Unplanned(claim["reason"])
        study = claim["match"].get("study")
        if study not in STUDIES:
            raise _Unplanned(f"its match names no study of the harness ({study})")
        section = STUDIES[study].section
        if section and section not in config:
            raise _Unplanned(f"the budget has no {section} section")
        datasets = _claim_datasets(claim, config, study)
        _check_datasets(datasets, config, study)
        variants, methods = _variants(claim, config, study), _methods(claim, config, study)
    except _Unplanned as why:
        return ClaimPlan(claim["id"], (), (), str(why))
    runs = [(study, v, m, get_spec(d).name) for d in datasets for v in variants for m in methods]
    published = published_baselines(claim, summaries) if summaries is not None else []
    runs = [r for r in runs if (r[2], r[3]) not in published]
    return ClaimPlan(claim["id"], tuple(runs), tuple(dict.fromkeys(published)))


def claim_baselines(claim: dict) -> list[tuple[str, str]]:
    """(method, dataset) of every baseline (a method other than QHyer) a claim reads: its match's method, or the
    methods its chains order (key `method`), on its datasets (those its match or lists name)."""
    match = claim.get("match", {})
    if claim["type"] == "unmeasured":
        return []
    datasets = [match["dataset"]] if "dataset" in match else list(claim.get("datasets") or claim.get("total_over")
                                                                    or [])
    methods = [match["method"]] if "method" in match else key_values(claim) if claim.get("key") == "method" else []
    return [(m, d) for m in methods if m != QHYER for d in datasets]


def published_baselines(claim: dict, summaries: published_summaries.Published) -> list[tuple[str, str]]:
    """(method, dataset) of the baselines `claim` reads from vendored published summaries: in a comparison
    with QHyer in the main study (key `method`), every baseline side with a vendored summary; in a baseline's own
    value or total, all its datasets, and only when every one is vendored (its check is then the citation check)."""
    baselines = claim_baselines(claim)
    found = [(m, d) for m, d in baselines if summaries.usable(m, d)]
    if claim["type"] in ("value", "total"):
        return found if baselines and len(found) == len(baselines) else []
    return found if claim["match"].get("study") == "main" else []


def plan_claims(doc: dict, config: dict, patterns: Sequence[str] = ("*",),
                summaries: published_summaries.Published | None = None) -> dict[str, ClaimPlan]:
    """{claim id: its plan} for the selected claims, in the claims file's order."""
    return {c["id"]: plan_claim(c, config, summaries) for c in select_claims(doc, patterns)}


def stage_runs(plans: dict[str, ClaimPlan], seeds: dict[str, int]) -> list[tuple[str, str, str, str, int]]:
    """(study, variant, method, dataset, seed) of every run a stage needs: each planned claim's runs with seeds
    0 .. seeds[claim]-1, each run once (the largest seed count of the claims sharing it)."""
    needed: dict[RunKey, int] = {}
    for claim, n in seeds.items():
        for key in plans[claim].runs:
            needed[key] = max(needed.get(key, 0), n)
    return [(*key, seed) for key, n in needed.items() for seed in range(n)]


def stage_run_dirs(config: dict, plans: dict[str, ClaimPlan], seeds: dict[str, int]) -> list[str]:
    return [run_dir(config["runs_root"], config["budget"], *run) for run in stage_runs(plans, seeds)]


def first_stage_seeds(plans: dict[str, ClaimPlan], first_seeds: int) -> dict[str, int]:
    """Stage 1: `first_seeds` for every claim with runs to train."""
    return {claim: first_seeds for claim, p in plans.items() if p.runs}


def render_plan(plans: dict[str, ClaimPlan], seeds: dict[str, int], budget: str, design: dict,
                baselines: str) -> str:
    """The plan as text: the runs stage 1 starts (with the claims each serves), then every claim's runs or why it
    has none."""
    runs = stage_runs(plans, seeds)
    users: dict[RunKey, list[str]] = {}
    for claim, plan in plans.items():
        for key in plan.runs:
            users.setdefault(key, []).append(claim)
    keys = list(dict.fromkeys(r[:4] for r in runs))
    planned = sum(bool(p.runs) for p in plans.values())
    lines = [f"Verify plan at budget '{budget}': {len(plans)} claims selected, {planned} with runs to train; "
             f"baselines {baselines}",
             f"Stage 1 starts {len(runs)} runs ({len(keys)} run configurations x seeds); later stages add "
             f"{design['step_seeds']} seeds to the runs of undecided claims, up to {design['max_seeds']}.", "",
             f"{'study':9s} {'variant':18s} {'method':7s} {'dataset':27s} {'seeds':>6s}  claims"]
    for key in keys:
        n = max(seeds.get(c, 0) for c in users[key])
        lines.append(f"{key[0]:9s} {key[1]:18s} {key[2]:7s} {key[3]:27s} {n:6d}  {', '.join(users[key])}")
    published = [(c, p) for c, p in plans.items() if p.published]
    if published:
        lines += ["", "Baselines read from their published summaries (not re-run):"]
        lines += [f"  {c}: " + ", ".join(f"{m} on {d}" for m, d in p.published) for c, p in published]
    unplanned = [(c, p.unplanned) for c, p in plans.items() if not p.runs and not p.published]
    if unplanned:
        lines += ["", "Claims without runs (verdict `missing`, or `unmeasured` where the harness cannot measure "
                  "the quantity):"] + [f"  {c}: {why}" for c, why in unplanned]
    return "\n".join(lines) + "\n"


def claims_of(patterns: Iterable[str] | None) -> list[str]:
    """The selection as given on a command line or in the workflow config (default: every claim)."""
    return list(patterns) if patterns else ["*"]


def load_summaries(baselines: str, path: str | Path | None) -> published_summaries.Published | None:
    """The vendored published summaries when baselines are `published`; None when they are re-run."""
    if baselines not in ("rerun", "published"):
        raise ConfigError(f"baselines must be rerun or published (got '{baselines}')")
    return published_summaries.load(path or published_summaries.PUBLISHED_FILE) if baselines == "published" else None
