"""Proxy URLs, their redaction, and the proxy environment variables (curl's rules)."""

from __future__ import annotations

import pytest

from scanner.errors import ProxyURLError
from scanner.models import DIRECT, Route, RouteKind, RouteSource
from scanner.routes import (
    DEFAULT_DIRECT,
    env_proxies,
    no_proxy_matches,
    parse_proxy_url,
    redact_url,
    scheme_for_port,
)

PW = "S3cr3t-pw"
EXPLICIT = RouteSource.EXPLICIT
ENV = RouteSource.ENV


@pytest.mark.parametrize(
    ("url", "route"),
    [
        ("http://proxy.corp:3128", Route(RouteKind.HTTP, "proxy.corp", 3128)),
        ("http://proxy.corp", Route(RouteKind.HTTP, "proxy.corp", 80)),
        ("http://proxy.corp:", Route(RouteKind.HTTP, "proxy.corp", 80)),
        ("http://proxy.corp:3128/", Route(RouteKind.HTTP, "proxy.corp", 3128)),
        ("  HTTP://Proxy.CORP:3128  ", Route(RouteKind.HTTP, "proxy.corp", 3128)),
        ("socks4://10.0.0.1:1081", Route(RouteKind.SOCKS4, "10.0.0.1", 1081)),
        ("socks4://10.0.0.1", Route(RouteKind.SOCKS4, "10.0.0.1", 1080)),
        ("socks4a://gw", Route(RouteKind.SOCKS4, "gw", 1080)),
        ("socks5://gw", Route(RouteKind.SOCKS5, "gw", 1080)),
        ("socks5://gw:9050", Route(RouteKind.SOCKS5, "gw", 9050)),
        ("socks5h://gw", Route(RouteKind.SOCKS5H, "gw", 1080)),
        ("http://[::1]:3128", Route(RouteKind.HTTP, "::1", 3128)),
        ("socks5://[::1]", Route(RouteKind.SOCKS5, "::1", 1080)),
        (f"http://alice:{PW}@proxy.corp:3128", Route(RouteKind.HTTP, "proxy.corp", 3128, "alice", PW)),
        (f"socks5://alice:{PW}@gw", Route(RouteKind.SOCKS5, "gw", 1080, "alice", PW)),
        (f"socks5h://alice:{PW}@[::1]:1081", Route(RouteKind.SOCKS5H, "::1", 1081, "alice", PW)),
        ("socks4://alice@gw", Route(RouteKind.SOCKS4, "gw", 1080, "alice", "")),
        ("http://alice:@gw:1", Route(RouteKind.HTTP, "gw", 1, "alice", "")),
        ("http://al%40ice:p%3Aw%2Fd%40x@gw:3128", Route(RouteKind.HTTP, "gw", 3128, "al@ice", "p:w/d@x")),
        ("http://alice:p@ss@gw:3128", Route(RouteKind.HTTP, "gw", 3128, "alice", "p@ss")),
    ],
)
def test_parse_proxy_url_good(url: str, route: Route) -> None:
    parsed = parse_proxy_url(url)
    assert parsed == route
    assert (parsed.username, parsed.password, parsed.source) == (route.username, route.password, EXPLICIT)


def test_parse_proxy_url_keeps_the_source() -> None:
    assert parse_proxy_url("http://gw:3128", ENV).source is ENV


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("proxy.corp:3128",
         "proxy URL 'proxy.corp:3128': expected SCHEME://HOST:PORT (e.g. http://proxy:3128)"),
        (f"alice:{PW}@proxy.corp:3128",
         "proxy URL '***@proxy.corp:3128': expected SCHEME://HOST:PORT (e.g. http://proxy:3128)"),
        (f"ftp://alice:{PW}@proxy.corp:21",
         "proxy URL 'ftp://***@proxy.corp:21': unsupported scheme 'ftp' "
         "(use http://, socks4://, socks4a://, socks5://, socks5h://)"),
        (f"https://alice:{PW}@proxy.corp:443",
         "proxy URL 'https://***@proxy.corp:443': unsupported scheme 'https' "
         "(use http://, socks4://, socks4a://, socks5://, socks5h://)"),
        (f"http://alice:{PW}@proxy.corp:notaport",
         "proxy URL 'http://***@proxy.corp:notaport': 'notaport' is not a port number (1-65535)"),
        (f"http://alice:{PW}@proxy.corp:0",
         "proxy URL 'http://***@proxy.corp:0': '0' is not a port number (1-65535)"),
        (f"http://alice:{PW}@proxy.corp:65536",
         "proxy URL 'http://***@proxy.corp:65536': '65536' is not a port number (1-65535)"),
        (f"http://alice:{PW}@proxy.corp:-1",
         "proxy URL 'http://***@proxy.corp:-1': '-1' is not a port number (1-65535)"),
        (f"http://alice:{PW}@proxy.corp:\u00b2",
         "proxy URL 'http://***@proxy.corp:\u00b2': '\u00b2' is not a port number (1-65535)"),
        (f"http://alice:{PW}@proxy.corp:3128/proxy.pac",
         "proxy URL 'http://***@proxy.corp:3128/proxy.pac': a proxy URL has no path"),
        (f"http://alice:{PW}@:3128", "proxy URL 'http://***@:3128': missing host"),
        (f"http://alice:{PW}@", "proxy URL 'http://***@': empty"),
        ("http://", "proxy URL 'http://': empty"),
        (f"http://alice:{PW}@bad_host-:3128",
         "proxy URL 'http://***@bad_host-:3128': invalid label 'bad_host-' in host name"),
        (f"http://alice:{PW}@pro xy:3128",
         "proxy URL 'http://***@pro xy:3128': host name contains white space"),
        (f"http://alice:{PW}@[::1:3128", "proxy URL 'http://***@[::1:3128': unclosed '[' in IPv6 address"),
        (f"http://alice:{PW}@a:b:c",
         "proxy URL 'http://***@a:b:c': write an IPv6 address as [ADDR]:PORT"),
        # an unencoded '/' in the password ends the authority inside it: still never shown
        (f"http://alice:{PW}/x@proxy.corp:3128",
         "proxy URL 'http://***@proxy.corp:3128': a proxy URL has no path "
         "(write a '/' in a user name or password as %2F)"),
        (f"alice:{PW}/x@proxy.corp:3128",
         "proxy URL '***@proxy.corp:3128': expected SCHEME://HOST:PORT (e.g. http://proxy:3128)"),
    ],
)
def test_parse_proxy_url_bad_never_shows_the_password(url: str, message: str) -> None:
    with pytest.raises(ProxyURLError) as info:
        parse_proxy_url(url)
    assert info.value.message == message
    assert PW not in str(info.value)
    assert "alice" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://proxy:3128", "http://proxy:3128"),
        (f"http://alice:{PW}@proxy:3128", "http://***@proxy:3128"),
        (f"http://alice:{PW}@proxy:3128/path", "http://***@proxy:3128/path"),
        (f"http://alice:p@{PW}@proxy:3128", "http://***@proxy:3128"),
        (f"http://alice:{PW}/x?y#z@proxy:3128", "http://***@proxy:3128"),
        (f"alice:{PW}@proxy", "***@proxy"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_route_display_and_repr_never_show_credentials() -> None:
    route = Route(RouteKind.HTTP, "proxy.corp", 3128, "alice", PW)
    assert route.display == "http://***@proxy.corp:3128"
    assert repr(route) == "Route('http://***@proxy.corp:3128', source='explicit')"
    assert str(route) == repr(route)
    assert repr([route]) == "[Route('http://***@proxy.corp:3128', source='explicit')]"
    for text in (route.display, repr(route), f"{route}", str((route,))):
        assert "alice" not in text
        assert PW not in text


@pytest.mark.parametrize(
    ("route", "display"),
    [
        (DIRECT, "direct"),
        (Route(RouteKind.HTTP, "proxy.corp", 3128), "http://proxy.corp:3128"),
        (Route(RouteKind.SOCKS5H, "::1", 1080, None, PW), "socks5h://***@[::1]:1080"),
        (Route(RouteKind.SOCKS4, "10.0.0.1", 1080, "alice", None), "socks4://***@10.0.0.1:1080"),
        (Route(RouteKind.SOCKS5, "gw", 1080, "", ""), "socks5://***@gw:1080"),
    ],
)
def test_route_display(route: Route, display: str) -> None:
    assert route.display == display


# --- the environment ---------------------------------------------------------------------------


def test_env_lower_case_wins() -> None:
    env = env_proxies({"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2",
                       "HTTP_PROXY": "http://upper-http:3", "all_proxy": "socks5://all:4"})
    assert env.https == Route(RouteKind.HTTP, "lower", 1, source=ENV)
    assert env.http == Route(RouteKind.HTTP, "upper-http", 3, source=ENV)
    assert env.all == Route(RouteKind.SOCKS5, "all", 4, source=ENV)
    assert env.no_proxy == ()
    assert env.configured


def test_env_empty_lower_case_counts_as_unset() -> None:
    env = env_proxies({"https_proxy": "  ", "HTTPS_PROXY": "http://upper:2"})
    assert env.https == Route(RouteKind.HTTP, "upper", 2, source=ENV)


def test_env_value_without_scheme_is_http() -> None:
    env = env_proxies({"HTTPS_PROXY": "proxy.corp:3128", "http_proxy": f"alice:{PW}@gw"})
    assert env.https == Route(RouteKind.HTTP, "proxy.corp", 3128, source=ENV)
    assert env.http == Route(RouteKind.HTTP, "gw", 80, "alice", PW, ENV)


def test_env_nothing_set() -> None:
    env = env_proxies({"PATH": "/usr/bin", "no_proxy": "example.com"})
    assert (env.http, env.https, env.all) == (None, None, None)
    assert not env.configured
    assert env.route_for("example.org", 443) == DEFAULT_DIRECT
    assert env.route_for("example.org", 443).source is RouteSource.DEFAULT


def test_env_no_proxy_list_is_normalised() -> None:
    env = env_proxies({"NO_PROXY": " Example.COM, .corp.local  10.0.0.0/8,,[::1] "})
    assert env.no_proxy == ("example.com", ".corp.local", "10.0.0.0/8", "[::1]")
    assert env_proxies({"no_proxy": "a", "NO_PROXY": "b"}).no_proxy == ("a",)


@pytest.mark.parametrize(
    ("entries", "host", "matches"),
    [
        (("*",), "anything.example", True),
        (("*",), "10.1.2.3", True),
        ((".example.com",), "example.com", True),
        ((".example.com",), "www.example.com", True),
        ((".example.com",), "badexample.com", False),
        (("example.com",), "example.com", True),
        (("example.com",), "a.b.example.com", True),
        (("example.com",), "WWW.Example.COM.", True),
        (("example.com",), "example.com.evil", False),
        (("example.com",), "notexample.com", False),
        (("example.com.",), "www.example.com", True),
        (("*.example.com",), "a.example.com", True),
        (("other.org", "example.com"), "x.example.com", True),
        (("192.168.1.10",), "192.168.1.10", True),
        (("192.168.1.10",), "192.168.1.11", False),
        (("127.0.0.0/8",), "127.1.2.3", True),
        (("127.0.0.0/8",), "128.0.0.1", False),
        (("127.0.0.0/8",), "localhost", False),
        (("::1",), "::1", True),
        (("::1",), "[::1]", True),
        (("[::1]",), "::1", True),
        (("fd00::/8",), "fd12::1", True),
        (("fd00::/8",), "fe80::1", False),
        (("example.com",), "1.2.3.4", False),
        (("1.2.3.4",), "example.com", False),
        (("",), "example.com", False),
        ((".",), "example.com", False),
        ((), "example.com", False),
    ],
)
def test_no_proxy_matches(entries: tuple[str, ...], host: str, matches: bool) -> None:
    assert no_proxy_matches(entries, host) is matches


def test_scheme_for_port() -> None:
    assert [scheme_for_port(p) for p in (80, 443, 8080, 8443)] == ["http", "https", "https", "https"]


def test_route_for_picks_the_proxy_by_port() -> None:
    env = env_proxies({"HTTPS_PROXY": "http://secure:3128", "HTTP_PROXY": "http://plain:3129",
                       "NO_PROXY": ".internal.example,127.0.0.0/8"})
    https = Route(RouteKind.HTTP, "secure", 3128, source=ENV)
    http = Route(RouteKind.HTTP, "plain", 3129, source=ENV)
    assert env.route_for("a.example.com", 443) == https
    assert env.route_for("a.example.com", 8443) == https
    assert env.route_for("a.example.com", 80) == http
    bypass = env.route_for("svc.internal.example", 443)
    assert bypass == Route(RouteKind.DIRECT, source=ENV)
    assert (bypass.display, bypass.source) == ("direct", ENV)
    assert env.route_for("127.0.0.1", 80) == Route(RouteKind.DIRECT, source=ENV)


def test_route_for_falls_back_to_all_proxy() -> None:
    env = env_proxies({"ALL_PROXY": "socks5h://gw:1080", "http_proxy": "http://plain:3129"})
    everything = Route(RouteKind.SOCKS5H, "gw", 1080, source=ENV)
    assert env.route_for("a.example.com", 443) == everything
    assert env.route_for("a.example.com", 80) == Route(RouteKind.HTTP, "plain", 3129, source=ENV)
    only_all = env_proxies({"all_proxy": "socks5h://gw:1080"})
    assert only_all.route_for("a.example.com", 80) == everything


def test_route_for_direct_when_no_proxy_for_the_scheme() -> None:
    env = env_proxies({"HTTPS_PROXY": "http://secure:3128"})
    assert env.route_for("a.example.com", 80) == DEFAULT_DIRECT


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"HTTPS_PROXY": f"http://alice:{PW}@proxy:notaport"},
         "HTTPS_PROXY: proxy URL 'http://***@proxy:notaport': 'notaport' is not a port number (1-65535)"),
        ({"https_proxy": f"ftp://alice:{PW}@proxy:21"},
         "HTTPS_PROXY: proxy URL 'ftp://***@proxy:21': unsupported scheme 'ftp' "
         "(use http://, socks4://, socks4a://, socks5://, socks5h://)"),
        ({"HTTP_PROXY": f"alice:{PW}@proxy:99999"},
         "HTTP_PROXY: proxy URL 'http://***@proxy:99999': '99999' is not a port number (1-65535)"),
        ({"ALL_PROXY": f"socks5://alice:{PW}@proxy/x"},
         "ALL_PROXY: proxy URL 'socks5://***@proxy/x': a proxy URL has no path"),
    ],
)
def test_bad_env_proxy_names_the_variable_not_the_password(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ProxyURLError) as info:
        env_proxies(environ)
    assert info.value.message == message
    assert PW not in str(info.value)
