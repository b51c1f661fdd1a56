"""WPAD over DNS, as WinHTTP does it, and fetching a PAC file over plain HTTP.

For each DNS suffix, `wpad.<suffix>` is tried, dropping labels from the left,
stopping before a name at public-suffix level (never `wpad.com`, never
`wpad.co.uk`). The first name that resolves and serves `/wpad.dat` wins.
Every step is reported. DHCP option 252 is not tried: it needs a DHCP exchange.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import anyio

from scanner.errors import ScannerError
from scanner.httphead import find_head_end, parse_response_head
from scanner.names import is_ip_literal, validate_hostname

MAX_CANDIDATES = 16  # per suffix
MAX_SUFFIXES = 8
MAX_BODY = 1 << 20
MAX_RESPONSE = MAX_BODY + 64 * 1024
Resolve = Callable[[str], Awaitable[Sequence[str]]]


class FetchError(ScannerError):
    """A PAC file cannot be fetched."""


@dataclass(frozen=True, slots=True)
class WpadStep:
    name: str
    addresses: tuple[str, ...]  # empty: did not resolve
    url: str | None = None  # set when a fetch was tried
    status: int | None = None  # HTTP status
    detail: str | None = None
    used: bool = False

    @property
    def summary(self) -> str:
        if not self.addresses:
            return f"{self.name}: does not resolve"
        head = f"{self.name}: resolves to {', '.join(self.addresses)}"
        if self.url is None:
            return head
        got = f"HTTP {self.status}" if self.status is not None else "no answer"
        tail = f" ({self.detail})" if self.detail else ""
        return f"{head}; GET {self.url}: {got}{tail}{'; used' if self.used else ''}"


@cache
def _psl() -> object:
    from publicsuffixlist import PublicSuffixList  # noqa: PLC0415 - loads its data once

    return PublicSuffixList()


def is_public_suffix(domain: str) -> bool:
    """True for `com`, `co.uk`, any unlisted single label, and the like (bundled list)."""
    return bool(_psl().is_public(domain.lower()))  # type: ignore[attr-defined]


def wpad_names(suffix: str) -> list[str]:
    """The names WinHTTP tries for one DNS suffix, in order, public suffixes excluded."""
    domain = suffix.strip().strip(".").lower()
    if not domain or validate_hostname(domain):
        return []
    labels = domain.split(".")
    names: list[str] = []
    for start in range(min(len(labels), MAX_CANDIDATES)):
        candidate = ".".join(labels[start:])
        if is_public_suffix(candidate):
            break
        names.append(f"wpad.{candidate}")
    return names


def parse_resolv_conf(text: str) -> tuple[str, ...]:
    """The search domains of a resolv.conf (`search` wins over `domain`, the last of each counts)."""
    search: list[str] = []
    domain: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "search":
            search = words[1:]
        elif len(words) == 2 and words[0] == "domain":
            domain = words[1:]
    return tuple((search or domain)[:MAX_SUFFIXES])


def system_suffixes(path: str = "/etc/resolv.conf") -> tuple[str, ...]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return parse_resolv_conf(handle.read(65536))
    except OSError:
        return ()


async def http_get(address: str, host: str, port: int, path: str, timeout: float) -> tuple[int, bytes]:
    """A plain HTTP/1.0 GET to an IP address; (status, body), the body capped at 1 MB."""
    with anyio.fail_after(timeout):
        stream = await anyio.connect_tcp(address, port)
        async with stream:
            shown = f"[{host}]" if ":" in host else host
            await stream.send(f"GET {path} HTTP/1.0\r\nHost: {shown}\r\nAccept: */*\r\n"
                              "User-Agent: scanner\r\nConnection: close\r\n\r\n".encode())
            data = bytearray()
            while len(data) <= MAX_RESPONSE:
                try:
                    data += await stream.receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
    end = find_head_end(data)
    if end is None:
        raise FetchError("no complete HTTP response head")
    head = parse_response_head(bytes(data[:end]))
    body = bytes(data[end:])
    if len(body) > MAX_BODY:
        raise FetchError("larger than 1 MB (WinHTTP's limit)")
    length = head.get("content-length")
    if length is not None and length.isdigit() and int(length) < len(body):
        body = body[: int(length)]
    return head.status, body


async def fetch_url(url: str, resolve: Resolve, timeout: float) -> tuple[int, bytes, str]:
    """GET an http:// URL, its host resolved through `resolve`; (status, body, address)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError as exc:
        raise FetchError(f"{url}: {exc}") from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise FetchError(f"{url}: only http:// PAC URLs can be fetched")
    host = parts.hostname
    addresses = (host,) if is_ip_literal(host) else tuple(await resolve(host))
    if not addresses:
        raise FetchError(f"{url}: {host} does not resolve")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        status, body = await http_get(addresses[0], host, port, path, timeout)
    except TimeoutError:
        raise FetchError(f"{url}: no answer within {timeout:g}s") from None
    except OSError as exc:
        raise FetchError(f"{url}: {exc.strerror or exc}") from None
    except ScannerError as exc:
        raise FetchError(f"{url}: {exc.message}") from None
    return status, body, addresses[0]


@dataclass(frozen=True, slots=True)
class WpadResult:
    steps: tuple[WpadStep, ...]
    url: str | None = None  # the wpad.dat that was found
    script: bytes | None = None


async def discover(suffixes: Sequence[str], resolve: Resolve, timeout: float,
                   budget: float = 30.0) -> WpadResult:
    """Try every candidate in order until one serves a wpad.dat; bounded in count and time."""
    steps: list[WpadStep] = []
    deadline = time.monotonic() + budget
    for suffix in suffixes[:MAX_SUFFIXES]:
        for name in wpad_names(suffix):
            if time.monotonic() > deadline:
                steps.append(WpadStep(name, (), detail="not tried: WPAD time budget spent"))
                return WpadResult(tuple(steps))
            addresses = tuple(await resolve(name))
            if not addresses:
                steps.append(WpadStep(name, ()))
                continue
            url = f"http://{name}/wpad.dat"
            try:
                status, body = await http_get(addresses[0], name, 80, "/wpad.dat", timeout)
            except TimeoutError:
                steps.append(WpadStep(name, addresses, url, None, f"no answer within {timeout:g}s"))
                continue
            except OSError as exc:
                steps.append(WpadStep(name, addresses, url, None, exc.strerror or str(exc)))
                continue
            except ScannerError as exc:
                steps.append(WpadStep(name, addresses, url, None, exc.message))
                continue
            if status != 200:
                steps.append(WpadStep(name, addresses, url, status))
                continue
            steps.append(WpadStep(name, addresses, url, status, f"{len(body)} bytes", used=True))
            return WpadResult(tuple(steps), url, body)
    return WpadResult(tuple(steps))
