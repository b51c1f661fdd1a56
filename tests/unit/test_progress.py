"""The live progress line: what it shows, rendered to a forced terminal; silent elsewhere."""

from __future__ import annotations

import io
import os
import pty

from rich.console import Console

from scanner.models import (
    DIRECT,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Probe,
    Record,
    Tally,
)
from scanner.progress import (
    ProgressDisplay,
    ProgressState,
    make_progress,
    progress_text,
    render,
    same_terminal,
)


def plain(renderable: object, colour: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(force_terminal=True, file=buffer, width=80, color_system="standard" if colour else None)
    console.print(renderable)
    return buffer.getvalue()


def test_state_rate() -> None:
    assert ProgressState(18, 36, 3, 3.0).rate == 6.0
    assert ProgressState(5, 36, 0, 0.05).rate == 0.0  # too early to tell


def test_text() -> None:
    assert progress_text(ProgressState(18, 36, 3, 3.0)).plain == "18/36 50%  6.0/s  3 failed  0:03"
    assert progress_text(ProgressState(0, 0, 0, 0.0)).plain == "0/0 100%  0.0/s  0 failed  0:00"
    assert progress_text(ProgressState(7, 9, 0, 3725.2)).plain == "7/9 77%  0.0/s  0 failed  1:02:05"


def test_render_plain_and_coloured() -> None:
    assert plain(render(ProgressState(18, 36, 3, 3.0))) == (
        "━━━━━━━━━━━━━━━                18/36 50%  6.0/s  3 failed  0:03\n")
    assert plain(render(ProgressState(36, 36, 0, 2.0))) == (
        "━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 36/36 100%  18.0/s  0 failed  0:02\n")
    coloured = plain(render(ProgressState(18, 36, 3, 3.0)), colour=True)
    assert "\x1b[1;31m3 failed\x1b[0m" in coloured
    assert "\x1b[32m0 failed\x1b[0m" in plain(render(ProgressState(1, 36, 0, 3.0)), colour=True)


def record(ok: bool) -> Record:
    status = ConnectStatus.LISTENING if ok else ConnectStatus.NOT_LISTENING
    return Record(Probe(None, Endpoint("a.test", (443,)), 443, DIRECT), DnsResult(DnsStatus.RESOLVED),
                  ConnectResult(status, 1.0, None, None), ok, None, 0.0)


def test_display_counts_records_and_erases_itself() -> None:
    buffer = io.StringIO()
    console = Console(force_terminal=True, file=buffer, width=80, color_system=None)
    now = [100.0]
    display = ProgressDisplay(console, 4, clock=lambda: now[0], auto_refresh=False)
    for ok in (True, False, True):
        now[0] += 0.5
        display.record(record(ok))
    assert display.state() == ProgressState(3, 4, 1, 1.5)
    above = display.proxy(io.StringIO())  # stdout on the same terminal is printed above the line
    above.write("a console line\n")
    display.summary(Tally(), 1.0, False)
    display.close()  # twice is fine
    out = buffer.getvalue()
    assert "1/4 25%  2.0/s  0 failed  0:00" in out
    assert "2/4 50%  2.0/s  1 failed  0:01" in out
    assert "3/4 75%  2.0/s  1 failed  0:01" in out
    assert "a console line\n" in out
    assert not out.endswith("\n")  # transient: the last render is erased, the cursor is back
    assert out.endswith("\x1b[2K")


def test_silent_when_not_a_terminal() -> None:
    assert make_progress(io.StringIO(), 10) is None
    read_end, write_end = os.pipe()
    try:
        with os.fdopen(write_end, "w", closefd=False) as pipe:
            assert make_progress(pipe, 10) is None
    finally:
        os.close(read_end)
        os.close(write_end)


def test_on_a_terminal_unless_unwanted_or_empty() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as terminal:
            assert make_progress(terminal, 10, wanted=False) is None
            assert make_progress(terminal, 0) is None
            shown = make_progress(terminal, 10)
            assert shown is not None
            shown.close()
            assert same_terminal(terminal, terminal) is True
            assert same_terminal(terminal, io.StringIO()) is False
    finally:
        os.close(leader)
        os.close(follower)
