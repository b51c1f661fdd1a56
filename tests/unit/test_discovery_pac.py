"""PAC evaluation: the helpers (pure and through the sandboxed child), results, hostile scripts."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import anyio
import pytest

from scanner.discovery.decision import DIRECT_ENTRY, EntryKind, ProxyEntry, parse_pac_result
from scanner.discovery.pac import PacAnswer, PacError, PacLimits, PacRun, evaluate, pac_decision
from scanner.discovery.pachelpers import (
    Clock,
    date_range,
    is_in_net,
    is_in_net_ex,
    sh_exp_match,
    sort_ip_address_list,
    time_range,
    weekday_range,
)
from scanner.models import RouteKind, RouteSource

# Wednesday 2025-03-05 14:30:15 local; UTC is one hour behind (local = UTC+1)
CLOCK = Clock(datetime(2025, 3, 5, 14, 30, 15), datetime(2025, 3, 5, 13, 30, 15))
ZONE = {
    "known.example": ("10.1.2.3", "2001:db8::1"),
    "v6only.example": ("2001:db8::2",),
    "proxy.corp": ("10.9.9.9",),
}


async def fake_dns(name: str) -> Sequence[str]:
    return ZONE.get(name, ())


DEFAULT_LIMITS = PacLimits()


def run_pac(script: str, calls: Sequence[tuple[str, str]], *, limits: PacLimits = DEFAULT_LIMITS,
            my_ips: Sequence[str] = ("192.0.2.10", "2001:db8::10")) -> PacRun:
    async def go() -> PacRun:
        return await evaluate(script, calls, fake_dns, origin="test.pac", clock=CLOCK, my_ips=my_ips,
                              limits=limits)
    return anyio.run(go)


# ------------------------------------------------------------------ pure helpers

@pytest.mark.parametrize(
    ("text", "pattern", "expected"),
    [
        ("www.contoso.com", "*.contoso.com", True),
        ("contoso.com", "*.contoso.com", False),
        ("http://a.b/c", "http://*", True),
        ("abc", "a?c", True),
        ("abbc", "a?c", False),
        ("a.c", "a.c", True),
        ("abc", "a.c", False),
        ("a+c", "a+c", True),
        ("x[1]", "x[1]", True),
        ("x1", "x[1]", False),
        ("", "*", True),
        ("ABC", "abc", False),
    ],
)
def test_sh_exp_match(text: str, pattern: str, expected: bool) -> None:
    assert sh_exp_match(text, pattern) is expected


@pytest.mark.parametrize(
    ("address", "pattern", "mask", "expected"),
    [
        ("10.1.2.3", "10.0.0.0", "255.0.0.0", True),
        ("10.1.2.3", "10.1.0.0", "255.255.0.0", True),
        ("10.1.2.3", "10.2.0.0", "255.255.0.0", False),
        ("10.1.2.3", "10.1.2.3", "255.255.255.255", True),
        ("10.1.2.4", "10.1.2.3", "255.255.255.255", False),
        ("192.168.1.130", "192.168.1.128", "255.255.255.128", True),
        ("192.168.1.127", "192.168.1.128", "255.255.255.128", False),
        ("1.2.3.4", "0.0.0.0", "0.0.0.0", True),
        ("2001:db8::1", "10.0.0.0", "255.0.0.0", False),
        ("10.1.2.3", "bad", "255.0.0.0", False),
    ],
)
def test_is_in_net(address: str, pattern: str, mask: str, expected: bool) -> None:
    assert is_in_net(address, pattern, mask) is expected


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        ("2001:db8::1", "2001:db8::/32", True),
        ("2001:db9::1", "2001:db8::/32", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "10.1.2.3/32", True),
        ("10.1.2.4", "10.1.2.3/32", False),
        ("10.1.2.3", "2001:db8::/32", False),
        ("::1", "::1/128", True),
        ("x", "::/0", False),
        ("10.1.2.3", "10.0.0.0/33", False),
    ],
)
def test_is_in_net_ex(address: str, prefix: str, expected: bool) -> None:
    assert is_in_net_ex(address, prefix) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.2.3.9;2001:4898:28:3:201:2ff:feea:fc14;::1;127.0.0.1;::9",
         "::1;::9;2001:4898:28:3:201:2ff:feea:fc14;10.2.3.9;127.0.0.1"),
        ("10.0.0.10;10.0.0.9", "10.0.0.9;10.0.0.10"),
        ("1.1.1.1", "1.1.1.1"),
        ("", ""),
        ("1.1.1.1;nope", ""),
    ],
)
def test_sort_ip_address_list(text: str, expected: str) -> None:
    assert sort_ip_address_list(text) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["WED"], True),
        (["wed"], True),
        (["THU"], False),
        (["MON", "FRI"], True),
        (["THU", "TUE"], False),
        (["FRI", "WED"], True),  # wraps past Saturday
        (["SAT", "SUN"], False),
        (["WED", "GMT"], True),
        (["XYZ"], False),
        ([], False),
        (["MON", "TUE", "WED"], False),
    ],
)
def test_weekday_range(args: list[object], expected: bool) -> None:
    assert weekday_range(args, CLOCK) is expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([5], True),
        ([6], False),
        (["MAR"], True),
        (["APR"], False),
        ([2025], True),
        ([2024], False),
        ([1, 15], True),
        ([6, 15], False),
        (["JAN", "MAR"], True),
        (["APR", "DEC"], False),
        (["NOV", "MAR"], True),  # wraps past December
        ([2024, 2026], True),
        ([2026, 2027], False),
        ([1, "MAR", 5, "MAR"], True),
        ([6, "MAR", 10, "MAR"], False),
        (["FEB", 2025, "APR", 2025], True),
        (["APR", 2025, "FEB", 2026], False),
        ([1, "JAN", 2025, 5, "MAR", 2025], True),
        ([6, "MAR", 2025, 1, "JAN", 2026], False),
        ([5, "GMT"], True),
        (["5"], True),
        ([0], False),
        ([], False),
        (["MAR", 5, 2025], False),
        ([1, "MAR", "APR", 2], False),
    ],
)
def test_date_range(args: list[object], expected: bool) -> None:
    assert date_range(args, CLOCK) is expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([14], True),
        ([13], False),
        ([13, "GMT"], True),
        ([9, 17], True),
        ([9, 14], False),  # the end hour is excluded
        ([14, 15], True),
        ([22, 6], False),
        ([12, 6], True),  # wraps midnight
        ([14, 30, 14, 31], True),
        ([14, 31, 15, 0], False),
        ([14, 30, 15, 14, 30, 16], True),
        ([14, 30, 16, 14, 30, 20], False),
        ([1, 2, 3], False),
        (["x"], False),
    ],
)
def test_time_range(args: list[object], expected: bool) -> None:
    assert time_range(args, CLOCK) is expected


# ------------------------------------------------------------------ results

@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("DIRECT", (DIRECT_ENTRY,)),
        ("PROXY p:8080", (ProxyEntry(EntryKind.PROXY, "p", 8080),)),
        ("proxy P.corp:8080;  direct", (ProxyEntry(EntryKind.PROXY, "p.corp", 8080), DIRECT_ENTRY)),
        ("PROXY p", (ProxyEntry(EntryKind.PROXY, "p", 80),)),
        ("HTTP h:1; HTTPS s:2; SOCKS a:3; SOCKS4 b:4; SOCKS5 c:5;",
         (ProxyEntry(EntryKind.HTTP, "h", 1), ProxyEntry(EntryKind.HTTPS, "s", 2),
          ProxyEntry(EntryKind.SOCKS, "a", 3), ProxyEntry(EntryKind.SOCKS4, "b", 4),
          ProxyEntry(EntryKind.SOCKS5, "c", 5))),
        ("PROXY [2001:db8::1]:3128", (ProxyEntry(EntryKind.PROXY, "2001:db8::1", 3128),)),
    ],
)
def test_parse_pac_result(text: str, entries: tuple[ProxyEntry, ...]) -> None:
    assert parse_pac_result(text) == entries


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty result"),
        (" ; ", "empty result"),
        ("FTP x:1", "unknown keyword 'FTP'"),
        ("DIRECT x:1", "DIRECT takes no address"),
        ("PROXY", "expected 'PROXY HOST:PORT'"),
        ("PROXY a:1 b:2", "expected 'PROXY HOST:PORT'"),
        ("PROXY a:0", "'0' is not a port number"),
        ("PROXY a_b*:1", "invalid label"),
    ],
)
def test_parse_pac_result_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_pac_result(text)
    assert message in str(info.value)


def test_decision_winhttp_takes_the_first_entry_browsers_fail_over() -> None:
    answer = PacAnswer("PROXY p1:8080; PROXY p2:8080; DIRECT")
    decision = pac_decision(RouteSource.PAC, "https://a.example/", answer, "proxy.pac")
    assert decision.winhttp == ProxyEntry(EntryKind.PROXY, "p1", 8080)
    assert [str(e) for e in decision.entries] == ["PROXY p1:8080", "PROXY p2:8080", "DIRECT"]
    route = decision.route()
    assert (route.kind, route.host, route.port, route.source) == (RouteKind.HTTP, "p1", 8080, RouteSource.PAC)
    assert route.explanation == ("proxy.pac returned 'PROXY p1:8080; PROXY p2:8080; DIRECT'; "
                                 "WinHTTP uses only the first entry (PROXY p1:8080) and never fails over")


def test_decision_socks_first_winhttp_goes_direct() -> None:
    decision = pac_decision(RouteSource.PAC, "https://a.example/", PacAnswer("SOCKS5 s:1080; PROXY p:1"), "x")
    assert decision.winhttp == DIRECT_ENTRY
    assert decision.route().kind is RouteKind.DIRECT
    assert decision.winhttp_note == ("WinHTTP has no SOCKS support: it cannot use SOCKS5 s:1080 "
                                     "and goes direct")


@pytest.mark.parametrize(
    ("answer", "reason", "error"),
    [
        (PacAnswer(None, "Error: boom"), "x failed", "Error: boom"),
        (PacAnswer("GOPHER g:1"), "x returned 'GOPHER g:1'",
         "not a PAC result: unknown keyword 'GOPHER' in 'GOPHER g:1'"),
    ],
)
def test_failed_decision_goes_direct(answer: PacAnswer, reason: str, error: str) -> None:
    decision = pac_decision(RouteSource.PAC, "https://a.example/", answer, "x")
    assert (decision.reason, decision.error, decision.winhttp) == (reason, error, DIRECT_ENTRY)
    assert decision.route().explanation == f"{reason}: {error}; the source failed, so WinHTTP goes direct"


# ------------------------------------------------------------------ through the sandbox

EVAL_PAC = "function FindProxyForURL(url, host) { return String(JSON.stringify(eval(url))); }"
HELPER_TABLE = [
    ('isPlainHostName("intranet")', True),
    ('isPlainHostName("www.contoso.com")', False),
    ('dnsDomainIs("www.contoso.com", ".contoso.com")', True),
    ('dnsDomainIs("www.contoso.com", ".example.com")', False),
    ('dnsDomainIs("WWW.Contoso.com", ".contoso.COM")', True),
    ('localHostOrDomainIs("www.contoso.com", "www.contoso.com")', True),
    ('localHostOrDomainIs("www", "www.contoso.com")', True),
    ('localHostOrDomainIs("www.example.com", "www.contoso.com")', False),
    ('dnsDomainLevels("www")', 0),
    ('dnsDomainLevels("www.contoso.com")', 2),
    ('shExpMatch("http://a.contoso.com/x", "*.contoso.com/*")', True),
    ('shExpMatch("a.b", "a?b")', True),
    ('isResolvable("known.example")', True),
    ('isResolvable("v6only.example")', False),
    ('isResolvable("missing.example")', False),
    ('dnsResolve("known.example")', "10.1.2.3"),
    ('dnsResolve("missing.example")', None),
    ('dnsResolve("10.4.4.4")', "10.4.4.4"),
    ('isInNet("known.example", "10.1.0.0", "255.255.0.0")', True),
    ('isInNet("known.example", "10.2.0.0", "255.255.0.0")', False),
    ('isInNet("10.1.2.3", "10.0.0.0", "255.0.0.0")', True),
    ('isInNet("missing.example", "0.0.0.0", "0.0.0.0")', False),
    ('myIpAddress()', "192.0.2.10"),
    ('myIpAddressEx()', "192.0.2.10;2001:db8::10"),
    ('dnsResolveEx("known.example")', "10.1.2.3;2001:db8::1"),
    ('dnsResolveEx("missing.example")', ""),
    ('isResolvableEx("v6only.example")', True),
    ('isResolvableEx("missing.example")', False),
    ('isInNetEx("v6only.example", "2001:db8::/32")', True),
    ('isInNetEx("known.example", "10.1.2.0/24")', True),
    ('isInNetEx("2001:db8::5", "2001:db8::/126")', False),
    ('isInNetEx("missing.example", "::/0")', False),
    ('sortIpAddressList("10.0.0.2;::1;10.0.0.1")', "::1;10.0.0.1;10.0.0.2"),
    ('sortIpAddressList("bad")', False),
    ('getClientVersion()', "1.0"),
    ('weekdayRange("MON", "FRI")', True),
    ('weekdayRange("SAT")', False),
    ('dateRange("MAR")', True),
    ('dateRange(1, "JAN", 2025, 4, "MAR", 2025)', False),
    ('timeRange(9, 17)', True),
    ('timeRange(14, 30, 14, 31)', True),
    ('timeRange(13, "GMT")', True),
    ('alert("hello")', None),
]


def test_every_helper_through_the_sandbox() -> None:
    result = run_pac(EVAL_PAC, [(expr, "x") for expr, _ in HELPER_TABLE])
    got = [json.loads(a.raw) if a.raw not in (None, "undefined") else None for a in result.answers]
    assert [a.error for a in result.answers] == [None] * len(HELPER_TABLE)
    assert list(zip([e for e, _ in HELPER_TABLE], got, strict=True)) == HELPER_TABLE
    assert result.alerts == ("hello",)
    assert ("known.example", ("10.1.2.3", "2001:db8::1")) in result.lookups
    assert all(name != "10.4.4.4" for name, _ in result.lookups)  # IP literals are not looked up


def test_find_proxy_for_url_ex_wins_and_results_keep_order() -> None:
    script = """
    function FindProxyForURL(url, host) { return "PROXY legacy:1"; }
    function FindProxyForURLEx(url, host) {
      if (isPlainHostName(host) || dnsDomainIs(host, ".corp")) return "DIRECT";
      return "PROXY proxy.corp:8080; DIRECT";
    }"""
    result = run_pac(script, [("https://intranet/", "intranet"), ("https://www.microsoft.com/",
                                                                   "www.microsoft.com")])
    assert [a.raw for a in result.answers] == ["DIRECT", "PROXY proxy.corp:8080; DIRECT"]


# ------------------------------------------------------------------ hostile scripts

def test_cannot_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCANNER_PAC_SECRET", "env-secret-42")
    script = """
    var late = "untouched";
    try { import("std").then(function (m) { late = m.getenv("SCANNER_PAC_SECRET"); },
                             function (e) { late = "rejected"; }); } catch (e) { late = "no import"; }
    function FindProxyForURL(url, host) {
      var seen = [];
      function t(f) { try { seen.push(String(f())); } catch (e) { seen.push(e.name); } }
      t(function () { return process.env.SCANNER_PAC_SECRET; });
      t(function () { return std.getenv("SCANNER_PAC_SECRET"); });
      t(function () { return os.getenv("SCANNER_PAC_SECRET"); });
      t(function () { return require("process").env.SCANNER_PAC_SECRET; });
      t(function () { return Deno.env.get("SCANNER_PAC_SECRET"); });
      t(function () { return typeof globalThis.environ; });
      return seen.join(",") + "," + late;
    }"""
    result = run_pac(script, [("https://a.example/", "a.example")])
    raw = result.answers[0].raw
    assert raw == ("ReferenceError,ReferenceError,ReferenceError,ReferenceError,ReferenceError,"
                   "undefined,untouched")
    assert "env-secret-42" not in raw


def test_cannot_read_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("file-secret-17")
    script = f"""
    var path = {str(secret)!r};
    var late = "untouched";
    import(path).then(function (m) {{ late = "loaded"; }}, function (e) {{ late = "rejected"; }});
    function FindProxyForURL(url, host) {{
      var seen = [];
      function t(f) {{ try {{ seen.push(String(f())); }} catch (e) {{ seen.push(e.name); }} }}
      t(function () {{ return std.loadFile(path); }});
      t(function () {{ return require("fs").readFileSync(path); }});
      t(function () {{ return new XMLHttpRequest(); }});
      t(function () {{ return fetch("file://" + path); }});
      t(function () {{ return readFile(path); }});
      t(function () {{ return load(path); }});
      return seen.join(",") + "," + late;
    }}"""
    result = run_pac(script, [("https://a.example/", "a.example")])
    raw = result.answers[0].raw
    assert raw == ("ReferenceError,ReferenceError,ReferenceError,ReferenceError,ReferenceError,"
                   "ReferenceError,untouched")
    assert "file-secret-17" not in raw


def test_endless_loop_while_loading_is_stopped_at_the_limit() -> None:
    start = time.monotonic()
    with pytest.raises(PacError) as info:
        run_pac("while (true) {}", [("https://a.example/", "a.example")], limits=PacLimits(timeout=1.0))
    assert time.monotonic() - start < 3.0
    assert info.value.message == "test.pac: the PAC script did not load within 1s (it was stopped)"


def test_endless_loop_in_a_call_is_stopped_and_earlier_answers_kept() -> None:
    script = 'function FindProxyForURL(url, host) { if (host == "loop") { for (;;) {} } return "DIRECT"; }'
    start = time.monotonic()
    result = run_pac(script, [("https://ok/", "ok"), ("https://loop/", "loop"), ("https://after/", "after")],
                     limits=PacLimits(timeout=1.0))
    assert time.monotonic() - start < 3.0
    stalled = PacAnswer(None, "the script ran past its time limit of 1s and was stopped")
    assert result.answers == (PacAnswer("DIRECT"), stalled, stalled)


def test_endless_dns_questions_are_capped() -> None:
    script = ('function FindProxyForURL(url, host) { var n = 0; '
              'for (var i = 0; i < 100000; i++) { if (isResolvable("known.example")) n++; } '
              'return "DIRECT " + n; }')
    result = run_pac(script, [("https://a/", "a")], limits=PacLimits(timeout=5.0))
    assert result.answers[0].raw == "DIRECT 100"
    assert len(result.lookups) == 100


def test_huge_script_is_refused() -> None:
    script = "//" + "x" * (1 << 20)
    with pytest.raises(PacError, match=r"test.pac: PAC script larger than 1024 KB \(WinHTTP's limit"):
        run_pac(script, [("https://a/", "a")])


def test_memory_bomb_fails_the_call() -> None:
    script = 'function FindProxyForURL(u, h) { var a = []; for (;;) a.push(new Array(100000).fill(1)); }'
    result = run_pac(script, [("https://a/", "a")], limits=PacLimits(timeout=5.0))
    assert result.answers[0].raw is None
    assert result.answers[0].error in ("InternalError: out of memory", "RangeError: out of memory")


@pytest.mark.parametrize(
    ("script", "error"),
    [
        ('function FindProxyForURL(u, h) { throw new Error("boom"); }', "Error: boom"),
        ("function FindProxyForURL(u, h) { return 42; }", "FindProxyForURL returned number, not a string"),
        ("function FindProxyForURL(u, h) { }", "FindProxyForURL returned undefined, not a string"),
        ("function FindProxyForURL(u, h) { return null; }", "FindProxyForURL returned object, not a string"),
        ("function FindProxyForURL(u, h) { return FindProxyForURL(u, h); }", "InternalError: stack overflow"),
    ],
)
def test_broken_calls_are_errors_not_crashes(script: str, error: str) -> None:
    result = run_pac(script, [("https://a/", "a")])
    assert result.answers == (PacAnswer(None, error),)


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("function FindProxyForURL(u, h) { return 'DIRECT' ", "SyntaxError"),
        ('throw new Error("at load")', "Error: at load"),
        ("var x = 1;", "the script defines no FindProxyForURL function"),
    ],
)
def test_scripts_that_do_not_load_are_pac_errors(script: str, message: str) -> None:
    with pytest.raises(PacError) as info:
        run_pac(script, [("https://a/", "a")])
    assert info.value.message.startswith(f"test.pac: the PAC script does not load: {message}")
