"""The Defender client analyzer's per-URL paths, each checked as its own route. Pure.

MDEClientAnalyzer tries every URL along five paths: 1 the default (static WinHTTP)
proxy, 2 proxy auto-discovery (WPAD), 3 proxy disabled, 4 a named proxy (the
TelemetryProxyServer policy value), 5 a proxy given on its command line; a path
that is not set up "doesn't exist". `scanner check --analyzer` does the same: one
route per path, its `route_source` naming the path, and a `none` route (recorded as
`not_configured`, never probed) where a path does not exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from scanner.discovery.decision import Decision, parse_host_port
from scanner.discovery.sources import WPAD_NOT_FOUND, UrlReport
from scanner.errors import UsageError
from scanner.models import Route, RouteKind, RouteSource


@dataclass(frozen=True, slots=True)
class AnalyzerPaths:
    """The paths that need no discovery: a named proxy and the command-line proxies."""

    named: Route | None
    command_line: tuple[Route, ...]


def not_configured(source: RouteSource, why: str) -> Route:
    return Route(RouteKind.NONE, source=source, explanation=why)


PROXY_DISABLED = Route(RouteKind.DIRECT, source=RouteSource.PROXY_DISABLED,
                       explanation="proxy disabled: always direct")


def parse_named_proxy(text: str) -> Route:
    """`--named-proxy HOST:PORT`, the TelemetryProxyServer value (`http://` allowed)."""
    value = text.strip()
    if "@" in value:  # never echo what may be a password
        raise UsageError("--named-proxy takes HOST:PORT without credentials (the sensor sends none)")
    address = value[len("http://"):] if value.lower().startswith("http://") else value
    try:
        host, port = parse_host_port(address, 80)
    except ValueError as exc:
        raise UsageError(f"--named-proxy {text!r}: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    return Route(RouteKind.HTTP, host, port, source=RouteSource.NAMED_PROXY,
                 explanation=f"named proxy {shown}:{port} (the TelemetryProxyServer value)")


def analyzer_paths(named: str | None, proxies: Sequence[Route]) -> AnalyzerPaths:
    """--named-proxy and the --proxy routes, the latter relabelled `command_line`, duplicates dropped."""
    command_line: list[Route] = []
    for route in proxies:
        relabelled = replace(route, source=RouteSource.COMMAND_LINE,
                             explanation=f"command-line proxy {route.display} (--proxy)")
        if relabelled not in command_line:
            command_line.append(relabelled)
    return AnalyzerPaths(parse_named_proxy(named) if named is not None else None, tuple(command_line))


def _discovered(decision: Decision | None, source: RouteSource, absent: str) -> Route:
    if decision is None:
        return not_configured(source, absent)
    if source is RouteSource.WPAD and decision.error == WPAD_NOT_FOUND:
        return not_configured(source, decision.reason)
    return decision.route()


def routes_for_url(report: UrlReport | None, fixed: AnalyzerPaths) -> tuple[Route, ...]:
    """Every path for one URL, in the analyzer's order; `--pac`, when given, after WPAD.

    `report` holds the discovery sources' decisions (None: no source was given).
    """
    decisions = {d.source: d for d in report.decisions} if report is not None else {}
    routes = [
        _discovered(decisions.get(RouteSource.WINHTTP), RouteSource.WINHTTP,
                    "no static WinHTTP setting given (--winhttp)"),
        _discovered(decisions.get(RouteSource.WPAD), RouteSource.WPAD, "WPAD not asked for (--wpad)"),
    ]
    pac = decisions.get(RouteSource.PAC)
    if pac is not None:
        routes.append(pac.route())
    routes.append(PROXY_DISABLED)
    routes.append(fixed.named or not_configured(
        RouteSource.NAMED_PROXY, "no named proxy given (--named-proxy, the TelemetryProxyServer value)"))
    routes.extend(fixed.command_line or (
        not_configured(RouteSource.COMMAND_LINE, "no command-line proxy given (--proxy)"),))
    return tuple(routes)
