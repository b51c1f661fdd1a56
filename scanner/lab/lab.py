"""The whole lab on loopback: DNS, endpoint listeners, an HTTP CONNECT proxy, a SOCKS5 proxy."""

from __future__ import annotations

import errno
import ssl
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from scanner.errors import ScannerError
from scanner.lab.dnsserver import StaticZone, serve_dns
from scanner.lab.httpproxy import ProxyPolicy, serve_http_proxy
from scanner.lab.labcatalog import catalog_toml, with_pins
from scanner.lab.listeners import TLS_PORTS, AcceptAll, Behaviour, SynDropper, serve_endpoint
from scanner.lab.netns import only_loopback
from scanner.lab.pki import ROOT_NAME, LabPki
from scanner.lab.socksproxy import serve_socks5
from scanner.lab.zone import EVERY_HOST, Fault, LabHost, by_name, dns_records, plan_hosts
from scanner.limits import raise_nofile_limit
from scanner.middlebox import CONTROL_PORTS
from scanner.models import Catalog


class LabError(ScannerError):
    """The lab cannot start (a port it needs is taken or privileged)."""


@dataclass(frozen=True, slots=True)
class RunningLab:
    hosts: tuple[LabHost, ...]
    dns_server: str  # for --dns-server
    http_proxy: str  # http://127.0.0.1:PORT
    socks_proxy: str  # socks5h://127.0.0.1:PORT
    ca_file: str = ""  # the lab's trust store: its root and its inspection CA
    public_roots: str = ""  # the lab's "public" roots: its root only
    accept_all_missing: frozenset[int] = frozenset()  # control ports accept_all could not take
    catalog_file: str = ""  # the catalog for `scanner check` here: its pins name the lab root

    def check_flags(self) -> list[str]:
        return ["--dns-server", self.dns_server, "--ca-file", self.ca_file, "--public-roots",
                self.public_roots, "--direct", "--proxy", self.http_proxy, "--proxy", self.socks_proxy]


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
    faults = list(faults)
    # `*=accept_all`: one listener per control port on the wildcard address answers for
    # every address (and costs no more descriptors than one host's accept_all)
    whole_range = any(host == EVERY_HOST and fault is Fault.ACCEPT_ALL for host, fault, _ in faults)
    if whole_range and not only_loopback():
        raise LabError(f"--fault '{EVERY_HOST}=accept_all' listens on every address: only in a private "
                       "network namespace holding loopback alone (unshare -rn scanner lab ...)")
    hosts = plan_hosts(catalog, faults, first_address)
    records, dns_faults = dns_records(hosts)
    names = by_name(hosts)
    droppers: list[SynDropper | AcceptAll] = []
    folder = tempfile.TemporaryDirectory(prefix="scanner-lab-")
    pki = LabPki(Path(folder.name))
    catalog_file = Path(folder.name) / "lab-catalog.toml"  # (a catalog name may hold a /)
    catalog_file.write_text(catalog_toml(with_pins(catalog, ROOT_NAME)), encoding="utf-8")
    accept_all = 1 if whole_range else sum(1 for h in hosts if Fault.ACCEPT_ALL in h.faults)
    if accept_all:
        _room_for(accept_all * len(CONTROL_PORTS) + 4096)

    def inspect(name: str) -> ssl.SSLContext:
        return pki.context(name, "inspection")

    try:
        if whole_range:  # before the lab's own servers take ephemeral ports among the control ports
            ports = frozenset(p for h in hosts for p in h.ports)
            droppers.append(AcceptAll("0.0.0.0", CONTROL_PORTS, ports))
        async with anyio.create_task_group() as tg:
            dns = await tg.start(partial(serve_dns, StaticZone(records, faults=dns_faults),
                                         host="127.0.0.1", port=dns_port))
            policy = ProxyPolicy(names, credentials, connect_timeout=proxy_connect_timeout,
                                 inspect=inspect)
            http_port = await tg.start(partial(serve_http_proxy, policy))
            socks_port = await tg.start(partial(serve_socks5, names,
                                                connect_timeout=proxy_connect_timeout,
                                                inspect=inspect))
            for host in hosts:
                if Fault.CLOSED in host.faults:
                    continue
                for port in host.ports:
                    try:
                        if Fault.FILTERED in host.faults:
                            droppers.append(SynDropper(host.address, port))
                        else:
                            tls = pki.context(host.name, _cert_kind(host.faults)) \
                                if port in TLS_PORTS else None
                            await serve_endpoint(host.address, port, tls, tg, _behaviour(host.faults))
                    except OSError as exc:
                        raise _bind_error(exc, host.address, port) from None
                if Fault.ACCEPT_ALL in host.faults and not whole_range:
                    droppers.append(AcceptAll(host.address, CONTROL_PORTS, frozenset(host.ports)))
            yield RunningLab(hosts, f"127.0.0.1:{dns}", f"http://127.0.0.1:{http_port}",
                             f"socks5h://127.0.0.1:{socks_port}", str(pki.trust_store),
                             str(pki.public_roots),
                             frozenset(p for d in droppers if isinstance(d, AcceptAll)
                                       for p in d.missing),
                             str(catalog_file))
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
        folder.cleanup()


def _room_for(descriptors: int) -> None:
    """Every accept_all address holds a listener per control port: raise the descriptor
    limit for them, the hard one too where privileged (else AcceptAll lists what is missing)."""
    soft = raise_nofile_limit()
    if soft >= descriptors or sys.platform == "win32":
        return
    import resource  # noqa: PLC0415  (POSIX only)

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, max(hard, descriptors)))
    except (ValueError, OSError):
        pass


def _cert_kind(faults: frozenset[Fault]) -> str:
    if Fault.EXPIRED in faults:
        return "expired"
    if Fault.WRONG_HOST in faults:
        return "wrong_host"
    return "good"


_BEHAVIOURS = {Fault.BLOCK_PAGE: Behaviour.BLOCK_PAGE, Fault.GARBAGE: Behaviour.GARBAGE,
               Fault.SILENT: Behaviour.SILENT, Fault.ENDLESS_HEADER: Behaviour.ENDLESS_HEADER}


def _behaviour(faults: frozenset[Fault]) -> Behaviour:
    return next((b for f, b in _BEHAVIOURS.items() if f in faults), Behaviour.SERVICE)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found += _leaves(exc)
        else:
            found.append(exc)
    return found
