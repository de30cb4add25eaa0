"""Table printing shared by the benchmark scripts."""

import os


def print_header(columns: str, extra: str = "") -> None:
    """Machine facts (the load average matters: other processes slow every rate down), then a table header."""
    print(f"{os.cpu_count()} CPUs{extra}, load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(columns)
    print("-" * len(columns))
