"""A source's decision for one URL: the ordered proxy list, and why.

WinHTTP uses only the first entry of a PAC result and never fails over; browsers
try the entries in order. A decision carries both readings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from scanner.errors import UsageError
from scanner.models import Route, RouteKind, RouteSource
from scanner.names import is_ip_literal, split_host_port, validate_hostname


class EntryKind(StrEnum):
    """The keywords a PAC result (and our rendering of a WinHTTP setting) can hold."""

    DIRECT = "DIRECT"
    PROXY = "PROXY"
    HTTP = "HTTP"
    HTTPS = "HTTPS"
    SOCKS = "SOCKS"
    SOCKS4 = "SOCKS4"
    SOCKS5 = "SOCKS5"


_DEFAULT_PORTS = {EntryKind.PROXY: 80, EntryKind.HTTP: 80, EntryKind.HTTPS: 443,
                  EntryKind.SOCKS: 1080, EntryKind.SOCKS4: 1080, EntryKind.SOCKS5: 1080}
_SOCKS = (EntryKind.SOCKS, EntryKind.SOCKS4, EntryKind.SOCKS5)


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    kind: EntryKind
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.kind is EntryKind.DIRECT:
            return "DIRECT"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind.value} {host}:{self.port}"


DIRECT_ENTRY = ProxyEntry(EntryKind.DIRECT)


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` -> (host, port); ValueError with the reason."""
    host, port_text = split_host_port(text)
    host = host.lower()
    problem = None if is_ip_literal(host) else validate_hostname(host)
    if problem:
        raise ValueError(problem)
    if port_text is None:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{port_text!r} is not a port number (1-65535)")
    return host, int(port_text)


def parse_pac_result(text: str) -> tuple[ProxyEntry, ...]:
    """`"PROXY a:8080; SOCKS5 b:1080; DIRECT"` -> entries, in order.

    ValueError, with the offending entry named, when the text is not a PAC result.
    """
    entries: list[ProxyEntry] = []
    for raw in text.split(";"):
        part = raw.strip()
        if not part:
            continue
        words = part.split()
        try:
            kind = EntryKind(words[0].upper())
        except ValueError:
            raise ValueError(f"unknown keyword {words[0]!r} in {part!r}") from None
        if kind is EntryKind.DIRECT:
            if len(words) != 1:
                raise ValueError(f"DIRECT takes no address: {part!r}")
            entries.append(DIRECT_ENTRY)
            continue
        if len(words) != 2:
            raise ValueError(f"expected '{kind.value} HOST:PORT', got {part!r}")
        try:
            host, port = parse_host_port(words[1], _DEFAULT_PORTS[kind])
        except ValueError as exc:
            raise ValueError(f"{part!r}: {exc}") from None
        entries.append(ProxyEntry(kind, host, port))
    if not entries:
        raise ValueError("empty result")
    return tuple(entries)


def entry_route(entry: ProxyEntry, source: RouteSource, explanation: str) -> Route:
    """The probe route for an entry (an HTTPS proxy is probed as a plain HTTP proxy)."""
    if entry.kind is EntryKind.DIRECT:
        return Route(RouteKind.DIRECT, source=source, explanation=explanation)
    if entry.kind in (EntryKind.SOCKS, EntryKind.SOCKS4):
        return Route(RouteKind.SOCKS4, entry.host, entry.port, source=source, explanation=explanation)
    if entry.kind is EntryKind.SOCKS5:
        return Route(RouteKind.SOCKS5, entry.host, entry.port, source=source, explanation=explanation)
    return Route(RouteKind.HTTP, entry.host, entry.port, source=source, explanation=explanation)


@dataclass(frozen=True, slots=True)
class Decision:
    """What one source decides for one URL.

    `entries` is the full list (what a browser tries in order); `winhttp` is the
    one WinHTTP uses. `error` is set when the source failed for this URL (a PAC
    that threw, say); WinHTTP then goes direct.
    """

    source: RouteSource
    url: str
    entries: tuple[ProxyEntry, ...]
    reason: str
    error: str | None = None

    @property
    def winhttp(self) -> ProxyEntry:
        if self.error is not None or not self.entries:
            return DIRECT_ENTRY
        first = self.entries[0]
        return DIRECT_ENTRY if first.kind in _SOCKS else first

    @property
    def winhttp_note(self) -> str:
        """Why WinHTTP's choice differs from a browser's, or an empty string."""
        if self.error is not None:
            return "the source failed, so WinHTTP goes direct"
        if not self.entries:
            return ""
        first = self.entries[0]
        if first.kind in _SOCKS:
            return f"WinHTTP has no SOCKS support: it cannot use {first} and goes direct"
        if len(self.entries) > 1:
            return f"WinHTTP uses only the first entry ({first}) and never fails over"
        return ""

    def route(self) -> Route:
        """The route WinHTTP takes, carrying the explanation."""
        why = self.reason if self.error is None else f"{self.reason}: {self.error}"
        note = self.winhttp_note
        return entry_route(self.winhttp, self.source, f"{why}; {note}" if note else why)


def url_for(target: str) -> tuple[str, str]:
    """A command-line target (`URL`, `HOST` or `HOST:PORT`) -> (url, host).

    A bare host becomes `https://HOST/`; port 80 means `http://`.
    """
    text = target.strip()
    if "://" not in text:
        try:
            host, port_text = split_host_port(text)
        except ValueError as exc:
            raise UsageError(f"{target!r}: {exc}") from None
        scheme = "http" if port_text == "80" else "https"
        shown = f"[{host}]" if ":" in host else host
        default = {"http": "80", "https": "443"}[scheme]
        port = f":{port_text}" if port_text and port_text != default else ""
        text = f"{scheme}://{shown}{port}/"
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        _ = parts.port
    except ValueError as exc:
        raise UsageError(f"{target!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise UsageError(f"{target!r}: expected an http:// or https:// URL or a host name")
    problem = None if is_ip_literal(host) else validate_hostname(host)
    if problem:
        raise UsageError(f"{target!r}: {problem}")
    return text, host


def endpoint_url(host: str, port: int) -> str:
    """The URL a client would fetch from an endpoint port (80: http, else https)."""
    shown = f"[{host}]" if ":" in host else host
    if port == 80:
        return f"http://{shown}/"
    return f"https://{shown}/" if port == 443 else f"https://{shown}:{port}/"
