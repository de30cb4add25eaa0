"""User-facing errors: one line that names the problem and the fix.

Every CLI in the harness catches `UserError` in `cli_main` and prints `error: <message>` with exit code 2,
so bad input never produces a traceback or a half-written file.
"""

from __future__ import annotations

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


def cli_main(main: Callable[[], int | None]) -> None:
    """Run a CLI `main`, turning `UserError` into a one-line message and exit code 2."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted; partial outputs were not kept", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


@contextmanager
def remembered_interrupts() -> Iterator[Callable[[], None]]:
    """Ctrl-C raises KeyboardInterrupt at once, as usual, and is also remembered: Python drops an exception raised
    while a finalizer runs ("Exception ignored in ..."), so a Ctrl-C landing there would be lost and a long loop
    would run on. The yielded `check` raises a remembered one; loops call it once per iteration."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread can set handlers
        yield lambda: None
        return
    received = []

    def on_sigint(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    def check() -> None:
        if received:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
