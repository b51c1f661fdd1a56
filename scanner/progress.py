"""The live progress display on stderr (rich): done/total, rate, failures so far.

Shown only when stderr is a terminal, and never written to stdout. The display is
a Writer like the others; what it shows is computed by pure functions from the
counts and the elapsed time, so it is tested without a terminal or a clock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, cast

from rich.console import Console, RenderableType
from rich.file_proxy import FileProxy
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from scanner.models import Record, Tally

BAR_WIDTH = 30


@dataclass(frozen=True, slots=True)
class ProgressState:
    done: int
    total: int
    failed: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Probes finished per second so far (0 before the first tenth of a second)."""
        return self.done / self.elapsed_s if self.elapsed_s >= 0.1 else 0.0


def _clock_text(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_text(state: ProgressState) -> Text:
    """`18/36 50%  6.0/s  3 failed  0:03`: the failures in red once there are any."""
    percent = 100 * state.done // state.total if state.total else 100
    text = Text(f"{state.done}/{state.total} {percent}%  {state.rate:.1f}/s  ")
    text.append(f"{state.failed} failed", style="bold red" if state.failed else "green")
    text.append(f"  {_clock_text(state.elapsed_s)}")
    return text


def render(state: ProgressState) -> RenderableType:
    """One line: a bar, then the counts."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(ProgressBar(total=max(state.total, 1), completed=state.done, width=BAR_WIDTH),
                 progress_text(state))
    return grid


class ProgressDisplay:
    """A Writer drawing the live line; it is erased when the run ends."""

    passive = True  # when only this is left (stdout went away), the run stops

    def __init__(self, console: Console, total: int, clock: Callable[[], float] = time.monotonic,
                 auto_refresh: bool = True) -> None:
        self.console = console
        self._total, self._done, self._failed = total, 0, 0
        self._clock = clock
        self._start = clock()
        self._auto = auto_refresh
        # no redirection of sys.stdout/sys.stderr: the console writer is given its own proxy
        self._live = Live(console=console, transient=True, auto_refresh=auto_refresh,
                          refresh_per_second=4, redirect_stdout=False, redirect_stderr=False,
                          get_renderable=lambda: render(self.state()))
        self._live.start()

    def state(self) -> ProgressState:
        return ProgressState(self._done, self._total, self._failed, self._clock() - self._start)

    def proxy(self, stream: IO[str]) -> IO[str]:
        """`stream` (stdout on the same terminal) written above the live line, not through it."""
        return cast(IO[str], FileProxy(self.console, stream))  # the writer calls write() and flush()

    def record(self, record: Record) -> None:
        self._done += 1
        self._failed += not record.ok
        if not self._auto:
            self._live.refresh()

    def event(self, name: str, fields: dict[str, Any]) -> None:
        pass

    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None:
        self.close()

    def close(self) -> None:
        if self._live.is_started:
            self._live.stop()


def same_terminal(one: IO[str], other: IO[str]) -> bool:
    """Do both streams go to one terminal (so their lines must not cross)?"""
    try:
        if not (one.isatty() and other.isatty()):
            return False
        a, b = os.fstat(one.fileno()), os.fstat(other.fileno())
    except (OSError, ValueError):
        return False
    return (a.st_dev, a.st_ino, a.st_rdev) == (b.st_dev, b.st_ino, b.st_rdev)


def make_progress(stream: IO[str], total: int, wanted: bool = True) -> ProgressDisplay | None:
    """The display on `stream` (stderr), or None: not wanted, not a terminal, nothing to do."""
    try:
        terminal = stream.isatty()
    except (OSError, ValueError):
        terminal = False
    if not wanted or not terminal or total <= 0:
        return None
    return ProgressDisplay(Console(file=stream), total)
