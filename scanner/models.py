"""Data types shared by every stage: catalogs, routes, probe results and records.

Everything here is immutable. States are enums whose values are the strings
written in the JSON records, so the record schema is defined by this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Expectation(StrEnum):
    """What the catalog says should happen when an endpoint is probed."""

    REACHABLE = "reachable"
    BLOCKED = "blocked"


class DnsStatus(StrEnum):
    RESOLVED = "resolved"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    ERROR = "error"


class ConnectStatus(StrEnum):
    # direct TCP (portqry's verdicts)
    LISTENING = "listening"
    NOT_LISTENING = "not_listening"
    FILTERED = "filtered"
    UNREACHABLE = "unreachable"
    # through a proxy
    TUNNEL = "tunnel"
    DENIED = "denied"
    AUTH_REQUIRED = "auth_required"
    PROXY_ERROR = "proxy_error"
    PROXY_UNREACHABLE = "proxy_unreachable"
    # either
    TIMEOUT = "timeout"
    ERROR = "error"
    SKIPPED = "skipped"  # not attempted: the name did not resolve
    # after the later stages (issue 4)
    SUSPECT_MIDDLEBOX = "suspect_middlebox"  # a port closed by design accepted too
    UNVERIFIED = "unverified"  # --verify: accepted, but no TLS handshake or HTTP answer
    # --analyzer: a path the client analyzer tests that does not exist here (no verdict)
    NOT_CONFIGURED = "not_configured"


class RouteKind(StrEnum):
    DIRECT = "direct"
    HTTP = "http"
    SOCKS4 = "socks4"
    SOCKS5 = "socks5"
    SOCKS5H = "socks5h"
    NONE = "none"  # --analyzer: a path that is not configured; never probed


class RouteSource(StrEnum):
    EXPLICIT = "explicit"  # --direct / --proxy
    ENV = "env"  # HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY
    DEFAULT = "default"  # nothing configured: direct
    WINHTTP = "winhttp"  # the static WinHTTP setting (netsh dump or registry value)
    PAC = "pac"  # a PAC script named with --pac
    WPAD = "wpad"  # a PAC script found by WPAD
    # --analyzer's other paths (the Defender client analyzer's names in the comments)
    PROXY_DISABLED = "proxy_disabled"  # "Proxy disabled": direct
    NAMED_PROXY = "named_proxy"  # "Named proxy": the TelemetryProxyServer policy value
    COMMAND_LINE = "command_line"  # "Command line proxy": --proxy


class Stage(StrEnum):
    """Stages after the connect that a catalog can require for `ok`."""

    TLS = "tls"
    HTTP = "http"


@dataclass(frozen=True, slots=True)
class HttpExpect:
    """The request to send, and what the real service answers (a block page does not)."""

    path: str = "/"
    method: str = "GET"
    status: tuple[int, ...] = ()  # empty: any status
    header: tuple[str, str] | None = None  # (lower-case name, substring of its value)
    body: str | None = None  # a substring of the first bytes of the body


@dataclass(frozen=True, slots=True)
class Checks:
    """An endpoint's stages beyond the connect: which ports, what is expected, what is required."""

    tls_ports: tuple[int, ...] | None = None  # None: 443
    http_ports: tuple[int, ...] | None = None  # None: 80 (over TLS when also a TLS port)
    http: HttpExpect = HttpExpect()
    pins: tuple[str, ...] = ()  # issuer/root names or sha256:HEX expected in the chain
    require: frozenset[Stage] = frozenset()

    def tls_on(self, port: int) -> bool:
        return port in (self.tls_ports if self.tls_ports is not None else (443,))

    def http_on(self, port: int) -> bool:
        return port in (self.http_ports if self.http_ports is not None else (80,))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One host name of a catalog and the ports to probe on it."""

    host: str
    ports: tuple[int, ...]
    expect: Expectation = Expectation.REACHABLE
    wildcard: str | None = None  # the catalog's wildcard this concrete host stands for
    note: str | None = None
    checks: Checks = Checks()
    tags: tuple[str, ...] = ()  # region and function labels, for --tag


@dataclass(frozen=True, slots=True)
class Catalog:
    name: str
    description: str
    source: str
    endpoints: tuple[Endpoint, ...]
    path: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """How a probe reaches its target: directly, or through one proxy."""

    kind: RouteKind
    host: str = ""
    port: int = 0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    source: RouteSource = RouteSource.EXPLICIT
    explanation: str | None = field(default=None, compare=False)  # why this route was chosen

    @property
    def display(self) -> str:
        """The route as written in records: credentials are never shown."""
        if self.kind in (RouteKind.DIRECT, RouteKind.NONE):
            return self.kind.value
        auth = "***@" if self.username is not None or self.password is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind.value}://{auth}{host}:{self.port}"

    @property
    def label(self) -> str:
        """`display`, plus the source for WinHTTP's and --analyzer's routes (see route_label)."""
        return route_label(self.display, self.source.value)

    def __repr__(self) -> str:
        return f"Route({self.display!r}, source={self.source.value!r})"


def route_label(display: str, source: str) -> str:
    """A route told apart from others of the same display: a `direct` from --direct and one
    the WinHTTP setting chose are different paths. Drift keys, JUnit and the console use it."""
    return display if source in ("explicit", "env", "default") else f"{display} ({source})"


DIRECT = Route(RouteKind.DIRECT)


@dataclass(frozen=True, slots=True)
class Probe:
    """One unit of work: an endpoint's port along one route."""

    catalog: str | None
    endpoint: Endpoint
    port: int
    route: Route


@dataclass(frozen=True, slots=True)
class DnsResult:
    status: DnsStatus
    addresses: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    ms: float = 0.0
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One connect to one address (a name can resolve to several)."""

    address: str
    status: ConnectStatus
    ms: float
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectResult:
    status: ConnectStatus
    ms: float = 0.0
    http_status: int | None = None
    detail: str | None = None
    address: str | None = None  # the address that answered (direct) or the proxy's
    attempts: tuple[Attempt, ...] = ()
    auth_schemes: tuple[str, ...] = ()  # from Proxy-Authenticate
    proxy_error: str | None = None  # squid's X-Squid-Error
    reply_code: int | None = None  # SOCKS reply code


class TlsStatus(StrEnum):
    OK = "ok"
    UNTRUSTED = "untrusted"
    HOSTNAME_MISMATCH = "hostname_mismatch"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    INTERCEPTED = "intercepted"  # the chain ends at an unexpected or private root
    HANDSHAKE_FAILED = "handshake_failed"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class CertInfo:
    """One certificate of the chain as sent."""

    subject: str
    issuer: str
    sha256: str
    not_before: str  # ISO-8601 UTC
    not_after: str


@dataclass(frozen=True, slots=True)
class TlsResult:
    status: TlsStatus
    ms: float = 0.0
    detail: str | None = None  # the alert, the verification error, the interceptor
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    subject: str | None = None  # the leaf's
    sans: tuple[str, ...] = ()
    issuer: str | None = None
    not_before: str | None = None
    not_after: str | None = None
    days_left: int | None = None
    chain: tuple[CertInfo, ...] = ()
    root: str | None = None  # the trust anchor that verified, else the top issuer as sent
    trusted: bool = False  # verifies against the trust store (dates apart)
    public_root: bool | None = None  # verifies against the public root bundle
    hostname_match: bool | None = None

    @property
    def handshake_done(self) -> bool:
        return self.status not in (TlsStatus.HANDSHAKE_FAILED, TlsStatus.TIMEOUT)


class HttpStatus(StrEnum):
    OK = "ok"  # an HTTP answer that matches the catalog's expectation (or any, without one)
    BLOCK_PAGE = "block_page"  # an HTTP answer, but not the service's
    PROTOCOL_ERROR = "protocol_error"  # not HTTP, or a head beyond the limit
    CLOSED = "closed"  # the peer closed without answering
    TIMEOUT = "timeout"
    SKIPPED = "skipped"  # the TLS handshake under it failed


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: HttpStatus
    ms: float = 0.0
    request: str | None = None  # e.g. "GET http://host/ (absolute-form)"
    http_status: int | None = None
    reason: str | None = None
    server: str | None = None
    content_type: str | None = None
    body_bytes: int = 0  # bytes of body read (bounded)
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class MiddleboxResult:
    """The control port: a port closed by design on the same address."""

    suspect: bool
    control_port: int
    detail: str


@dataclass(frozen=True, slots=True)
class RangeFinding:
    """Every address of a range (or of the whole run) accepted a port closed by design."""

    every_address: bool  # all addresses checked in the run accepted
    networks: tuple[str, ...]  # ranges (/24, /64) whose every checked address accepted
    addresses: tuple[str, ...]  # the addresses that accepted (the first few dozen)
    accepted: int  # how many addresses accepted their control port
    checked: int  # how many addresses were checked
    detail: str


@dataclass(frozen=True, slots=True)
class Record:
    """The outcome of one probe: what is written as one log line."""

    probe: Probe
    dns: DnsResult
    connect: ConnectResult
    ok: bool | None  # None: no verdict (not_configured)
    reason: str | None
    ts: float
    tls: TlsResult | None = None  # None: the stage did not run
    http: HttpResult | None = None
    middlebox: MiddleboxResult | None = None


@dataclass(slots=True)
class Tally:
    """Running counts for the summary line (mutable: the engine adds to it)."""

    total: int = 0
    ok: int = 0
    failed: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    drift: dict[str, int] | None = None  # counts per drift kind, with --baseline
    middlebox: dict[str, Any] | None = None  # the run-wide range finding, when there is one

    def add(self, record: Record) -> None:
        self.total += 1
        if record.ok:
            self.ok += 1
        elif record.ok is not None:  # not_configured counts in neither
            self.failed += 1
        key = record.connect.status.value
        self.by_status[key] = self.by_status.get(key, 0) + 1
