"""`--syslog`: every JSON line also goes to the local syslog daemon or journald.

Over the Unix datagram socket (`/dev/log`), one datagram per line, framed by a
pure function: RFC 3164 as syslog(3) writes it to the local socket (no host
name, which journald and rsyslog both expect there) or RFC 5424. Syslog is a
side channel: a daemon that stops answering costs one retry, then the writer
gives up and says so on stderr, and the run goes on.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import IO, Any

import orjson

from scanner.errors import UsageError
from scanner.models import Record, Tally
from scanner.output import LineStyle, record_fields, summary_fields

DEFAULT_SOCKET = "/dev/log"
FACILITY_USER = 1
SEND_TIMEOUT_S = 1.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class SyslogFormat(StrEnum):
    RFC3164 = "rfc3164"
    RFC5424 = "rfc5424"


class Severity(IntEnum):
    ERR = 3
    WARNING = 4
    NOTICE = 5
    INFO = 6


def severity(line: Mapping[str, Any]) -> Severity:
    """From the native line: a failed endpoint or a regression is a warning."""
    name = line.get("event")
    if name == "endpoint":
        return Severity.INFO if line.get("ok") else Severity.WARNING
    if name == "drift":
        return Severity.WARNING if line.get("kind") == "newly_failing" else Severity.NOTICE
    if name == "summary":
        return Severity.INFO if not line.get("failed") else Severity.WARNING
    return Severity.INFO


def _token(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, or the nil value `-`."""
    cleaned = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:limit]
    return cleaned or "-"


def frame(fmt: SyslogFormat, pri: int, when: datetime, message: bytes, *,
          hostname: str, app: str, pid: int, msgid: str) -> bytes:
    """One datagram. `when` is aware: RFC 3164 shows it in local time, RFC 5424 in UTC."""
    if fmt is SyslogFormat.RFC3164:
        local = when.astimezone()
        stamp = f"{_MONTHS[local.month - 1]} {local.day:2d} {local:%H:%M:%S}"
        return f"<{pri}>{stamp} {_token(app, 32)}[{pid}]: ".encode() + message
    stamp = when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    head = (f"<{pri}>1 {stamp} {_token(hostname, 255)} {_token(app, 48)} {pid} "
            f"{_token(msgid, 32)} - ")
    return head.encode() + message


class SyslogWriter:
    """Sends each line (in the chosen log style) as one datagram."""

    def __init__(self, sock: socket.socket, path: str, fmt: SyslogFormat, style: LineStyle | None,
                 stderr: IO[str] | None = None) -> None:
        self._sock: socket.socket | None = sock
        self._path = path
        self._fmt = fmt
        self._style = style
        self._stderr = stderr
        self._hostname = socket.gethostname()  # the kernel's name: no resolver involved
        self._pid = os.getpid()
        self.sent = 0
        self.dropped = 0
        self._error: str | None = None

    @classmethod
    def open(cls, path: str, fmt: str, style: LineStyle | None,
             stderr: IO[str] | None = None) -> SyslogWriter:
        """Connect now, so a missing socket is a usage error before the run, not after it."""
        return cls(_connect(path), path, SyslogFormat(fmt), style, stderr)

    def _send(self, line: dict[str, Any]) -> None:
        if self._sock is None:
            self.dropped += 1
            return
        pri = FACILITY_USER * 8 + severity(line)
        body = orjson.dumps(self._style(line) if self._style is not None else line)
        data = frame(self._fmt, pri, datetime.now(UTC), body, hostname=self._hostname,
                     app="scanner", pid=self._pid, msgid=str(line.get("event", "-")))
        try:
            self._sock.send(data)
        except OSError:
            try:  # the daemon restarted: its socket is a new one
                self._sock.close()
                self._sock = _connect(self._path)
                self._sock.send(data)
            except (OSError, UsageError) as exc:
                self._error = getattr(exc, "strerror", None) or str(exc)
                if self._sock is not None:
                    self._sock.close()
                self._sock = None
                self.dropped += 1
                return
        self.sent += 1

    def record(self, record: Record) -> None:
        self._send({"event": "endpoint", **record_fields(record)})

    def event(self, name: str, fields: dict[str, Any]) -> None:
        self._send({"event": name, **fields})

    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None:
        self._send({"event": "summary", **summary_fields(tally, elapsed_s, interrupted)})

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self.dropped:
            stream = self._stderr or sys.stderr
            stream.write(f"scanner: warning: --syslog {self._path}: {self.dropped} lines not sent "
                         f"({self._error})\n")
            stream.flush()


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.settimeout(SEND_TIMEOUT_S)  # a stuck daemon must not stall the run
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot send --syslog to {path}: {exc.strerror or exc}") from None
    return sock
