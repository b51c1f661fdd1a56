"""WPAD over DNS: the candidate names, the public-suffix stop, and discovery in the lab on loopback."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import anyio
import pytest

from scanner.discovery.pac import PacLimits
from scanner.discovery.sources import SourceConfig, run_sources
from scanner.discovery.wpad import WpadResult, WpadStep, discover, parse_resolv_conf, wpad_names
from scanner.lab.dnsserver import StaticZone, serve_dns
from scanner.lab.pacserver import serve_files
from scanner.models import RouteKind, RouteSource
from scanner.probes.dns import DnsStage


@pytest.mark.parametrize(
    ("suffix", "names"),
    [
        ("a.b.contoso.com", ["wpad.a.b.contoso.com", "wpad.b.contoso.com", "wpad.contoso.com"]),
        ("corp.contoso.co.uk", ["wpad.corp.contoso.co.uk", "wpad.contoso.co.uk"]),
        ("Contoso.COM.", ["wpad.contoso.com"]),
        ("eu.contoso.com.au", ["wpad.eu.contoso.com.au", "wpad.contoso.com.au"]),
        ("com", []),
        ("co.uk", []),
        ("corp", []),  # a single unlisted label counts as public: never wpad.corp
        ("", []),
        ("bad..name", []),
    ],
)
def test_wpad_names_stop_before_a_public_suffix(suffix: str, names: list[str]) -> None:
    assert wpad_names(suffix) == names


@pytest.mark.parametrize(
    ("text", "suffixes"),
    [
        ("nameserver 127.0.0.1\nsearch corp.contoso.com contoso.com\n", ("corp.contoso.com", "contoso.com")),
        ("domain corp.contoso.com\n", ("corp.contoso.com",)),
        ("domain d.example\nsearch s.example\n", ("s.example",)),
        ("search a.example\nsearch b.example # later wins\n", ("b.example",)),
        ("nameserver 127.0.0.1\n", ()),
        ("; search x.example\n#search y.example\n", ()),
    ],
)
def test_parse_resolv_conf(text: str, suffixes: tuple[str, ...]) -> None:
    assert parse_resolv_conf(text) == suffixes


def test_step_summaries() -> None:
    assert WpadStep("wpad.a.example", ()).summary == "wpad.a.example: does not resolve"
    step = WpadStep("wpad.b.example", ("127.0.3.1",), "http://wpad.b.example/wpad.dat", 404)
    assert step.summary == ("wpad.b.example: resolves to 127.0.3.1; GET http://wpad.b.example/wpad.dat: "
                            "HTTP 404")


WPAD_DAT = b"""function FindProxyForURL(url, host) {
  if (isInNet(dnsResolve(host), "127.0.9.0", "255.255.255.0")) return "DIRECT";
  return "PROXY 127.0.0.1:3128; DIRECT";
}"""
ZONE = StaticZone({
    "wpad.b.contoso.com": ["127.0.3.1"],  # resolves, serves no wpad.dat (404)
    "wpad.contoso.com": ["127.0.3.2"],  # serves it
    "wpad.com": ["127.0.3.3"],  # must never be asked
    "inside.contoso.com": ["127.0.9.9"],
})


def test_discovery_in_the_lab_follows_the_devolution_order() -> None:
    asked: list[str] = []

    async def main() -> tuple[WpadResult, list[str]]:
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(serve_dns, ZONE, host="127.0.0.1"))
            await tg.start(partial(serve_files, {"/other": b"x"}, host="127.0.3.1", port=80))
            await tg.start(partial(serve_files, {"/wpad.dat": WPAD_DAT}, host="127.0.3.2", port=80))
            dns = DnsStage([f"127.0.0.1:{port}"], 2.0)

            async def resolve(name: str) -> Sequence[str]:
                asked.append(name)
                result = await dns.lookup(name)
                return result.addresses

            try:
                wpad = await discover(["a.b.contoso.com"], resolve, 2.0)
                found = await run_sources(
                    SourceConfig(wpad=True, dns_suffixes=("a.b.contoso.com",)),
                    [("https://inside.contoso.com/", "inside.contoso.com"),
                     ("https://www.microsoft.com/", "www.microsoft.com")],
                    resolve, 2.0, PacLimits(timeout=5.0))
            finally:
                await dns.close()
            tg.cancel_scope.cancel()
        routes = [r.route() for r in found.reports]
        assert [(r.kind, r.host, r.port, r.source) for r in routes] == [
            (RouteKind.DIRECT, "", 0, RouteSource.WPAD),
            (RouteKind.HTTP, "127.0.0.1", 3128, RouteSource.WPAD)]
        assert routes[1].explanation == (
            "http://wpad.contoso.com/wpad.dat returned 'PROXY 127.0.0.1:3128; DIRECT'; "
            "WinHTTP uses only the first entry (PROXY 127.0.0.1:3128) and never fails over")
        return wpad, asked

    wpad, asked = anyio.run(main)
    assert [s.summary for s in wpad.steps] == [
        "wpad.a.b.contoso.com: does not resolve",
        "wpad.b.contoso.com: resolves to 127.0.3.1; GET http://wpad.b.contoso.com/wpad.dat: HTTP 404",
        f"wpad.contoso.com: resolves to 127.0.3.2; GET http://wpad.contoso.com/wpad.dat: HTTP 200 "
        f"({len(WPAD_DAT)} bytes); used",
    ]
    assert wpad.url == "http://wpad.contoso.com/wpad.dat"
    assert wpad.script == WPAD_DAT
    assert "wpad.com" not in asked


def test_nothing_found_is_reported_not_raised() -> None:
    async def resolve(name: str) -> Sequence[str]:
        return ()

    async def main() -> None:
        found = await run_sources(SourceConfig(wpad=True, dns_suffixes=("x.contoso.com",)),
                                  [("https://a.example/", "a.example")], resolve, 1.0)
        assert found.wpad is not None
        assert [s.summary for s in found.wpad.steps] == ["wpad.x.contoso.com: does not resolve",
                                                         "wpad.contoso.com: does not resolve"]
        route = found.reports[0].route()
        assert (route.kind, route.source) == (RouteKind.DIRECT, RouteSource.WPAD)
        assert route.explanation == ("WPAD found no wpad.dat (2 names tried): not found; "
                                     "the source failed, so WinHTTP goes direct")

    anyio.run(main)
