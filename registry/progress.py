"""What a long step tells its user while it runs: a line when each stage starts and ends, bars on a terminal.

Stage lines go to the `shopscore` logger, so the CLI shows them on stderr (`show_progress`) and a Python
caller sees them only if it configures logging. Bars (tqdm) are drawn only when stderr is a terminal; when
it is not (CI, a log file), the loops that would draw one log a line per item instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from collections.abc import Iterator

log = logging.getLogger("shopscore")


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextlib.contextmanager
def stage(title: str) -> Iterator[None]:
    """Log `==> title` now and `    done in Xs` when the block ends."""
    log.info("==> %s", title)
    started = time.perf_counter()
    yield
    log.info("    done in %.1fs", time.perf_counter() - started)


def note(message: str) -> None:
    log.info("    %s", message)


@contextlib.contextmanager
def quiet_unless_terminal() -> Iterator[None]:
    """Swallow a library's own progress output (Feast's colour codes and bars) when not on a terminal."""
    if on_terminal():
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a line is logged (click's test runner swaps it per call)."""

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def show_progress() -> None:
    """Send stage lines to stderr (the CLI calls this once per command)."""
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
