"""What the reference-fixture scripts in tools/ share (standard library only: they run in scratch environments)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from qhyer.errors import UserError


def checkout_commit(checkout: Path, commit: str | None) -> str:
    """`commit` when given, else the commit the reference checkout is at (a fixture records where it came from)."""
    if commit is not None:
        return commit
    try:
        return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise UserError(f"{checkout} is not a git checkout, so its commit is unknown",
                        "pass --commit SHA of the export") from err


def float32_digits(x):
    """Floats of a nested list/dict at 9 significant digits: exact for values that are float32 numbers."""
    if isinstance(x, float):
        return float(f"{x:.9g}")
    if isinstance(x, list):
        return [float32_digits(v) for v in x]
    return {k: float32_digits(v) for k, v in x.items()}
