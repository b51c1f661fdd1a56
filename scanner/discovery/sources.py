"""The configured proxy sources, and what each decides for each URL.

WinHTTP's own choice, when several sources are given: a PAC named with `--pac`
(an explicit auto-config URL) comes first, then a script WPAD found, then the
static setting, else direct. The environment is reported beside them, but
WinHTTP never reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner.discovery.decision import DIRECT_ENTRY, Decision, EntryKind, ProxyEntry, endpoint_url
from scanner.discovery.pac import PacError, PacLimits, PacRun, check_script, evaluate, pac_decision
from scanner.discovery.registry import load_settings, read_system
from scanner.discovery.winhttp import WinHttpSettings, decide
from scanner.discovery.wpad import FetchError, Resolve, WpadResult, discover, fetch_url
from scanner.errors import UsageError
from scanner.files import TooLarge, read_limited
from scanner.models import Route, RouteKind, RouteSource
from scanner.routes import EnvProxies, no_proxy_matches

MAX_FILE = 1 << 20
WPAD_NOT_FOUND = "not found"  # a WPAD decision's error when no wpad.dat was found


@dataclass(frozen=True, slots=True)
class SourceConfig:
    winhttp: str | None = None  # a file, or "system"
    pac: str | None = None  # an http:// URL or a file
    wpad: bool = False
    dns_suffixes: tuple[str, ...] = ()  # for WPAD; empty: the system's search domains
    env: EnvProxies | None = None
    my_ips: tuple[str, ...] = ("127.0.0.1",)  # what the PAC's myIpAddress()/myIpAddressEx() return

    @property
    def any(self) -> bool:
        return self.winhttp is not None or self.pac is not None or self.wpad


@dataclass(frozen=True, slots=True)
class UrlReport:
    url: str
    host: str
    decisions: tuple[Decision, ...]  # one per configured source
    chosen: Decision | None  # the one WinHTTP follows (None: no WinHTTP source given)

    def route(self) -> Route:
        if self.chosen is None:
            return Route(RouteKind.DIRECT, source=RouteSource.DEFAULT,
                         explanation="no WinHTTP source configured: direct")
        return self.chosen.route()


@dataclass(frozen=True, slots=True)
class Discovery:
    reports: tuple[UrlReport, ...]
    wpad: WpadResult | None
    pac_runs: tuple[tuple[RouteSource, PacRun], ...]


def _read_file(path: str, what: str) -> bytes:
    try:
        return read_limited(path, MAX_FILE)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except TooLarge:
        raise UsageError(f"{what} {path}: larger than 1 MB") from None


def load_winhttp(spec: str) -> WinHttpSettings:
    if spec == "system":
        return read_system()
    text = _read_file(spec, "--winhttp").decode("utf-8-sig", errors="replace")
    if "\x00" in text:  # `reg export` and netsh redirected by PowerShell write UTF-16
        text = _read_file(spec, "--winhttp").decode("utf-16", errors="replace").lstrip("\ufeff")
    return load_settings(text, Path(spec).name)


async def _pac_text(spec: str, resolve: Resolve, timeout: float) -> str:
    if spec.lower().startswith(("http://", "https://")):
        try:
            status, body, _ = await fetch_url(spec, resolve, timeout)
        except FetchError as exc:
            raise PacError(f"--pac {exc.message}") from None
        if status != 200:
            raise PacError(f"--pac {spec}: HTTP {status}")
        return check_script(body, spec)
    return check_script(_read_file(spec, "--pac"), spec)


async def run_sources(config: SourceConfig, targets: Sequence[tuple[str, str]], resolve: Resolve,
                      timeout: float, limits: PacLimits | None = None) -> Discovery:
    """Every source's decision for every (url, host); raises ScannerError on a broken source."""
    limits = limits or PacLimits()
    per_source: list[list[Decision]] = []
    winhttp: list[Decision] = []
    pac: list[Decision] = []
    wpad: list[Decision] = []
    runs: list[tuple[RouteSource, PacRun]] = []
    wpad_result = None
    if config.winhttp is not None:
        settings = load_winhttp(config.winhttp)
        winhttp = [decide(settings, url) for url, _ in targets]
        per_source.append(winhttp)
    if config.pac is not None:
        script = await _pac_text(config.pac, resolve, timeout)
        run = await evaluate(script, targets, resolve, origin=config.pac,
                             my_ips=config.my_ips, limits=limits)
        runs.append((RouteSource.PAC, run))
        pac = [pac_decision(RouteSource.PAC, url, a, config.pac)
               for (url, _), a in zip(targets, run.answers, strict=True)]
        per_source.append(pac)
    if config.wpad:
        wpad_result = await discover(config.dns_suffixes, resolve, timeout)
        if wpad_result.script is None or wpad_result.url is None:
            tried = len(wpad_result.steps)
            why = (f"WPAD found no wpad.dat ({tried} names tried)" if tried
                   else "WPAD had no DNS suffix to try (give --dns-suffix)")
            wpad = [Decision(RouteSource.WPAD, url, (), why, WPAD_NOT_FOUND) for url, _ in targets]
        else:
            origin = wpad_result.url
            try:
                script = check_script(wpad_result.script, origin)
                run = await evaluate(script, targets, resolve, origin=origin,
                                     my_ips=config.my_ips, limits=limits)
            except PacError as exc:
                wpad = [Decision(RouteSource.WPAD, url, (), f"WPAD found {origin}", exc.message)
                        for url, _ in targets]
            else:
                runs.append((RouteSource.WPAD, run))
                wpad = [pac_decision(RouteSource.WPAD, url, a, origin)
                        for (url, _), a in zip(targets, run.answers, strict=True)]
        per_source.append(wpad)
    if config.env is not None:
        per_source.append([_env_decision(config.env, url, host) for url, host in targets])
    reports = []
    for index, (url, host) in enumerate(targets):
        decisions = tuple(source[index] for source in per_source)
        reports.append(UrlReport(url, host, decisions, _winhttp_choice(
            pac[index] if pac else None, wpad[index] if wpad else None,
            winhttp[index] if winhttp else None)))
    return Discovery(tuple(reports), wpad_result, tuple(runs))


def _winhttp_choice(pac: Decision | None, wpad: Decision | None, static: Decision | None) -> Decision | None:
    if pac is not None:
        return pac
    if wpad is not None and (wpad.error != WPAD_NOT_FOUND or static is None):
        return wpad
    return static


def _env_decision(env: EnvProxies, url: str, host: str) -> Decision:
    port = 80 if url.startswith("http://") else 443
    route = env.route_for(host, port)
    if no_proxy_matches(env.no_proxy, host):
        return Decision(RouteSource.ENV, url, (DIRECT_ENTRY,), f"NO_PROXY matches {host} (curl's rules)")
    if not env.configured:
        return Decision(RouteSource.ENV, url, (DIRECT_ENTRY,), "no proxy environment variable set")
    if route.kind is RouteKind.DIRECT:
        return Decision(RouteSource.ENV, url, (DIRECT_ENTRY,), "no proxy variable for this scheme")
    kind = EntryKind.PROXY if route.kind is RouteKind.HTTP else EntryKind.SOCKS5 \
        if route.kind in (RouteKind.SOCKS5, RouteKind.SOCKS5H) else EntryKind.SOCKS4
    return Decision(RouteSource.ENV, url, (ProxyEntry(kind, route.host, route.port),),
                    f"proxy from the environment ({route.display}); WinHTTP ignores it")


def endpoint_targets(pairs: Sequence[tuple[str, int]]) -> list[tuple[str, str]]:
    return [(endpoint_url(host, port), host) for host, port in pairs]
