"""The environment `make venv` built holds exactly the packages and versions of requirements/cpu.txt.

torch is pinned outside the lock (see the Makefile), so it is checked against pyproject's pin instead; pip is the
bootstrap tool the venv came with and is not part of the environment.
"""

from __future__ import annotations

import re
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "cpu.txt"
PROJECT = "qhyer-harness"
NOT_LOCKED = {"pip", "torch", PROJECT}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", re.MULTILINE)

pytestmark = pytest.mark.skipif(not (Path(sys.prefix) / ".installed").exists(),
                                reason="not the venv made by `make venv` (no .installed stamp in sys.prefix)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    """Distributions installed into the venv's site-packages. Once setuptools is imported it puts its own
    `setuptools/_vendor` on sys.path, whose dist-info folders (packaging, wheel, ...) are setuptools' internals, not
    packages of this environment; so only dist-info folders directly in site-packages count."""
    site_packages = {Path(sysconfig.get_path(key)).resolve() for key in ("purelib", "platlib")}
    return {normalise(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
            if Path(dist.locate_file("")).resolve() in site_packages}


def locked_versions() -> dict[str, str]:
    return {normalise(name): version for name, version in PIN.findall(LOCK.read_text())}


def test_installed_packages_equal_the_lock():
    import setuptools  # noqa: F401  whether an earlier test imported it must not matter (see installed_versions)
    installed = {name: v for name, v in installed_versions().items() if name not in NOT_LOCKED}
    locked = locked_versions()
    assert len(locked) > 50, f"{LOCK} lists only {len(locked)} pins: not a lock of this project"
    problems = [f"{name}: installed {installed.get(name, 'missing')}, locked {locked.get(name, 'not in the lock')}"
                for name in sorted(installed.keys() | locked.keys()) if installed.get(name) != locked.get(name)]
    assert not problems, ("environment differs from the lock (rebuild: rm -rf .venv && make venv):\n"
                          + "\n".join(problems))


def test_torch_is_the_pinned_release():
    pins = [dep for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
            if normalise(re.split(r"[=<>!~ ;]", dep, maxsplit=1)[0]) == "torch"]
    assert len(pins) == 1 and "==" in pins[0], f"pyproject.toml should pin torch exactly, has {pins}"
    pinned = pins[0].split("==")[1].strip()
    # A local build label (2.13.0+cpu) is the same release; `pip install torch==2.13.0` takes either.
    assert metadata.version("torch").split("+")[0] == pinned
    torch_cpu = PIN.findall((LOCK.parent / "torch-cpu.txt").read_text())
    assert [(name, version.split("+")[0]) for name, version in torch_cpu] == [("torch", pinned)], \
        "requirements/torch-cpu.txt pins another torch than pyproject.toml: run `make lock`"


def test_lock_leaves_out_only_torch():
    assert "torch" not in locked_versions(), "torch must stay out of the CPU lock (its CUDA build is PyPI's)"
    assert not [name for name in locked_versions() if name.startswith("nvidia-")], \
        "CUDA libraries in the CPU lock: regenerate it with `make lock` (it resolves torch's CPU build)"
