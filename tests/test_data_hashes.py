"""Regenerated data is byte-identical to the committed hashes, so a package drift that changes it fails CI.

One tiny dataset per generator family; tests/fixtures/data_hashes.json holds the sha256 of each written file, of
its decoded arrays (a file that differs while its arrays match points at the compressor, not the simulation) and the
versions that wrote them. Rewrite it, after checking why the data changed: `python tests/test_data_hashes.py --write`.
(Worker-count determinism is tested in test_ogbench_generation.py.)
"""

from __future__ import annotations

import hashlib
import importlib
import json
import platform
import sys
import zlib
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np
import pytest

from qhyer.data.__main__ import GENERATORS
from qhyer.data.registry import get_spec
from qhyer.io import sha256_file

FIXTURE = Path(__file__).parent / "fixtures" / "data_hashes.json"
# dataset -> generator arguments; 10 OGBench episodes is the fewest that write a validation episode.
CASES = {
    "cube-single-play": {"seed": 0, "episodes": 10, "episode_length": 21},
    "cube-triple-play": {"seed": 0, "episodes": 10, "episode_length": 21},
    "cube-quadruple-play": {"seed": 0, "episodes": 10, "episode_length": 21},
    "maze2d-umaze": {"seed": 0, "steps": 2000},
}
# Packages whose versions can change these bytes: the simulators, the arrays, the writers and their zlib.
PACKAGES = ("mujoco", "ogbench", "dm-control", "numpy", "h5py")


def versions() -> dict[str, str]:
    return {**{name: metadata.version(name) for name in PACKAGES}, "hdf5": h5py.version.hdf5_version,
            "python": platform.python_version(), "python-zlib": zlib.ZLIB_RUNTIME_VERSION}


def array_digest(path: Path) -> str:
    """sha256 over every array's name, dtype, shape and bytes, independent of the file's compression."""
    digest = hashlib.sha256()
    if path.suffix == ".npz":
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    else:
        arrays = {}
        with h5py.File(path, "r") as f:  # D4RL's layout nests groups (infos/, ...): read every dataset
            f.visititems(lambda key, item: arrays.update({key: item[()]}) if isinstance(item, h5py.Dataset) else None)
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def regenerate(name: str, out: Path) -> dict[str, dict[str, str]]:
    spec = get_spec(name)
    manifest = importlib.import_module(GENERATORS[spec.family]).generate(spec, out, workers=1, progress=False,
                                                                         **CASES[name])
    paths = [out / file_name for file_name in manifest["files"]]
    return {"files": {path.name: sha256_file(path) for path in paths},
            "arrays": {path.name: array_digest(path) for path in paths}}


def load_fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def version_drift(recorded: dict[str, str]) -> str:
    installed = versions()
    drift = [f"{name} installed {installed.get(name)}, recorded {recorded.get(name)}"
             for name in sorted(installed.keys() | recorded.keys()) if installed.get(name) != recorded.get(name)]
    return "; ".join(drift) or "none (same versions: another platform or CPU?)"


@pytest.mark.parametrize("name", sorted(CASES))
def test_regenerated_files_match_committed_hashes(name, tmp_path):
    fixture = load_fixture()
    expected = fixture["datasets"][name]
    assert expected["args"] == CASES[name], f"{name}: arguments changed since {FIXTURE.name} was written (--write)"
    got = regenerate(name, tmp_path)
    assert got["files"].keys() == expected["files"].keys(), f"{name}: wrote {sorted(got['files'])}"
    mismatches = []
    for file_name in sorted(got["files"]):
        if got["files"][file_name] != expected["files"][file_name]:
            arrays = "equal" if got["arrays"][file_name] == expected["arrays"][file_name] else "differ"
            mismatches.append(f"{file_name}: sha256 {got['files'][file_name]} here, {expected['files'][file_name]}"
                              f" committed (decoded arrays {arrays})")
    assert not mismatches, ("regenerated data differs from tests/fixtures/data_hashes.json:\n  "
                            + "\n  ".join(mismatches)
                            + f"\n  version differences: {version_drift(fixture['versions'])}")


def write_fixture(out: Path) -> None:
    datasets = {name: {"args": args, **regenerate(name, out / name)} for name, args in CASES.items()}
    FIXTURE.write_text(json.dumps({"written_by": "python tests/test_data_hashes.py --write", "versions": versions(),
                                   "datasets": datasets}, indent=2) + "\n")


if __name__ == "__main__":
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: python {Path(__file__).name} --write   (regenerates the data and rewrites {FIXTURE})")
    with tempfile.TemporaryDirectory() as tmp:
        write_fixture(Path(tmp))
    print(f"wrote {FIXTURE}")
