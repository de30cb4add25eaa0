"""Manifest written beside every generated dataset: how it was made and what it contains."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qhyer.io import provenance, sha256_file, write_json_atomic

GENERATOR_VERSION = "1"  # bump when a generator's output changes for the same seed and config


def manifest_path(data_file: str | Path) -> Path:
    data_file = Path(data_file)
    return data_file.with_name(data_file.name.split(".")[0] + ".manifest.json")


def write_manifest(data_file: str | Path, *, dataset: str, generator: str, config: dict[str, Any], seed: int,
                   files: list[str | Path], transitions: dict[str, int], wall_time_s: float) -> dict[str, Any]:
    """Write `<stem>.manifest.json` beside `data_file` (atomically) and return its content."""
    manifest = {
        "dataset": dataset,
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "config": config,
        "seed": seed,
        "files": {Path(f).name: {"sha256": sha256_file(f), "bytes": Path(f).stat().st_size} for f in files},
        "transitions": transitions,
        "wall_time_s": round(wall_time_s, 3),
        "provenance": provenance(config),
    }
    write_json_atomic(manifest_path(data_file), manifest)
    return manifest
