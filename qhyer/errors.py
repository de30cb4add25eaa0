"""User-facing errors: one line that names the problem and the fix.

Every CLI in the harness catches `UserError` in `cli_main` and prints `error: <message>` with exit code 2,
so bad input never produces a traceback or a half-written file.
"""

from __future__ import annotations

import errno
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class UserError(Exception):
    """A problem with the user's input (file, name, config), fixable without touching code."""

    def __init__(self, problem: str, fix: str | None = None):
        message = problem if fix is None else f"{problem} — {fix}"
        super().__init__(" ".join(message.split()))  # always one line


class DataError(UserError):
    """A dataset file that is missing, corrupt or inconsistent."""


class ConfigError(UserError):
    """An unknown name or an invalid configuration value."""


class BusyError(UserError):
    """A folder another process is writing (its lock is held)."""


class DivergedError(UserError):
    """Training produced a non-finite loss or weights; the run is not marked finished."""


class RetryRefused(UserError):
    """A retry of a training job whose run stopped on an error, not a time limit: it would fail the same way."""


class Terminated(BaseException):
    """SIGTERM or SIGUSR1 (SLURM's time limit, `scancel`, or the profile's `--signal` grace period): the process stops
    at once, or — in the training loop — after writing a checkpoint. A BaseException, like KeyboardInterrupt, so no
    `except Exception` swallows it."""

    def __init__(self, signum: int, message: str | None = None):
        self.signum = signum
        super().__init__(message or f"stopped by {signal.Signals(signum).name}; partial outputs were not kept")


# Signals a scheduler stops jobs with (SLURM: SIGTERM at the time limit and on scancel, then SIGKILL after its
# KillWait; SIGUSR1 where the profile asks for `--signal=USR1@<seconds>`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def _raise_terminated(signum, frame):
    raise Terminated(signum)


def os_error_line(err: OSError) -> str:
    """One line for an error the OS raised: what failed, on which path, and the fix."""
    path = " → ".join(str(p) for p in (err.filename, err.filename2) if p)
    fix = {errno.ENOSPC: "free space there (or point runs_root / data_dir / --out elsewhere) and rerun: finished "
                         "files are whole and an interrupted run resumes from its last checkpoint",
           errno.EDQUOT: "free space in your quota and rerun",
           errno.EROFS: "the file system is mounted read-only: write to another folder (runs_root, data_dir, --out)",
           errno.EACCES: "you may not write there: fix its permissions or write to another folder",
           errno.EPERM: "you may not write there: fix its permissions or write to another folder",
           errno.ENOTDIR: "a file stands where a folder is needed: move it away or choose another path",
           errno.EISDIR: "a folder stands where a file is needed: move it away or choose another path",
           errno.EEXIST: "it already exists: move it away or choose another path"}.get(
        err.errno, "check the path, its permissions and free space")
    return " ".join(f"{path + ': ' if path else ''}{err.strerror or err} — {fix}".split())


def cli_main(main: Callable[[], int | None]) -> None:
    """Run a CLI `main`, turning `UserError` and the OS's errors (read-only folder, full disk, ...) into a one-line
    message and exit code 2; Ctrl-C exits 130, SIGTERM/SIGUSR1 128 + the signal's number, each with one line."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, _raise_terminated) for signum in STOP_SIGNALS}
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        print(f"error: {os_error_line(err)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; partial outputs were not kept", file=sys.stderr)
        sys.exit(130)
    except Terminated as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(128 + err.signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.exit(code or 0)


@contextmanager
def remembered_interrupts() -> Iterator[Callable[[], None]]:
    """Ctrl-C raises KeyboardInterrupt at once, as usual, and is also remembered: Python drops an exception raised
    while a finalizer runs ("Exception ignored in ..."), so a Ctrl-C landing there would be lost and a long loop
    would run on. The yielded `check` raises a remembered one; loops call it once per iteration.

    SIGTERM and SIGUSR1 (STOP_SIGNALS) are only remembered: `check` raises `Terminated` at the loop's next
    iteration, between two steps, so the loop can save its state whole before it stops."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can set handlers
        yield lambda: None
        return
    received = []

    def on_sigint(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    def check() -> None:
        if signal.SIGINT in received:
            raise KeyboardInterrupt
        if received:
            raise Terminated(received[0])

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}
    previous.update({signum: signal.signal(signum, lambda signum, frame: received.append(signum))
                     for signum in STOP_SIGNALS})
    try:
        yield check
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
