"""--analyzer's paths, from the discovery decisions to one route per path. Pure."""

from __future__ import annotations

import pytest

from scanner.discovery.analyzer import analyzer_paths, parse_named_proxy, routes_for_url
from scanner.discovery.decision import DIRECT_ENTRY, Decision, EntryKind, ProxyEntry
from scanner.discovery.sources import WPAD_NOT_FOUND, UrlReport
from scanner.errors import UsageError
from scanner.models import Route, RouteKind, RouteSource
from scanner.routes import parse_proxy_url

URL = "https://a.contoso.com/"
S = RouteSource


def table(routes: tuple[Route, ...]) -> list[tuple[str, str, str | None]]:
    return [(r.source.value, r.display, r.explanation) for r in routes]


def test_nothing_configured_leaves_only_the_direct_path() -> None:
    assert table(routes_for_url(None, analyzer_paths(None, []))) == [
        ("winhttp", "none", "no static WinHTTP setting given (--winhttp)"),
        ("wpad", "none", "WPAD not asked for (--wpad)"),
        ("proxy_disabled", "direct", "proxy disabled: always direct"),
        ("named_proxy", "none", "no named proxy given (--named-proxy, the TelemetryProxyServer value)"),
        ("command_line", "none", "no command-line proxy given (--proxy)"),
    ]


def test_every_path_configured_in_the_analyzer_order() -> None:
    report = UrlReport(URL, "a.contoso.com", (
        Decision(S.WINHTTP, URL, (DIRECT_ENTRY,), "netsh.txt: a.contoso.com matches bypass entry '*.contoso.com'"),
        Decision(S.PAC, URL, (ProxyEntry(EntryKind.SOCKS5, "s", 1080),), "p.pac returned 'SOCKS5 s:1080'"),
        Decision(S.WPAD, URL, (ProxyEntry(EntryKind.PROXY, "w", 8080), DIRECT_ENTRY),
                 "http://wpad.contoso.com/wpad.dat returned 'PROXY w:8080; DIRECT'"),
    ), None)
    proxies = [parse_proxy_url("http://u:pw@c:3128"), parse_proxy_url("socks5h://k:1080"),
               parse_proxy_url("http://u:pw@c:3128")]
    routes = routes_for_url(report, analyzer_paths("http://n.contoso.com:8080", proxies))
    assert table(routes) == [
        ("winhttp", "direct", "netsh.txt: a.contoso.com matches bypass entry '*.contoso.com'"),
        ("wpad", "http://w:8080", "http://wpad.contoso.com/wpad.dat returned 'PROXY w:8080; DIRECT'; "
                                  "WinHTTP uses only the first entry (PROXY w:8080) and never fails over"),
        ("pac", "direct", "p.pac returned 'SOCKS5 s:1080'; WinHTTP has no SOCKS support: it cannot use "
                          "SOCKS5 s:1080 and goes direct"),
        ("proxy_disabled", "direct", "proxy disabled: always direct"),
        ("named_proxy", "http://n.contoso.com:8080", "named proxy n.contoso.com:8080 (the TelemetryProxyServer value)"),
        ("command_line", "http://***@c:3128", "command-line proxy http://***@c:3128 (--proxy)"),
        ("command_line", "socks5h://k:1080", "command-line proxy socks5h://k:1080 (--proxy)"),
    ]
    assert routes[5].password == "pw"  # relabelled, not stripped


def test_wpad_that_found_nothing_is_not_configured_but_a_failing_script_is_a_path() -> None:
    missing = UrlReport(URL, "a.contoso.com", (
        Decision(S.WPAD, URL, (), "WPAD found no wpad.dat (3 names tried)", WPAD_NOT_FOUND),), None)
    assert table(routes_for_url(missing, analyzer_paths(None, [])))[1] == (
        "wpad", "none", "WPAD found no wpad.dat (3 names tried)")
    broken = UrlReport(URL, "a.contoso.com", (
        Decision(S.WPAD, URL, (), "http://wpad.contoso.com/wpad.dat failed", "ReferenceError: x"),), None)
    assert table(routes_for_url(broken, analyzer_paths(None, [])))[1] == (
        "wpad", "direct", "http://wpad.contoso.com/wpad.dat failed: ReferenceError: x; "
                          "the source failed, so WinHTTP goes direct")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy.contoso.com:8080", ("proxy.contoso.com", 8080)),
        ("HTTP://Proxy.Contoso.com:3128", ("proxy.contoso.com", 3128)),
        ("10.0.0.1", ("10.0.0.1", 80)),
        ("[fd00::1]:8080", ("fd00::1", 8080)),
    ],
)
def test_parse_named_proxy(text: str, expected: tuple[str, int]) -> None:
    route = parse_named_proxy(text)
    assert (route.kind, route.host, route.port, route.source) == (RouteKind.HTTP, *expected, S.NAMED_PROXY)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("proxy:99999", "--named-proxy 'proxy:99999': '99999' is not a port number (1-65535)"),
        ("a..b:80", "--named-proxy 'a..b:80': "),
        ("", "--named-proxy '': "),
    ],
)
def test_bad_named_proxy_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_named_proxy(text)
    assert info.value.message.startswith(message)
