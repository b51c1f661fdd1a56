"""The project's one exception root and its few meaningful subclasses.

Every error a user can cause ends as a `ScannerError`: the CLI prints its
message on one line of stderr and exits with `exit_status`, never a traceback.
"""

from __future__ import annotations

import re

_URL_USERINFO = re.compile(r"(://)[^\s'\"]*@")
_BARE_USERINFO = re.compile(r"(^|[\s'\"=(])[^\s'\"@/:]+:(?!//)[^\s'\"@]*@")
MAX_MESSAGE = 1000


def for_humans(message: str) -> str:
    """A message made safe to print: credentials in URLs or `user:pass@host` hidden, and
    its length bounded (a hostile input echoed back must not flood a terminal or a log)."""
    message = _URL_USERINFO.sub(r"\1***@", message)
    message = _BARE_USERINFO.sub(r"\1***@", message)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE] + f"... ({len(message) - MAX_MESSAGE} more characters)"
    return message


class ScannerError(Exception):
    """Root of every error scanner raises on purpose."""

    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ScannerError):
    """A flag or argument the user gave is malformed."""


class CatalogError(ScannerError):
    """A catalog cannot be found, read or parsed."""


class ProxyURLError(UsageError):
    """A proxy URL is malformed or uses an unsupported scheme."""


class OutputError(ScannerError):
    """Results cannot be written (disk full, closed file)."""


class ProtocolError(ScannerError):
    """A peer sent bytes that do not follow its protocol (raised inside probes only)."""


class StdoutClosed(Exception):
    """Every writer is gone: the reader of stdout went away and there is no --output."""
