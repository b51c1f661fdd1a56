"""The whole lab on loopback: DNS, endpoint listeners, an HTTP CONNECT proxy, a SOCKS5 proxy."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import anyio

from scanner.errors import ScannerError
from scanner.lab.dnsserver import StaticZone, serve_dns
from scanner.lab.httpproxy import ProxyPolicy, serve_http_proxy
from scanner.lab.listeners import TLS_PORTS, SynDropper, lab_ssl_context, serve_endpoint
from scanner.lab.socksproxy import serve_socks5
from scanner.lab.zone import Fault, LabHost, by_name, dns_records, plan_hosts
from scanner.models import Catalog


class LabError(ScannerError):
    """The lab cannot start (a port it needs is taken or privileged)."""


@dataclass(frozen=True, slots=True)
class RunningLab:
    hosts: tuple[LabHost, ...]
    dns_server: str  # for --dns-server
    http_proxy: str  # http://127.0.0.1:PORT
    socks_proxy: str  # socks5h://127.0.0.1:PORT

    def check_flags(self) -> list[str]:
        return ["--dns-server", self.dns_server, "--direct", "--proxy", self.http_proxy,
                "--proxy", self.socks_proxy]


def _bind_error(exc: OSError, address: str, port: int) -> LabError:
    if exc.errno == errno.EACCES:
        return LabError(
            f"the lab cannot listen on {address}:{port}: ports below 1024 need root or "
            "CAP_NET_BIND_SERVICE (or run it in a private namespace: unshare -rn scanner lab)")
    return LabError(f"the lab cannot listen on {address}:{port}: {exc.strerror or exc}")


@asynccontextmanager
async def running_lab(
    catalog: Catalog,
    faults: Iterable[tuple[str, Fault, int]] = (),
    *,
    credentials: tuple[str, str] | None = None,
    proxy_connect_timeout: float = 1.0,
    dns_port: int = 0,
    first_address: int = 0,
) -> AsyncIterator[RunningLab]:
    """Start every lab server on loopback; they stop when the block ends.

    Two labs can run at once when their `first_address` indexes keep them apart.
    """
    hosts = plan_hosts(catalog, faults, first_address)
    records, dns_faults = dns_records(hosts)
    names = by_name(hosts)
    droppers: list[SynDropper] = []
    context = lab_ssl_context()
    try:
        async with anyio.create_task_group() as tg:
            dns = await tg.start(partial(serve_dns, StaticZone(records, faults=dns_faults),
                                         host="127.0.0.1", port=dns_port))
            policy = ProxyPolicy(names, credentials, connect_timeout=proxy_connect_timeout)
            http_port = await tg.start(partial(serve_http_proxy, policy))
            socks_port = await tg.start(partial(serve_socks5, names,
                                                connect_timeout=proxy_connect_timeout))
            for host in hosts:
                if Fault.CLOSED in host.faults:
                    continue
                for port in host.ports:
                    try:
                        if Fault.FILTERED in host.faults:
                            droppers.append(SynDropper(host.address, port))
                        else:
                            tls = context if port in TLS_PORTS else None
                            await serve_endpoint(host.address, port, tls, tg)
                    except OSError as exc:
                        raise _bind_error(exc, host.address, port) from None
            yield RunningLab(hosts, f"127.0.0.1:{dns}", f"http://127.0.0.1:{http_port}",
                             f"socks5h://127.0.0.1:{socks_port}")
            tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # one failure (a bind error, or the caller's own exception) is re-raised as itself
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    finally:
        for dropper in droppers:
            dropper.close()


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found
