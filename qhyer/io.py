"""Atomic file output, checksums and provenance shared by every stage of the harness.

Outputs are written to a temporary file in the destination folder and renamed on success, so a crash or
an interrupt never leaves a half-written file under a final name (Snakemake and users trust names).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from qhyer.errors import BusyError, DataError

PROVENANCE_PACKAGES = ("torch", "numpy", "ogbench", "mujoco", "gymnasium", "nflows", "h5py", "pandas")
# The recorded packages whose version changes a run's numbers (MuJoCo and ogbench: the regenerated data; torch,
# numpy, nflows: training and evaluation); tables and the claims check compare runs on these.
NUMBER_PACKAGES = ("torch", "numpy", "mujoco", "ogbench", "nflows")
# Besides package versions, what changes numbers: the Mamba branch's CPU kernels (qhyer/models/mamba_cpu.py: fused
# C when a C compiler is there, PyTorch's otherwise; equal within float32 rounding, not bit for bit).
NUMBER_SETTINGS = ("mamba_cpu",)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it to `final` only if the block succeeds.

    The temporary file is fsynced before the rename (and the folder after it), so a power loss cannot leave an
    empty file under the final name; on any failure it is removed. Only a SIGKILL mid-write leaves one behind,
    named `.<final name>.*.tmp`, which `remove_stale_temporaries` clears.
    `suffix` keeps the extension for writers that append one (numpy's savez appends `.npz`).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix or final.suffix + ".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
        _fsync(tmp_path)
        os.replace(tmp_path, final)
        _fsync(final.parent)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete `atomic_path` temporaries a killed writer left in `folder` (call it while holding the folder's lock)."""
    stale = sorted(Path(folder).glob(".*.tmp")) + sorted(Path(folder).glob(".*.tmp.*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, name: str = LOCK_NAME) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (fcntl.flock on `<folder>/.lock`), or fail at once naming the holder.

    The kernel drops a flock when its process dies, so a lock left by a killed process is taken over without any
    staleness check; the file only carries the holder's pid and host for the message. Another `name` locks one
    thing among several in a folder (a generated dataset in the data folder).
    """
    path = Path(folder) / name
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise BusyError(f"{folder if name == LOCK_NAME else path} is in use by {holder}",
                        "wait for that process to finish or stop it; two writers would mix their files") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
    handle.flush()
    try:
        yield
    finally:
        handle.seek(0)
        handle.truncate()  # cleared before unlocking, so a new holder's record is never erased
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(final: str | os.PathLike, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def write_json_atomic(final: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(final, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(config: Any) -> str:
    """Stable short hash of a JSON-serialisable config (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# `git archive` (and GitHub's source archives) write the archived commit into this file (.gitattributes:
# export-subst); in a checkout it holds the unexpanded placeholder.
ARCHIVE_COMMIT = Path(__file__).resolve().parent / "ARCHIVE_COMMIT"


def git_commit(repo: str | os.PathLike | None = None, archive_commit: Path = ARCHIVE_COMMIT) -> str:
    """The current commit, with `-dirty` when tracked files have uncommitted changes (the dirty flag every run
    records; untracked files do not count); `<sha>-archive` in an unpacked `git archive` of that commit (whose local
    edits no one can see); `unknown` outside both."""
    archived = archive_commit.read_text().strip() if archive_commit.is_file() else ""
    if len(archived) == 40 and all(c in "0123456789abcdef" for c in archived):
        return f"{archived}-archive"
    cwd = Path(repo) if repo else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions(names: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """Versions of `names`, Python and the platform, and (NUMBER_SETTINGS) which CPU kernels the Mamba branch runs."""
    from qhyer.models.mamba_cpu import kernels_label  # torch: imported only when provenance is asked for

    versions = {"python": sys.version.split()[0], "platform": platform.platform(), "mamba_cpu": kernels_label()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(config: Any = None, files: dict[str, str | os.PathLike] | None = None) -> dict[str, Any]:
    """Provenance block written beside every output: commit, config hash, input checksums, versions."""
    return {
        "commit": git_commit(),
        "config_hash": config_hash(config) if config is not None else None,
        "inputs_sha256": {key: sha256_file(path) for key, path in (files or {}).items()},
        "versions": package_versions(),
    }


def read_csv_checked(path: Path, required: Iterable[str], absent: DataError, fix: str, **read_kwargs: Any) -> Any:
    """The CSV at `path` as a DataFrame holding the `required` columns, or one DataError line: `absent` when there
    is no such file, else the file, what is wrong with it (unreadable, columns missing) and `fix`."""
    import pandas as pd  # here, not at the top: io.py is imported by torch- and pandas-free entry points

    if not path.is_file():
        raise absent
    try:
        frame = pd.read_csv(path, **read_kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({' '.join(str(err).split())})", fix) from None
    missing = [column for column in required if column not in frame]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)}", fix)
    return frame
