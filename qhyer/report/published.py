"""Baselines' published results (qhyer/report/published_baselines.yaml): the summaries `verify.baselines: published`
compares QHyer with, and the citation check of every baseline number the card quotes.

A summary is what a paper's table gives: mean, standard deviation (when published) and number of seeds, under a
named protocol, with its source (paper, table, row, and the url of the copy the row was read from). The t-interval
of a difference of two independent means uses only each side's mean, variance and size (qhyer/report/verdicts.py),
so a published side enters the claims check as `seeds` pseudo-scores with exactly the published mean and sd: the
interval is then Welch's interval from the summary. Without a published spread, every pseudo-score equals the mean
(sd 0): the number is treated as exact (up to the floor the claims check puts under every side's spread: one
evaluation's sampling error) and the verdict's evidence says so.

Citation check: for each entry's `quoted_by` claims, the card's number (the claim's `value`) against the source's
(the sum of the means of every entry quoting that claim: one entry for a value, several for a total), equal within
half a unit of the card's last printed digit: `quoted correctly` / `misquoted`; `source not vendored` when an entry
it needs has no number read from the source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from qhyer.errors import ConfigError
from qhyer.io import write_text_atomic
from qhyer.report.tables import to_markdown, write_csv

PUBLISHED_FILE = Path(__file__).with_name("published_baselines.yaml")
QUOTED_CORRECTLY, MISQUOTED, NOT_VENDORED = "quoted correctly", "misquoted", "source not vendored"
SOURCE_KEYS = ("paper", "table", "row")
READ_FROM = "url"  # where a vendored number was read (the copy of the paper): required once a mean is vendored
CITATION_COLUMNS = ("claim", "quoted", "published", "verdict", "method", "datasets", "source", "evidence")


@dataclass(frozen=True)
class Summary:
    """One published result: a method on a dataset."""

    method: str
    dataset: str
    protocol: str
    source: str                # "paper, table, row"
    mean: float | None         # None: not vendored (no number read from the source)
    sd: float | None           # None: the source publishes no spread
    seeds: int | None
    quoted_by: tuple[str, ...]
    note: str

    @property
    def vendored(self) -> bool:
        return self.mean is not None

    def label(self) -> str:
        spread = f"sd {self.sd:g}" if self.sd is not None else "no spread published: treated as exact"
        return f"{self.method} on {self.dataset}: published {self.mean:g} ({spread}, {self.seeds} seeds; {self.source})"

    def pseudo_scores(self) -> np.ndarray:
        """`seeds` values with exactly the published mean and sample sd (ddof 1); all equal to the mean when no
        spread is published. Half the values sit at mean - a, half at mean + a (one at the mean when odd)."""
        n = self.seeds
        if not self.sd:
            return np.full(n, self.mean)
        half = n // 2
        offset = self.sd * math.sqrt((n - 1) / (2 * half))  # sum of squares 2*half*a^2 = (n-1) sd^2
        return np.array([self.mean - offset] * half + [self.mean] * (n % 2) + [self.mean + offset] * half)


@dataclass(frozen=True)
class Published:
    summaries: tuple[Summary, ...]
    path: Path

    def get(self, method: str, dataset: str) -> Summary | None:
        return next((s for s in self.summaries if (s.method, s.dataset) == (method, dataset)), None)

    def usable(self, method: str, dataset: str) -> bool:
        """A summary with a number read from its source (so `published` can replace the re-run)."""
        found = self.get(method, dataset)
        return found is not None and found.vendored


def _number(entry: dict, key: str, where: str, positive: bool = False) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or \
            (positive and value <= 0) or value < 0:
        raise ConfigError(f"{where}: {key} must be a {'positive' if positive else 'non-negative'} number "
                          f"(got {value!r})")
    return float(value)


def load(path: str | Path = PUBLISHED_FILE) -> Published:
    """The vendored summaries, checked: source (paper, table, row), protocol, and mean/sd/seeds together."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read published baselines {path} ({err})".splitlines()[0]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("baselines"), list):
        raise ConfigError(f"{path} needs a `baselines` list")
    out, seen = [], set()
    for i, entry in enumerate(doc["baselines"]):
        where = f"{path.name}: baselines[{i}]"
        missing = [k for k in ("method", "dataset", "protocol", "source", "quoted_by") if k not in entry]
        source = entry.get("source") or {}
        if missing or not isinstance(source, dict) or not set(SOURCE_KEYS) <= set(source) <= {*SOURCE_KEYS, READ_FROM}:
            raise ConfigError(f"{where} lacks {', '.join(missing) or 'a source with ' + ', '.join(SOURCE_KEYS)}"
                              f" (and {READ_FROM} once vendored; no other key)")
        key = (entry["method"], entry["dataset"])
        if key in seen:
            raise ConfigError(f"{where}: a second entry for {key[0]} on {key[1]}")
        seen.add(key)
        mean, sd, seeds = _number(entry, "mean", where), _number(entry, "sd", where), _number(entry, "seeds", where,
                                                                                              positive=True)
        if mean is not None and (seeds is None or not seeds.is_integer() or seeds < 2):
            raise ConfigError(f"{where}: a vendored mean needs `seeds`, an integer of at least 2")
        if mean is not None and not source.get(READ_FROM):
            raise ConfigError(f"{where}: a vendored mean needs source.{READ_FROM} (the copy of the paper it was "
                              "read from)")
        if mean is None and (sd is not None or "why" not in entry):
            raise ConfigError(f"{where}: an entry without a mean says `why` (and has no sd)")
        out.append(Summary(entry["method"], entry["dataset"], entry["protocol"],
                           ", ".join(str(source[k]) for k in SOURCE_KEYS)
                           + (f" (read from {source[READ_FROM]})" if source.get(READ_FROM) else ""), mean, sd,
                           int(seeds) if seeds else None, tuple(entry["quoted_by"]),
                           entry.get("why", entry.get("note", ""))))
    return Published(tuple(out), path)


def _precision(value: int | float) -> float:
    """Half a unit of the last digit the card printed, from the number as claims.yaml writes it (an int 68 -> 0.5,
    39.6 -> 0.05, 172.0 -> 0.05)."""
    text = repr(value)
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10.0 ** -decimals


def compare_quote(quoted: int | float, summaries: list[Summary]) -> tuple[str, str]:
    """The card's number against the sum of the vendored means (one for a value, several for a total)."""
    total, tolerance = sum(s.mean for s in summaries), _precision(quoted)
    verdict = QUOTED_CORRECTLY if abs(total - quoted) <= tolerance + 1e-9 else MISQUOTED
    sources = "; ".join(dict.fromkeys(s.source for s in summaries))
    return verdict, (f"source {' + '.join(f'{s.mean:g}' for s in summaries)} = {total:g} ({sources}); card "
                     f"{quoted:g} (equal within ±{tolerance:g}, half its last digit)")


def citation_check(claims_doc: dict, published: Published) -> pd.DataFrame:
    """One row per claim of `claims_doc` some entry says quotes it: the card's number against the source's (a
    claims file of one's own leaves out the quotes it does not hold)."""
    claims = {c["id"]: c for c in claims_doc["claims"]}
    quoting: dict[str, list[Summary]] = {}
    for summary in published.summaries:
        for claim in summary.quoted_by:
            if claim in claims:
                quoting.setdefault(claim, []).append(summary)
    rows = []
    for claim, summaries in quoting.items():
        quoted = claims[claim]["value"]  # as written: an int 68 is precise to 0.5, a float 39.6 to 0.05
        sources = "; ".join(dict.fromkeys(s.source for s in summaries))
        row = {"claim": claim, "quoted": quoted, "method": " | ".join(dict.fromkeys(s.method for s in summaries)),
               "datasets": " | ".join(s.dataset for s in summaries), "source": sources}
        absent = [s for s in summaries if not s.vendored]
        if absent:
            rows.append({**row, "published": math.nan, "verdict": NOT_VENDORED,
                         "evidence": "; ".join(f"{s.method} on {s.dataset}: {s.note}" for s in absent)})
            continue
        verdict, evidence = compare_quote(quoted, summaries)
        rows.append({**row, "published": sum(s.mean for s in summaries), "verdict": verdict, "evidence": evidence})
    return pd.DataFrame(rows, columns=list(CITATION_COLUMNS))


def write_citations(table: pd.DataFrame, out: str | Path, published: Published) -> list[Path]:
    out = write_csv(table, out)
    counts = table["verdict"].value_counts()
    shown = table.assign(quoted=table["quoted"].map("{:g}".format),
                         published=table["published"].map(lambda v: "" if pd.isna(v) else f"{v:g}"))
    write_text_atomic(out.with_suffix(".md"), "\n\n".join([
        "# Citation check: the baseline numbers the card quotes, against their sources",
        ", ".join(f"{v} {counts.get(v, 0)}" for v in (QUOTED_CORRECTLY, MISQUOTED, NOT_VENDORED)) + ".",
        f"Sources: {published.path.name} (each entry names paper, table and row; only numbers read from the source "
        "are vendored, each with the url of the copy it was read from).",
        to_markdown(shown, pd.DataFrame(False, index=shown.index, columns=shown.columns))]) + "\n")
    return [out, out.with_suffix(".md")]
