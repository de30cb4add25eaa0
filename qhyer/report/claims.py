"""Check every claim of `claims.yaml` against the measured tables: `results/claims_check.csv` and `.md`.

Verdicts
  value and total claims: `reproduced` when the claim's rounding band (84 means [83.5, 84.5]) meets the 95% CI
  of the measurement, `below` / `above` when the whole CI lies below / above the band;
  ordering claims: `reproduced` when the means are strictly ordered as claimed on every dataset, else
  `not reproduced` (the CIs are in the evidence);
  any type: `not comparable` when the measurement is below the claim's paper budget (a profile other than the
  budget's, or fewer steps, seeds or episodes per task; the evidence says which and what the verdict would
  be), `missing` when nothing measures it (table not given, no row, dataset absent, not a harness metric).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from qhyer.errors import ConfigError
from qhyer.io import write_text_atomic
from qhyer.report.tables import budget_fields, distinct, read_csv, to_markdown, write_csv

CLAIMS_FILE = Path(__file__).with_name("claims.yaml")
TABLES = ("table1", "table2", "ablation", "tau_sweep", "dt_stats")
MEASURED_COLUMNS = ("mean", "ci_low", "ci_high", "n_seeds", "budget", "profile")
FIELDS = {"value": ("table", "match", "value", "budget"), "total": ("table", "datasets", "methods", "value", "budget"),
          "ordering": ("table", "key", "datasets", "chains", "budget"), "unmeasured": ("value", "reason")}
VERDICTS = ("reproduced", "not reproduced", "below", "above", "not comparable", "missing")


class Missing(Exception):
    """Nothing measures the claim; the message says why."""


def load_claims(path: str | Path = CLAIMS_FILE) -> dict:
    """The claims file, checked for the fields each claim type needs."""
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read claims file {path} ({err})".splitlines()[0]) from None
    if not isinstance(doc, dict) or not {"version", "budgets", "claims"} <= doc.keys():
        raise ConfigError(f"{path} needs the keys version, budgets and claims")
    seen = set()
    for claim in doc["claims"]:
        ident = claim.get("id")
        need = FIELDS.get(claim.get("type"))
        if need is None or ident in seen or "quote" not in claim:
            raise ConfigError(f"{path}: claim '{ident}' has an unknown type, a duplicate id or no quote")
        lacking = [f for f in need if f not in claim]
        if lacking or ("budget" in claim and claim["budget"] not in doc["budgets"]):
            raise ConfigError(f"{path}: claim '{ident}' lacks {', '.join(lacking) or 'a known budget'}")
        seen.add(ident)
    return doc


def load_tables(paths: Iterable[str | Path]) -> dict[str, pd.DataFrame]:
    """Measured tables keyed by file stem (`results/table1.csv` -> table1)."""
    tables = {}
    for path in map(Path, paths):
        if path.stem not in TABLES:
            raise ConfigError(f"{path}: not a claims table (expected one of {', '.join(TABLES)})")
        tables[path.stem] = read_csv(path, MEASURED_COLUMNS)
    return tables


def default_rounding(value: float) -> float:
    """The unit of a stated number's last digit: 84 -> 1, 44.2 -> 0.1, 0.38 -> 0.01, 94.0 -> 0.1."""
    text = repr(value)
    return 10.0 ** -(len(text.split(".")[1]) if "." in text else 0)


def _row(tables: dict[str, pd.DataFrame], claim: dict, **extra: str) -> pd.Series:
    name = claim["table"]
    if name not in tables:
        raise Missing(f"{name}.csv was not given")
    table, match = tables[name], {**claim.get("match", {}), **extra}
    unknown = [c for c in match if c not in table]
    if unknown:
        raise Missing(f"{name}.csv has no column {', '.join(unknown)}")
    rows = table[np.logical_and.reduce([table[c].astype(str) == str(v) for c, v in match.items()])]
    where = ", ".join(f"{c}={v}" for c, v in match.items())
    if rows.empty and "status" in table:
        rows = table[(table["status"] == "absent") & (table["dataset"] == match.get("dataset"))]
    if rows.empty:
        raise Missing(f"no {name} row with {where}")
    if len(rows) > 1:
        raise ConfigError(f"claim '{claim['id']}': {len(rows)} {name} rows match {where}", "make its match unique")
    row = rows.iloc[0]
    if row.get("status") == "absent" or pd.isna(row["mean"]):
        raise Missing(f"{where}: {row.get('note') or 'not measured'}")
    return row


def _bounds(row: pd.Series) -> tuple[float, float]:
    """The row's CI, or its estimate twice when no interval could be estimated (a single run)."""
    return (row["mean"], row["mean"]) if pd.isna(row["ci_low"]) else (row["ci_low"], row["ci_high"])


def _fmt(row: pd.Series) -> str:
    low, high = _bounds(row)
    return f"{row['mean']:.4g} [{low:.4g}, {high:.4g}]"


def _rounding(claim: dict) -> float:
    return claim.get("rounding", default_rounding(claim["value"])) if "value" in claim else np.nan


def _compare(claim: dict, mean: float, low: float, high: float) -> str:
    half = _rounding(claim) / 2
    if claim["value"] + half < low:
        return "above"
    return "below" if claim["value"] - half > high else "reproduced"


def _check_value(claim: dict, tables: dict) -> tuple[dict, list[pd.Series]]:
    row = _row(tables, claim)
    low, high = _bounds(row)
    return {"measured": row["mean"], "ci_low": low, "ci_high": high, "verdict": _compare(claim, row["mean"], low, high),
            "evidence": str(row.get("ci_method", "")), "metric": row.get("metric", "")}, [row]


def _check_total(claim: dict, tables: dict) -> tuple[dict, list[pd.Series]]:
    totals, gaps = [], []
    for method in claim["methods"]:
        try:
            totals.append((method, [_row(tables, claim, dataset=d, method=method) for d in claim["datasets"]]))
        except Missing as gap:
            gaps.append(f"{method}: {gap}")
    if not totals:
        raise Missing("; ".join(gaps))
    method, rows = max(totals, key=lambda t: sum(r["mean"] for r in t[1]))
    mean = sum(r["mean"] for r in rows)
    low, high = (sum(b) for b in zip(*map(_bounds, rows), strict=True))
    parts = " + ".join(f"{r['dataset']} {r['mean']:.4g}" for r in rows)
    return {"measured": mean, "ci_low": low, "ci_high": high, "verdict": _compare(claim, mean, low, high),
            "evidence": f"{method}: {parts}; interval = sum of per-dataset CI bounds", "method": method,
            "metric": rows[0].get("metric", "")}, rows


def _check_ordering(claim: dict, tables: dict) -> tuple[dict, list[pd.Series]]:
    found, lines, holds = [], [], True
    for dataset in claim["datasets"]:
        for chain in claim["chains"]:
            rows = [_row(tables, claim, dataset=dataset, **{claim["key"]: v}) for v in chain]
            ordered = all(a["mean"] > b["mean"] for a, b in pairwise(rows))
            holds &= ordered
            found += rows
            lines.append(f"{dataset}: " + " > ".join(f"{v} {_fmt(r)}" for v, r in zip(chain, rows, strict=True))
                         + ("" if ordered else " (does not hold)"))
    return {"verdict": "reproduced" if holds else "not reproduced", "evidence": "; ".join(lines),
            "metric": found[0].get("metric", "")}, found


CHECKS = {"value": _check_value, "total": _check_total, "ordering": _check_ordering}


def _shortfalls(rows: Sequence[pd.Series], budget: dict) -> list[str]:
    """How the measurement falls short of the paper budget (empty: comparable)."""
    profiles = sorted({p for r in rows for p in str(r["profile"]).split(" | ")})
    out = [] if profiles == [budget["profile"]] else [f"profile {', '.join(profiles)} is not {budget['profile']}"]
    fields = [budget_fields(b) for r in rows for b in str(r["budget"]).split(" | ")]
    for key, label in (("steps", "steps"), ("episodes_per_task", "episodes/task")):
        values = [f.get(key, "") for f in fields]
        if not all(v.isdigit() for v in values):
            out.append(f"{label} unknown")
        elif min(map(int, values)) < budget[key]:
            out.append(f"{label} {min(map(int, values))} < {budget[key]}")
    seeds = min(int(r["n_seeds"]) for r in rows)
    if seeds < budget["seeds"]:
        out.append(f"seeds {seeds} < {budget['seeds']}")
    return out


def check_claim(claim: dict, budgets: dict, tables: dict[str, pd.DataFrame]) -> dict:
    """One row of claims_check.csv."""
    keys = {"dataset": " ".join(claim.get("datasets", [])), "method": " ".join(claim.get("methods", [])),
            "variant": "", "metric": "", **claim.get("match", {})}
    if claim["type"] == "ordering":
        keys[claim["key"]] = "; ".join(" > ".join(chain) for chain in claim["chains"])
    result = {"id": claim["id"], "type": claim["type"], "quote": claim["quote"],
              "assumption": claim.get("assumption", ""), "table": claim.get("table", ""), **keys,
              "claimed": claim.get("value", np.nan), "rounding": _rounding(claim),
              "measured": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_seeds": np.nan, "budget": "", "profile": "",
              "paper_budget": budgets[claim["budget"]]["assumption"] if "budget" in claim else ""}
    try:
        if claim["type"] == "unmeasured":
            raise Missing(claim["reason"])
        found, rows = CHECKS[claim["type"]](claim, tables)
    except Missing as gap:
        return {**result, "verdict": "missing", "evidence": str(gap)}
    result.update(found)
    result.update(n_seeds=min(int(r["n_seeds"]) for r in rows), budget=distinct(r["budget"] for r in rows),
                  profile=distinct(r["profile"] for r in rows))
    short = _shortfalls(rows, budgets[claim["budget"]])
    if short:
        result["evidence"] = f"below the paper budget ({'; '.join(short)}); at this budget: {result['verdict']}. " \
                             + result["evidence"]
        result["verdict"] = "not comparable"
    return result


def check_claims(doc: dict, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return pd.DataFrame([check_claim(claim, doc["budgets"], tables) for claim in doc["claims"]])


def report_markdown(check: pd.DataFrame, doc: dict) -> str:
    measured = check[check["verdict"] != "missing"]
    counts = check["verdict"].value_counts()
    budgets = "; ".join(f"{name}: {b['assumption']}" for name, b in doc["budgets"].items())
    rows = pd.DataFrame({
        "claim": check["id"],
        "claimed": [("" if pd.isna(r.claimed) else f"{r.claimed:.{max(0, round(-np.log10(r.rounding)))}f}")
                    for r in check.itertuples()],
        "measured [95% CI]": [("" if pd.isna(r.measured) else f"{r.measured:.4g} [{r.ci_low:.4g}, {r.ci_high:.4g}]")
                              for r in check.itertuples()],
        "verdict": check["verdict"], "evidence": check["evidence"], "source (card)": check["quote"]})
    return "\n\n".join([
        f"# Claims check: {doc['paper']}",
        f"**Measured at profile `{distinct(measured['profile'])}`; budget: {distinct(measured['budget'])}.**",
        f"Paper budgets (assumed, the card states none): {budgets}. A measurement below its claim's paper budget is "
        "`not comparable`; its evidence says what the verdict would be at the measured budget.",
        f"Claims file version {doc['version']}; source: {doc['source']}. Verdicts: "
        + ", ".join(f"{v} {counts.get(v, 0)}" for v in VERDICTS) + ".",
        to_markdown(rows, pd.DataFrame(False, index=rows.index, columns=rows.columns)),
    ]) + "\n"


def write_check(check: pd.DataFrame, doc: dict, out: str | Path) -> list[Path]:
    out = write_csv(check, out)
    write_text_atomic(out.with_suffix(".md"), report_markdown(check, doc))
    return [out, out.with_suffix(".md")]
