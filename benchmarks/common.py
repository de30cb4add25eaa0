"""Table printing and CSV writing shared by the benchmark scripts."""

import csv
import os
from pathlib import Path


def print_header(columns: str, extra: str = "") -> None:
    """Machine facts (the load average matters: other processes slow every rate down), then a table header."""
    print(f"{os.cpu_count()} CPUs{extra}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(columns)
    print("-" * len(columns))


def write_rows(rows: list[dict], columns: tuple[str, ...], out: Path) -> None:
    """Write a benchmark's rows to `out` (the cost estimate reads these tables)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
