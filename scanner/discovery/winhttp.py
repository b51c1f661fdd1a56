"""The static WinHTTP proxy setting: `netsh winhttp show proxy` text, the proxy string,
the bypass list, and the decision WinHTTP makes for a URL. Pure functions."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from scanner.discovery.decision import DIRECT_ENTRY, Decision, EntryKind, ProxyEntry, parse_host_port
from scanner.errors import ScannerError
from scanner.models import RouteSource


class WinHttpError(ScannerError):
    """A WinHTTP setting (netsh text or registry value) cannot be parsed."""


@dataclass(frozen=True, slots=True)
class WinHttpSettings:
    """`proxy` is None for direct access; `bypass` keeps the entries as written."""

    proxy: str | None
    bypass: tuple[str, ...]
    origin: str  # where it came from, for explanations

    def proxies(self) -> dict[str, ProxyEntry]:
        return parse_proxy_string(self.proxy) if self.proxy else {}


_DIRECT = re.compile(r"^\s*direct access\s*\(no proxy server\)\.?\s*$", re.IGNORECASE)
_FIELD = re.compile(r"^\s*(proxy server\(s\)|bypass list)\s*:\s*(.*?)\s*$", re.IGNORECASE)
MAX_TEXT = 1 << 20


def parse_netsh(text: str, origin: str = "netsh winhttp show proxy") -> WinHttpSettings:
    """The English text `netsh winhttp show proxy` prints -> settings."""
    if len(text) > MAX_TEXT:
        raise WinHttpError(f"{origin}: more than 1 MB of text")
    fields: dict[str, str] = {}
    direct = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _DIRECT.match(line):
            direct = True
            continue
        match = _FIELD.match(line)
        if match:
            fields[match.group(1).lower()] = match.group(2)
    if direct and fields:
        raise WinHttpError(f"{origin}: says both 'Direct access' and 'Proxy Server(s)'")
    if direct:
        return WinHttpSettings(None, (), origin)
    if "proxy server(s)" not in fields:
        raise WinHttpError(
            f"{origin}: not the output of `netsh winhttp show proxy` (expected 'Direct access "
            "(no proxy server).' or a 'Proxy Server(s) :' line; only English output is understood)")
    proxy = fields["proxy server(s)"]
    if not proxy:
        raise WinHttpError(f"{origin}: 'Proxy Server(s) :' names no proxy")
    parse_proxy_string(proxy, origin)  # fail early, with a clear message
    bypass_text = fields.get("bypass list", "")
    return WinHttpSettings(proxy, split_bypass(bypass_text), origin)


def split_bypass(text: str) -> tuple[str, ...]:
    """`;` or white space separated; `(none)` (netsh's word for empty) is empty."""
    if text.strip().lower() == "(none)":
        return ()
    return tuple(part for part in re.split(r"[;\s]+", text.strip()) if part)


def parse_proxy_string(text: str, origin: str = "proxy string") -> dict[str, ProxyEntry]:
    """`host:port` or `http=h1:80;https=h2:88` -> {scheme or "": entry}.

    The entry under "" (a proxy named alone) serves every scheme that has none of its own.
    """
    found: dict[str, ProxyEntry] = {}
    for raw in re.split(r"[;\s]+", text.strip()):
        if not raw:
            continue
        scheme, sep, address = raw.rpartition("=")
        scheme = scheme.lower().removesuffix("://") if sep else ""
        if sep and not scheme:
            raise WinHttpError(f"{origin}: {raw!r} has '=' but no scheme")
        address = address.removeprefix("http://")
        try:
            host, port = parse_host_port(address, 80)
        except ValueError as exc:
            raise WinHttpError(f"{origin}: proxy {raw!r}: {exc}") from None
        if scheme in found:
            raise WinHttpError(f"{origin}: two proxies for {scheme or 'every scheme'!s}")
        found[scheme] = ProxyEntry(EntryKind.PROXY, host, port)
    if not found:
        raise WinHttpError(f"{origin}: empty proxy string")
    return found


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


def bypass_match(entries: tuple[str, ...], host: str) -> str | None:
    """The first bypass entry that matches `host`, or None.

    `<local>`: any name without a period. `*` is a wildcard at the left only
    (`*.contoso.com`); an entry with a `*` elsewhere never matches. IP literals
    compare as addresses. Names compare case-insensitively.
    """
    host = host.lower().rstrip(".")
    host_ip = _as_ip(host)
    for entry in entries:
        pattern = entry.lower()
        for prefix in ("http://", "https://"):
            pattern = pattern.removeprefix(prefix)
        if pattern == "<local>":
            if host_ip is None and "." not in host:
                return entry
            continue
        if "*" in pattern[1:]:
            continue
        if pattern.startswith("*"):
            if host.endswith(pattern[1:]):
                return entry
            continue
        entry_ip = _as_ip(pattern)
        if entry_ip is not None:
            if host_ip is not None and entry_ip == host_ip:
                return entry
            continue
        if host == pattern.rstrip("."):
            return entry
    return None


def decide(settings: WinHttpSettings, url: str) -> Decision:
    """What the static WinHTTP setting chooses for `url`, and why."""
    source = RouteSource.WINHTTP
    if settings.proxy is None:
        return Decision(source, url, (DIRECT_ENTRY,), f"{settings.origin}: direct access (no proxy server)")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    scheme = parts.scheme.lower()
    matched = bypass_match(settings.bypass, host)
    if matched is not None:
        return Decision(source, url, (DIRECT_ENTRY,),
                        f"{settings.origin}: {host} matches bypass entry {matched!r}")
    proxies = settings.proxies()
    entry = proxies.get(scheme)
    if entry is not None:
        return Decision(source, url, (entry,), f"{settings.origin}: {scheme}= proxy for {scheme}:// URLs")
    entry = proxies.get("")
    if entry is not None:
        return Decision(source, url, (entry,),
                        f"{settings.origin}: proxy {entry.host}:{entry.port}"
                        + (", no bypass entry matches" if settings.bypass else ""))
    schemes = ", ".join(sorted(proxies))
    return Decision(source, url, (DIRECT_ENTRY,),
                    f"{settings.origin}: no proxy for {scheme}:// (only for {schemes})")
