"""`scanner proxy` and the discovery options of `scanner check`: flags, the run, the output."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import IO, Any, TypeVar

import orjson

from scanner.argtypes import number_in
from scanner.discovery.analyzer import analyzer_paths, routes_for_url
from scanner.discovery.decision import Decision, url_for
from scanner.discovery.sources import Discovery, SourceConfig, endpoint_targets, run_sources
from scanner.discovery.wpad import Resolve, system_suffixes
from scanner.errors import UsageError
from scanner.models import DnsStatus, Route
from scanner.names import is_ip_literal, to_ascii, validate_hostname
from scanner.probes.dns import DnsStage, parse_dns_server
from scanner.routes import env_proxies
from scanner.runtime import run

T = TypeVar("T")


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--winhttp", metavar="FILE|system",
                        help="the static WinHTTP setting: a file holding `netsh winhttp show proxy` "
                             "or `reg query` output of WinHttpSettings; `system` reads the registry")
    parser.add_argument("--pac", metavar="URL|FILE", help="a PAC script (http:// URL or file)")
    parser.add_argument("--wpad", action="store_true", help="find a PAC script with WPAD over DNS")
    parser.add_argument("--dns-suffix", action="append", default=[], metavar="DOMAIN",
                        help="DNS suffix for WPAD (repeatable; default: resolv.conf's search domains)")
    parser.add_argument("--pac-timeout", type=_pac_timeout, default=10.0, metavar="SECONDS",
                        help="hard time limit of one PAC evaluation (default: 10)")
    parser.add_argument("--my-ip", action="append", type=_ip_address, default=[], metavar="IP",
                        help="what the PAC's myIpAddress() returns (the first IPv4) and "
                             "myIpAddressEx() lists (repeatable; default: 127.0.0.1)")


def add_analyzer_arguments(parser: argparse.ArgumentParser) -> None:
    """`scanner check --analyzer`: the Defender client analyzer's paths, each its own route."""
    parser.add_argument("--analyzer", action="store_true",
                        help="check every endpoint along each of the Defender client analyzer's "
                             "paths: static WinHTTP proxy, WPAD, proxy disabled, named proxy, "
                             "command-line proxy (--proxy); 'not_configured' where one does not exist")
    parser.add_argument("--named-proxy", metavar="HOST:PORT",
                        help="with --analyzer: the named proxy (the TelemetryProxyServer policy value)")


_pac_timeout = number_in(0.1, 600, "seconds")


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def add_proxy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="+", metavar="URL|HOST", help="URLs, HOST or HOST:PORT")
    add_source_arguments(parser)
    parser.add_argument("--dns-server", action="append", default=[], metavar="IP[:PORT]",
                        help="DNS server for the PAC's DNS helpers and WPAD (repeatable)")
    parser.add_argument("--timeout", type=float, default=3.0, metavar="SECONDS",
                        help="time limit of each DNS lookup and HTTP fetch (default: 3)")
    parser.add_argument("--format", choices=("jsonl", "console"), default=None,
                        help="stdout format (default: console on a terminal, else jsonl)")


def dns_suffix(text: str) -> str:
    """A --dns-suffix value: a DNS name (IDN in its ASCII form), never an address."""
    name = to_ascii(text.strip().lower().rstrip("."))
    if is_ip_literal(name) or all(part.isdigit() for part in name.split(".") if part):
        raise UsageError(f"--dns-suffix {text!r}: expected a DNS domain, not an address")
    problem = validate_hostname(name)
    if problem:
        raise UsageError(f"--dns-suffix {text!r}: {problem}")
    return name


def source_config(args: argparse.Namespace, environ: Mapping[str, str], with_env: bool) -> SourceConfig:
    given = tuple(dict.fromkeys(dns_suffix(text) for text in args.dns_suffix))
    suffixes = given or (system_suffixes() if args.wpad else ())
    my_ips = tuple(dict.fromkeys(args.my_ip)) or ("127.0.0.1",)
    if len(my_ips) > 16:
        raise UsageError("at most 16 --my-ip addresses")
    return SourceConfig(args.winhttp, args.pac, args.wpad, suffixes,
                        env_proxies(environ) if with_env else None, my_ips)


async def _with_resolver(servers: Sequence[str], timeout: float,
                         body: Callable[[Resolve], Awaitable[T]]) -> T:
    dns = DnsStage(servers or None, timeout)

    async def resolve(name: str) -> Sequence[str]:
        name = name.strip().rstrip(".").lower()
        if not name or (not is_ip_literal(name) and validate_hostname(name)):
            return ()
        result = await dns.lookup(name)
        return result.addresses if result.status is DnsStatus.RESOLVED else ()

    try:
        return await body(resolve)
    finally:
        await dns.close()


def discover_for(config: SourceConfig, targets: Sequence[tuple[str, str]], servers: Sequence[str],
                 timeout: float, pac_timeout: float = 10.0) -> Discovery:
    from scanner.discovery.pac import PacLimits  # noqa: PLC0415

    async def body(resolve: Resolve) -> Discovery:
        return await run_sources(config, targets, resolve, timeout, PacLimits(timeout=pac_timeout))

    return run(partial(_with_resolver, servers, timeout, body))


def sensor_routes(args: argparse.Namespace, pairs: Sequence[tuple[str, int]],
                  servers: Sequence[str]) -> dict[tuple[str, int], Route]:
    """For `scanner check`: the route WinHTTP would take to each (host, port)."""
    config = source_config(args, {}, with_env=False)
    if not config.any:
        return {}
    found = discover_for(config, endpoint_targets(pairs), servers, args.timeout, args.pac_timeout)
    return {pair: report.route() for pair, report in zip(pairs, found.reports, strict=True)}


def analyzer_routes(args: argparse.Namespace, pairs: Sequence[tuple[str, int]], servers: Sequence[str],
                    proxies: Sequence[Route]) -> dict[tuple[str, int], tuple[Route, ...]]:
    """For `scanner check --analyzer`: every path to each (host, port), `none` where there is none."""
    fixed = analyzer_paths(args.named_proxy, proxies)
    config = source_config(args, {}, with_env=False)
    if not config.any:
        return {pair: routes_for_url(None, fixed) for pair in pairs}
    found = discover_for(config, endpoint_targets(pairs), servers, args.timeout, args.pac_timeout)
    return {pair: routes_for_url(report, fixed) for pair, report in zip(pairs, found.reports, strict=True)}


# ------------------------------------------------------------------ output

def _decision_fields(decision: Decision) -> dict[str, Any]:
    return {
        "source": decision.source.value,
        "entries": [str(e) for e in decision.entries],
        "winhttp": str(decision.winhttp),
        "reason": decision.reason,
        "error": decision.error,
        "note": decision.winhttp_note or None,
    }


def discovery_lines(found: Discovery) -> list[dict[str, Any]]:
    """The JSON lines of `scanner proxy`: WPAD steps first, then one line per URL."""
    lines: list[dict[str, Any]] = []
    if found.wpad is not None:
        lines.append({"event": "wpad", "url": found.wpad.url, "steps": [
            {"name": s.name, "addresses": list(s.addresses), "url": s.url, "status": s.status,
             "detail": s.detail, "used": s.used} for s in found.wpad.steps]})
    for source, pac_run in found.pac_runs:
        if pac_run.lookups or pac_run.alerts:
            lines.append({"event": "pac", "source": source.value,
                          "dns": [{"name": n, "addresses": list(a)} for n, a in pac_run.lookups],
                          "alerts": list(pac_run.alerts)})
    for report in found.reports:
        route = report.route()
        lines.append({"event": "proxy", "url": report.url, "host": report.host,
                      "winhttp_route": route.display, "winhttp_source": route.source.value,
                      "explanation": route.explanation,
                      "decisions": [_decision_fields(d) for d in report.decisions]})
    return lines


def write_console(found: Discovery, out: IO[str]) -> None:
    if found.wpad is not None:
        out.write("WPAD:\n")
        for step in found.wpad.steps or ():
            out.write(f"  {step.summary}\n")
        if not found.wpad.steps:
            out.write("  no DNS suffix to try (give --dns-suffix)\n")
    for report in found.reports:
        out.write(f"\n{report.url}\n")
        for d in report.decisions:
            entries = "; ".join(str(e) for e in d.entries) or "(none)"
            out.write(f"  {d.source.value:<8} {entries}\n")
            out.write(f"           {d.reason}" + (f": {d.error}" if d.error else "") + "\n")
            if d.winhttp_note:
                out.write(f"           {d.winhttp_note}\n")
        route = report.route()
        out.write(f"  => WinHTTP: {route.display} (from {route.source.value})\n")
    out.flush()


def cmd_proxy(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if not 0 < args.timeout <= 3600:
        raise UsageError("--timeout must be between 0 and 3600 seconds")
    targets = [url_for(t) for t in args.targets]
    if len(targets) > 10_000:
        raise UsageError("at most 10000 URLs at once")
    servers = [parse_dns_server(s) for s in args.dns_server]
    config = source_config(args, environ, with_env=True)
    found = discover_for(config, targets, servers, args.timeout, args.pac_timeout)
    fmt = args.format or ("console" if sys.stdout.isatty() else "jsonl")
    if fmt == "console":
        write_console(found, sys.stdout)
    else:
        for line in discovery_lines(found):
            sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
        sys.stdout.flush()
    return 0
