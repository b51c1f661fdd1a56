"""The DNS stage: one aiodns resolver per run, one lookup per host, shared by every probe."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiodns
import anyio
import pycares

from scanner.errors import UsageError
from scanner.models import DnsResult, DnsStatus
from scanner.names import is_ip_literal, split_host_port
from scanner.verdicts import combine_dns, dns_status_for_code


def parse_dns_server(text: str) -> str:
    """`IP` or `IP:PORT` or `[IPv6]:PORT` -> the form c-ares takes (`127.0.0.1:5353`)."""
    try:
        host, port = split_host_port(text)
    except ValueError as exc:
        raise UsageError(f"--dns-server {text!r}: {exc}") from None
    if "%" in host:
        raise UsageError(f"--dns-server {text!r}: scoped IPv6 addresses (with %) are not supported")
    if not is_ip_literal(host):
        raise UsageError(f"--dns-server {text!r}: expected an IP address, not a name")
    if port is not None and (not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535):
        raise UsageError(f"--dns-server {text!r}: {port!r} is not a port number (1-65535)")
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port or 53}"


class DnsStage:
    """Resolves each name once (A and AAAA, CNAME chain kept) under an outer deadline.

    Create it inside the running event loop: aiodns binds its resolver to it.
    """

    def __init__(self, nameservers: Sequence[str] | None, timeout: float) -> None:
        self._timeout = timeout
        try:  # None: the system's resolver configuration
            self._resolver = aiodns.DNSResolver(
                nameservers=list(nameservers) if nameservers else None,
                timeout=max(timeout / 2, 0.25), tries=2)
        except Exception as exc:  # pycares' own error types
            shown = ", ".join(nameservers or ["the system's configuration"])
            raise UsageError(f"cannot use DNS server {shown}: {exc}") from None
        self._done: dict[str, DnsResult] = {}
        self._pending: dict[str, anyio.Event] = {}

    async def lookup(self, host: str) -> DnsResult:
        """The result for `host`, looked up at most once per run however many ask."""
        while True:
            result = self._done.get(host)
            if result is not None:
                return result
            event = self._pending.get(host)
            if event is None:
                break
            await event.wait()
        event = self._pending[host] = anyio.Event()
        try:
            result = await self._resolve(host)
            self._done[host] = result
        finally:
            del self._pending[host]
            event.set()
        return result

    async def _resolve(self, host: str) -> DnsResult:
        if is_ip_literal(host):
            return DnsResult(DnsStatus.RESOLVED, (host,), (), 0.0, "IP literal: not looked up")
        start = time.perf_counter()
        # c-ares runs both queries at once; two futures under one deadline cost far
        # less than a task per query
        queries = {qtype: self._resolver.query_dns(host, qtype) for qtype in ("A", "AAAA")}
        try:
            with anyio.move_on_after(self._timeout):
                await asyncio.wait(queries.values())
        finally:
            for future in queries.values():
                future.cancel()  # no-op when done
        ms = (time.perf_counter() - start) * 1000
        a_status, a_addrs, a_cnames, a_detail = self._answer(queries["A"], "A")
        q_status, q_addrs, q_cnames, q_detail = self._answer(queries["AAAA"], "AAAA")
        status = combine_dns(a_status, q_status)
        cnames = a_cnames or q_cnames
        detail = None if status is DnsStatus.RESOLVED else (a_detail or q_detail)
        return DnsResult(status, tuple(a_addrs + q_addrs), tuple(cnames), round(ms, 3), detail)

    def _answer(self, future: asyncio.Future[Any], qtype: str
                ) -> tuple[DnsStatus, list[str], list[str], str | None]:
        if future.cancelled():
            return DnsStatus.TIMEOUT, [], [], f"no {qtype} answer within {self._timeout:g}s"
        exc = future.exception()
        if isinstance(exc, aiodns.error.DNSError):
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
            text = str(exc.args[1]) if len(exc.args) > 1 else "DNS error"
            return dns_status_for_code(code), [], [], text
        if exc is not None:
            return DnsStatus.ERROR, [], [], f"{type(exc).__name__}: {exc}"
        addresses: list[str] = []
        cnames: list[str] = []
        for rr in future.result().answer:
            data = rr.data
            if isinstance(data, pycares.CNAMERecordData):
                cnames.append(data.cname.rstrip("."))
            elif isinstance(data, pycares.ARecordData | pycares.AAAARecordData):
                addresses.append(data.addr)
        if not addresses:
            return DnsStatus.NODATA, [], cnames, f"no {qtype} record"
        return DnsStatus.RESOLVED, addresses, cnames, None

    async def close(self) -> None:
        await self._resolver.close()
