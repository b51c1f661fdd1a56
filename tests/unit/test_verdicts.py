"""The pure maps from errno, status and reply codes to states, and the verdict on each probe."""

from __future__ import annotations

import errno as E
import itertools
import os

import pytest

from scanner.models import (
    DIRECT,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Expectation,
    Probe,
    Route,
    RouteKind,
)
from scanner.verdicts import (
    combine_dns,
    dns_status_for_code,
    errno_detail,
    judge,
    state_for_errno,
    state_for_http_status,
    state_for_socks_reply,
)

CS = ConnectStatus


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (E.ECONNREFUSED, CS.NOT_LISTENING),
        (E.ECONNRESET, CS.NOT_LISTENING),
        (E.ETIMEDOUT, CS.FILTERED),
        (E.EHOSTDOWN, CS.FILTERED),
        (E.EHOSTUNREACH, CS.UNREACHABLE),
        (E.ENETUNREACH, CS.UNREACHABLE),
        (E.EACCES, CS.UNREACHABLE),
        (E.EPERM, CS.UNREACHABLE),
        (E.EADDRNOTAVAIL, CS.ERROR),
        (E.ENETDOWN, CS.ERROR),
        (None, CS.ERROR),
        (99999, CS.ERROR),
        (E.ENOENT, CS.ERROR),
    ],
)
def test_state_for_errno(code: int | None, state: ConnectStatus) -> None:
    assert state_for_errno(code) is state


def test_errno_detail() -> None:
    assert errno_detail(E.ECONNREFUSED) == "ECONNREFUSED (Connection refused)"
    assert errno_detail(None) == "connect failed"
    assert errno_detail(99999) == f"99999 ({os.strerror(99999)})"


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (200, CS.TUNNEL),
        (204, CS.TUNNEL),
        (299, CS.TUNNEL),
        (100, CS.ERROR),
        (301, CS.ERROR),
        (400, CS.DENIED),
        (403, CS.DENIED),
        (404, CS.DENIED),
        (407, CS.AUTH_REQUIRED),
        (500, CS.PROXY_ERROR),
        (502, CS.PROXY_ERROR),
        (503, CS.PROXY_ERROR),
        (504, CS.PROXY_ERROR),
        (600, CS.ERROR),
    ],
)
def test_state_for_http_status(status: int, state: ConnectStatus) -> None:
    assert state_for_http_status(status) is state


@pytest.mark.parametrize("kind", [RouteKind.SOCKS5, RouteKind.SOCKS5H])
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (1, (CS.PROXY_ERROR, "general SOCKS server failure")),
        (2, (CS.DENIED, "connection not allowed by ruleset")),
        (3, (CS.PROXY_ERROR, "network unreachable")),
        (4, (CS.PROXY_ERROR, "host unreachable")),
        (5, (CS.PROXY_ERROR, "connection refused")),
        (6, (CS.PROXY_ERROR, "TTL expired")),
        (7, (CS.ERROR, "command not supported")),
        (8, (CS.ERROR, "address type not supported")),
        (9, (CS.ERROR, "unknown reply code 9")),
        (0x5B, (CS.ERROR, "unknown reply code 91")),
    ],
)
def test_socks5_replies(kind: RouteKind, code: int, expected: tuple[ConnectStatus, str]) -> None:
    assert state_for_socks_reply(kind, code) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (0x5B, (CS.DENIED, "request rejected or failed")),
        (0x5C, (CS.AUTH_REQUIRED, "rejected: the server cannot reach the client's identd")),
        (0x5D, (CS.AUTH_REQUIRED, "rejected: identd reported a different user")),
        (0x5E, (CS.ERROR, "unknown reply code 94")),
        (2, (CS.ERROR, "unknown reply code 2")),
    ],
)
def test_socks4_replies(code: int, expected: tuple[ConnectStatus, str]) -> None:
    assert state_for_socks_reply(RouteKind.SOCKS4, code) == expected


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (1, DnsStatus.NODATA),
        (3, DnsStatus.SERVFAIL),
        (4, DnsStatus.NXDOMAIN),
        (6, DnsStatus.REFUSED),
        (11, DnsStatus.REFUSED),
        (12, DnsStatus.TIMEOUT),
        (0, DnsStatus.ERROR),
        (2, DnsStatus.ERROR),
        (16, DnsStatus.ERROR),
    ],
)
def test_dns_status_for_code(code: int, status: DnsStatus) -> None:
    assert dns_status_for_code(code) is status


D = DnsStatus


@pytest.mark.parametrize(
    ("a", "aaaa", "combined"),
    [
        (D.RESOLVED, D.RESOLVED, D.RESOLVED),
        (D.RESOLVED, D.NODATA, D.RESOLVED),
        (D.NODATA, D.RESOLVED, D.RESOLVED),
        (D.TIMEOUT, D.RESOLVED, D.RESOLVED),
        (D.NODATA, D.NODATA, D.NODATA),
        (D.NXDOMAIN, D.NODATA, D.NXDOMAIN),
        (D.NODATA, D.SERVFAIL, D.SERVFAIL),
        (D.SERVFAIL, D.NXDOMAIN, D.NXDOMAIN),
        (D.TIMEOUT, D.REFUSED, D.REFUSED),
        (D.TIMEOUT, D.SERVFAIL, D.SERVFAIL),
        (D.ERROR, D.NODATA, D.ERROR),
        (D.TIMEOUT, D.ERROR, D.TIMEOUT),
    ],
)
def test_combine_dns(a: DnsStatus, aaaa: DnsStatus, combined: DnsStatus) -> None:
    assert combine_dns(a, aaaa) is combined


def test_combine_dns_is_symmetric_and_picks_one_of_its_inputs() -> None:
    for a, b in itertools.product(DnsStatus, repeat=2):
        assert combine_dns(a, b) is combine_dns(b, a)
        assert combine_dns(a, b) in (a, b)


# --- judge -------------------------------------------------------------------------------------

PROXY = Route(RouteKind.HTTP, "proxy.corp", 3128, "svc", "S3cr3t-pw")
RESOLVED = DnsResult(DnsStatus.RESOLVED, ("192.0.2.7",))


def probe(expect: Expectation, route: Route = DIRECT) -> Probe:
    return Probe("cat", Endpoint("svc.example.com", (443,), expect), 443, route)


def connect(status: ConnectStatus, detail: str | None = None, schemes: tuple[str, ...] = ()) -> ConnectResult:
    return ConnectResult(status, 12.5, detail=detail, auth_schemes=schemes)


T = "svc.example.com:443"
P = "http://***@proxy.corp:3128"

# (status, route, connect detail, reason when the endpoint is expected to be reachable)
REACHABLE_CASES: list[tuple[ConnectStatus, Route, str | None, str | None]] = [
    (CS.LISTENING, DIRECT, None, None),
    (CS.TUNNEL, PROXY, None, None),
    (CS.NOT_LISTENING, DIRECT, None,
     "port 443 on svc.example.com refused the connection: nothing listens, or a firewall rejects it"),
    (CS.FILTERED, DIRECT, None, f"no answer from {T} before the timeout: a firewall drops the traffic"),
    (CS.UNREACHABLE, DIRECT, "EHOSTUNREACH", f"{T} is unreachable (EHOSTUNREACH)"),
    (CS.DENIED, PROXY, "HTTP 403", f"proxy {P} denied {T} (HTTP 403): add it to the proxy's allowlist"),
    (CS.AUTH_REQUIRED, PROXY, None,
     f"proxy {P} demands authentication (unspecified) for {T}; the sensor runs as LocalSystem "
     "and cannot authenticate: allow anonymous access to it"),
    (CS.PROXY_ERROR, PROXY, "HTTP 503", f"proxy {P} could not reach {T} (HTTP 503)"),
    (CS.PROXY_UNREACHABLE, PROXY, "ECONNREFUSED", f"proxy {P} did not accept the connection (ECONNREFUSED)"),
    (CS.TIMEOUT, PROXY, None, f"proxy {P} did not answer before the timeout"),
    (CS.TIMEOUT, DIRECT, "2s", f"{T} did not answer before the timeout (2s)"),
    (CS.ERROR, DIRECT, "boom", f"probe of {T} failed (boom)"),
    (CS.ERROR, DIRECT, None, f"probe of {T} failed"),
    (CS.SKIPPED, DIRECT, None, "svc.example.com did not resolve (nxdomain)"),
    (CS.SUSPECT_MIDDLEBOX, DIRECT, "control port 50000, closed by design, accepted too",
     f"{T} accepted, but so did a port closed by design (control port 50000, closed by design, "
     "accepted too): a firewall or proxy completes every handshake here, so the service itself "
     "is not proven"),
    (CS.UNVERIFIED, DIRECT, None, f"{T} accepted, but nothing proved the service (--verify)"),
]


NO_VERDICT = {CS.NOT_CONFIGURED}  # --analyzer's paths that do not exist: neither ok nor failed


def test_reachable_cases_cover_every_status() -> None:
    assert {status for status, *_ in REACHABLE_CASES} | NO_VERDICT == set(ConnectStatus)


@pytest.mark.parametrize("expect", list(Expectation))
@pytest.mark.parametrize("route", [DIRECT, PROXY, Route(RouteKind.NONE)], ids=["direct", "proxy", "none"])
def test_not_configured_has_no_verdict(expect: Expectation, route: Route) -> None:
    assert judge(probe(expect, route), RESOLVED, connect(CS.NOT_CONFIGURED)) == (None, None)


@pytest.mark.parametrize(("status", "route", "detail", "reason"), REACHABLE_CASES)
def test_judge_reachable(status: ConnectStatus, route: Route, detail: str | None, reason: str | None) -> None:
    dns = DnsResult(DnsStatus.NXDOMAIN) if status is CS.SKIPPED else RESOLVED
    verdict = judge(probe(Expectation.REACHABLE, route), dns, connect(status, detail))
    assert verdict == (reason is None, reason)


def test_judge_skipped_names_the_dns_detail() -> None:
    dns = DnsResult(DnsStatus.SERVFAIL, detail="server 10.0.0.53 failed")
    assert judge(probe(Expectation.REACHABLE), dns, connect(CS.SKIPPED)) == (
        False, "svc.example.com did not resolve (servfail: server 10.0.0.53 failed)")


def test_auth_required_reason_names_schemes_and_localsystem() -> None:
    ok, reason = judge(probe(Expectation.REACHABLE, PROXY), RESOLVED,
                       connect(CS.AUTH_REQUIRED, schemes=("Negotiate", "NTLM", "Basic")))
    assert not ok
    assert reason == (
        f"proxy {P} demands authentication (Negotiate, NTLM, Basic) for {T}; the sensor runs as "
        "LocalSystem and cannot authenticate: allow anonymous access to it"
    )
    assert "S3cr3t-pw" not in reason
    assert "svc:" not in reason


BLOCKED_OK = [CS.NOT_LISTENING, CS.FILTERED, CS.UNREACHABLE, CS.DENIED]
BLOCKED_NOT_OK = [CS.LISTENING, CS.TUNNEL, CS.PROXY_ERROR, CS.AUTH_REQUIRED, CS.TIMEOUT,
                  CS.PROXY_UNREACHABLE, CS.ERROR, CS.SKIPPED, CS.SUSPECT_MIDDLEBOX, CS.UNVERIFIED]


def test_blocked_tables_cover_every_status() -> None:
    assert set(BLOCKED_OK) | set(BLOCKED_NOT_OK) | NO_VERDICT == set(ConnectStatus)
    assert not set(BLOCKED_OK) & set(BLOCKED_NOT_OK)


@pytest.mark.parametrize("route", [DIRECT, PROXY], ids=["direct", "proxy"])
@pytest.mark.parametrize("status", BLOCKED_OK)
def test_judge_blocked_ok(status: ConnectStatus, route: Route) -> None:
    assert judge(probe(Expectation.BLOCKED, route), RESOLVED, connect(status)) == (True, None)


def test_judge_blocked_ok_when_the_name_does_not_exist() -> None:
    dns = DnsResult(DnsStatus.NXDOMAIN)
    assert judge(probe(Expectation.BLOCKED), dns, connect(CS.SKIPPED)) == (True, None)


@pytest.mark.parametrize(
    ("status", "route", "reason"),
    [
        (CS.LISTENING, DIRECT, f"{T} is expected to be blocked but is reachable directly"),
        (CS.TUNNEL, PROXY, f"{T} is expected to be blocked but is reachable through the proxy"),
        (CS.PROXY_ERROR, PROXY, f"cannot prove {T} is blocked: proxy {P} could not reach {T}"),
        (CS.AUTH_REQUIRED, PROXY,
         f"cannot prove {T} is blocked: proxy {P} demands authentication (unspecified) for {T}; "
         "the sensor runs as LocalSystem and cannot authenticate: allow anonymous access to it"),
        (CS.TIMEOUT, DIRECT, f"cannot prove {T} is blocked: {T} did not answer before the timeout"),
        (CS.TIMEOUT, PROXY, f"cannot prove {T} is blocked: proxy {P} did not answer before the timeout"),
        (CS.PROXY_UNREACHABLE, PROXY,
         f"cannot prove {T} is blocked: proxy {P} did not accept the connection"),
        (CS.ERROR, DIRECT, f"cannot prove {T} is blocked: probe of {T} failed"),
    ],
)
def test_judge_blocked_not_ok(status: ConnectStatus, route: Route, reason: str) -> None:
    assert judge(probe(Expectation.BLOCKED, route), RESOLVED, connect(status)) == (False, reason)


@pytest.mark.parametrize("dns_status", [DnsStatus.SERVFAIL, DnsStatus.TIMEOUT, DnsStatus.NODATA,
                                        DnsStatus.REFUSED, DnsStatus.ERROR])
def test_judge_blocked_skipped_without_nxdomain_is_not_proof(dns_status: DnsStatus) -> None:
    verdict = judge(probe(Expectation.BLOCKED), DnsResult(dns_status), connect(CS.SKIPPED))
    assert verdict == (False, f"cannot prove {T} is blocked: svc.example.com did not resolve "
                              f"({dns_status.value})")
