"""Pure mapping from what the network said to states, and from states to a verdict.

The probes never decide what an errno or a status code means: they ask here.
"""

from __future__ import annotations

import errno as E
import os

from scanner.models import (
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Expectation,
    HttpResult,
    HttpStatus,
    Probe,
    RouteKind,
    Stage,
    TlsResult,
    TlsStatus,
)

# nmap's connect scan (scan_engine_connect.cc) and portqry, as one table.
_ERRNO_STATES: dict[int, ConnectStatus] = {
    E.ECONNREFUSED: ConnectStatus.NOT_LISTENING,
    E.ECONNRESET: ConnectStatus.NOT_LISTENING,
    E.ETIMEDOUT: ConnectStatus.FILTERED,
    E.EHOSTDOWN: ConnectStatus.FILTERED,
    E.EHOSTUNREACH: ConnectStatus.UNREACHABLE,
    E.ENETUNREACH: ConnectStatus.UNREACHABLE,
    E.EACCES: ConnectStatus.UNREACHABLE,  # ICMP administratively prohibited
    E.EPERM: ConnectStatus.UNREACHABLE,  # a local firewall rule rejected the SYN
    E.ENONET: ConnectStatus.UNREACHABLE,
    E.EADDRNOTAVAIL: ConnectStatus.ERROR,  # local: out of ephemeral ports
    E.ENETDOWN: ConnectStatus.ERROR,
    E.ENETRESET: ConnectStatus.ERROR,
    E.ECONNABORTED: ConnectStatus.ERROR,
}


def state_for_errno(code: int | None) -> ConnectStatus:
    """The verdict for a failed connect, as nmap's connect scan gives it."""
    if code is None:
        return ConnectStatus.ERROR
    return _ERRNO_STATES.get(code, ConnectStatus.ERROR)


def errno_detail(code: int | None) -> str:
    if code is None:
        return "connect failed"
    name = E.errorcode.get(code, str(code))
    return f"{name} ({os.strerror(code)})"


def state_for_http_status(status: int) -> ConnectStatus:
    """The answer of an HTTP proxy to CONNECT."""
    if 200 <= status < 300:
        return ConnectStatus.TUNNEL
    if status == 407:
        return ConnectStatus.AUTH_REQUIRED
    if 400 <= status < 500:
        return ConnectStatus.DENIED
    if 500 <= status < 600:
        return ConnectStatus.PROXY_ERROR
    return ConnectStatus.ERROR  # 1xx or 3xx: not an answer to CONNECT


# RFC 1928 section 6
SOCKS5_REPLIES: dict[int, tuple[ConnectStatus, str]] = {
    1: (ConnectStatus.PROXY_ERROR, "general SOCKS server failure"),
    2: (ConnectStatus.DENIED, "connection not allowed by ruleset"),
    3: (ConnectStatus.PROXY_ERROR, "network unreachable"),
    4: (ConnectStatus.PROXY_ERROR, "host unreachable"),
    5: (ConnectStatus.PROXY_ERROR, "connection refused"),
    6: (ConnectStatus.PROXY_ERROR, "TTL expired"),
    7: (ConnectStatus.ERROR, "command not supported"),
    8: (ConnectStatus.ERROR, "address type not supported"),
}

# SOCKS4: 0x5B rejected or failed; 0x5C / 0x5D identd
SOCKS4_REPLIES: dict[int, tuple[ConnectStatus, str]] = {
    0x5B: (ConnectStatus.DENIED, "request rejected or failed"),
    0x5C: (ConnectStatus.AUTH_REQUIRED, "rejected: the server cannot reach the client's identd"),
    0x5D: (ConnectStatus.AUTH_REQUIRED, "rejected: identd reported a different user"),
}


def state_for_socks_reply(kind: RouteKind, code: int) -> tuple[ConnectStatus, str]:
    table = SOCKS4_REPLIES if kind is RouteKind.SOCKS4 else SOCKS5_REPLIES
    return table.get(code, (ConnectStatus.ERROR, f"unknown reply code {code}"))


def dns_status_for_code(code: int) -> DnsStatus:
    """c-ares error codes (pycares.errno) to DNS states."""
    return {
        1: DnsStatus.NODATA,  # ARES_ENODATA
        3: DnsStatus.SERVFAIL,  # ARES_ESERVFAIL
        4: DnsStatus.NXDOMAIN,  # ARES_ENOTFOUND
        6: DnsStatus.REFUSED,  # ARES_EREFUSED
        11: DnsStatus.REFUSED,  # ARES_ECONNREFUSED: nobody serves DNS there
        12: DnsStatus.TIMEOUT,  # ARES_ETIMEOUT
    }.get(code, DnsStatus.ERROR)


# when A and AAAA disagree, the more telling failure is reported
_DNS_PRIORITY = [DnsStatus.NXDOMAIN, DnsStatus.SERVFAIL, DnsStatus.REFUSED, DnsStatus.TIMEOUT,
                 DnsStatus.ERROR, DnsStatus.NODATA]


def combine_dns(a: DnsStatus, aaaa: DnsStatus) -> DnsStatus:
    if DnsStatus.RESOLVED in (a, aaaa):
        return DnsStatus.RESOLVED
    return min(a, aaaa, key=_DNS_PRIORITY.index)


_BLOCKED_OK = {ConnectStatus.NOT_LISTENING, ConnectStatus.FILTERED, ConnectStatus.UNREACHABLE,
               ConnectStatus.DENIED}
_REACHED = {ConnectStatus.LISTENING, ConnectStatus.TUNNEL}


def judge(probe: Probe, dns: DnsResult, connect: ConnectResult) -> tuple[bool | None, str | None]:
    """Did the outcome match the catalog's expectation, and if not, why not.

    None: no verdict, for a path --analyzer found not configured (nothing was probed).
    """
    if connect.status is ConnectStatus.NOT_CONFIGURED:
        return None, None
    target = f"{probe.endpoint.host}:{probe.port}"
    if probe.endpoint.expect is Expectation.BLOCKED:
        if connect.status in _REACHED:
            how = "through the proxy" if probe.route.kind is not RouteKind.DIRECT else "directly"
            return False, f"{target} is expected to be blocked but is reachable {how}"
        if connect.status in _BLOCKED_OK:
            return True, None
        if connect.status is ConnectStatus.SKIPPED and dns.status is DnsStatus.NXDOMAIN:
            return True, None
        return False, f"cannot prove {target} is blocked: {explain(probe, dns, connect)}"
    if connect.status in _REACHED:
        return True, None
    return False, explain(probe, dns, connect)


def explain(probe: Probe, dns: DnsResult, connect: ConnectResult) -> str:
    """One sentence saying what stood in the way."""
    host, port = probe.endpoint.host, probe.port
    proxy = probe.route.display
    status = connect.status
    detail = f" ({connect.detail})" if connect.detail else ""
    if status is ConnectStatus.SKIPPED:
        return f"{host} did not resolve ({dns.status.value}{': ' + dns.detail if dns.detail else ''})"
    if status is ConnectStatus.NOT_LISTENING:
        return f"port {port} on {host} refused the connection: nothing listens, or a firewall rejects it"
    if status is ConnectStatus.FILTERED:
        return f"no answer from {host}:{port} before the timeout: a firewall drops the traffic"
    if status is ConnectStatus.UNREACHABLE:
        return f"{host}:{port} is unreachable{detail}"
    if status is ConnectStatus.DENIED:
        return f"proxy {proxy} denied {host}:{port}{detail}: add it to the proxy's allowlist"
    if status is ConnectStatus.AUTH_REQUIRED:
        offered = ", ".join(connect.auth_schemes) or "unspecified"
        return (f"proxy {proxy} demands authentication ({offered}) for {host}:{port}; the sensor "
                "runs as LocalSystem and cannot authenticate: allow anonymous access to it")
    if status is ConnectStatus.PROXY_ERROR:
        return f"proxy {proxy} could not reach {host}:{port}{detail}"
    if status is ConnectStatus.PROXY_UNREACHABLE:
        return f"proxy {proxy} did not accept the connection{detail}"
    if status is ConnectStatus.SUSPECT_MIDDLEBOX:
        return (f"{host}:{port} accepted, but so did a port closed by design{detail}: a firewall or "
                "proxy completes every handshake here, so the service itself is not proven")
    if status is ConnectStatus.UNVERIFIED:
        return f"{host}:{port} accepted, but nothing proved the service (--verify){detail}"
    if status is ConnectStatus.TIMEOUT:
        where = f"proxy {proxy}" if probe.route.kind is not RouteKind.DIRECT else f"{host}:{port}"
        return f"{where} did not answer before the timeout{detail}"
    return f"probe of {host}:{port} failed{detail}"


def judge_stages(probe: Probe, tls: TlsResult | None, http: HttpResult | None) -> tuple[bool, str | None]:
    """After a connect that met its expectation: do the stages the catalog requires pass?"""
    if probe.endpoint.expect is Expectation.BLOCKED:
        return True, None
    required = probe.endpoint.checks.require
    target = f"{probe.endpoint.host}:{probe.port}"
    # a requirement holds on the ports where its stage runs (tls: 443 unless the catalog says)
    if Stage.TLS in required and tls is not None and tls.status is not TlsStatus.OK:
        return False, explain_tls(target, tls)
    if Stage.HTTP in required and http is not None and http.status is not HttpStatus.OK:
        return False, explain_http(target, http)
    return True, None


def explain_tls(target: str, tls: TlsResult) -> str:
    detail = f" ({tls.detail})" if tls.detail else ""
    status = tls.status
    if status is TlsStatus.INTERCEPTED:
        return (f"TLS to {target} is intercepted by {tls.root!r}{detail}: certificate-pinned "
                "agents fail there; exempt it from TLS inspection")
    if status is TlsStatus.UNTRUSTED:
        return f"the certificate of {target} is not trusted{detail}"
    if status is TlsStatus.EXPIRED:
        return f"the certificate of {target} has expired ({tls.not_after})"
    if status is TlsStatus.NOT_YET_VALID:
        return f"the certificate of {target} is not valid yet ({tls.not_before})"
    if status is TlsStatus.HOSTNAME_MISMATCH:
        return f"the certificate of {target} is for other names{detail}"
    if status is TlsStatus.TIMEOUT:
        return f"the TLS handshake with {target} did not finish before the timeout"
    return f"the TLS handshake with {target} failed{detail}"


def explain_http(target: str, http: HttpResult) -> str:
    detail = f" ({http.detail})" if http.detail else ""
    if http.status is HttpStatus.BLOCK_PAGE:
        return f"{target} answered HTTP, but not as the service does{detail}: a proxy's block page?"
    if http.status is HttpStatus.TIMEOUT:
        return f"{target} gave no HTTP answer before the timeout"
    return f"the HTTP exchange with {target} failed: {http.status.value}{detail}"
