"""A small, bounded parser for HTTP/1.x message heads (no I/O).

Used for the proxy's answer to CONNECT: the whole head is read up to the blank
line, and bytes after it belong to the tunnel, never to the head.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scanner.errors import ProtocolError

MAX_HEAD = 64 * 1024
MAX_HEADERS = 100
_STATUS_LINE = re.compile(rb"^HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$")
_REQUEST_LINE = re.compile(rb"^([A-Z]{1,20}) (\S{1,8190}) HTTP/(\d)\.(\d)$")
_TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BLANK_LINE = re.compile(rb"\n\r?\n")  # CRLF or bare LF line ends, as curl tolerates


def header_value(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    """The first value of header `name` (any case), or None."""
    name = name.lower()
    return next((value for key, value in headers if key == name), None)


@dataclass(frozen=True, slots=True)
class ResponseHead:
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]  # names lower-cased, in order

    def get(self, name: str) -> str | None:
        return header_value(self.headers, name)

    def get_all(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        return header_value(self.headers, name)


def find_head_end(buffer: bytes | bytearray, limit: int = MAX_HEAD) -> int | None:
    """Index just past the blank line ending the head, None if not there yet.

    Raises ProtocolError when the head outgrows `limit` without ending.
    """
    # the first blank line, whatever its line ends: bytes after it belong to the tunnel even
    # when they hold a CRLF CRLF of their own
    match = _BLANK_LINE.search(buffer)
    if match is not None:
        if match.end() > limit:
            raise ProtocolError(f"response head larger than {limit} bytes")
        return match.end()
    if len(buffer) > limit:
        raise ProtocolError(f"response head larger than {limit} bytes")
    return None


def _header_lines(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    if len(lines) > MAX_HEADERS:
        raise ProtocolError(f"more than {MAX_HEADERS} header fields")
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("obsolete line folding in header")
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name):
            raise ProtocolError(f"malformed header line {line[:60]!r}")
        headers.append((name.decode("ascii").lower(), value.strip(b" \t").decode("latin-1")))
    return tuple(headers)


def _split(head: bytes) -> list[bytes]:
    return [line.rstrip(b"\r") for line in head.split(b"\n")]


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse a complete head (as delimited by `find_head_end`)."""
    lines = _split(head)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ProtocolError("empty response")
    match = _STATUS_LINE.match(lines[0])
    if not match:
        raise ProtocolError(f"not an HTTP status line: {lines[0][:60]!r}")
    major, minor, status, reason = match.groups()
    return ResponseHead(
        f"{major.decode()}.{minor.decode()}",
        int(status),
        (reason or b"").decode("latin-1"),
        _header_lines(lines[1:]),
    )


def parse_request_head(head: bytes) -> RequestHead:
    lines = _split(head)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ProtocolError("empty request")
    match = _REQUEST_LINE.match(lines[0])
    if not match:
        raise ProtocolError(f"not an HTTP request line: {lines[0][:60]!r}")
    method, target, major, minor = match.groups()
    return RequestHead(method.decode(), target.decode("latin-1"),
                       f"{major.decode()}.{minor.decode()}", _header_lines(lines[1:]))


def _split_outside_quotes(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def auth_schemes(head: ResponseHead) -> tuple[str, ...]:
    """The schemes offered in Proxy-Authenticate (Basic, NTLM, Negotiate, ...), in order."""
    schemes: list[str] = []
    for value in head.get_all("proxy-authenticate"):
        # several challenges may share one header; auth-params follow their scheme
        for part in _split_outside_quotes(value):
            token = part.strip().split(" ", 1)[0]
            is_scheme = token and "=" not in token and _TOKEN.match(token.encode("latin-1", "replace"))
            if is_scheme and token not in schemes:
                schemes.append(token)
    return tuple(schemes)
