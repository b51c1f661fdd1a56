"""The lab's world, as data: which name lives at which loopback address, and its faults."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scanner.errors import UsageError
from scanner.models import Catalog
from scanner.names import validate_hostname


class Fault(StrEnum):
    NXDOMAIN = "nxdomain"  # the lab DNS answers NXDOMAIN; the proxies cannot resolve it either
    CLOSED = "closed"  # nothing listens: connects are refused (RST)
    FILTERED = "filtered"  # SYNs are dropped: connects time out
    DENIED = "denied"  # the proxies refuse it by policy (HTTP 403, SOCKS reply 2)
    AUTH = "auth"  # the HTTP proxy demands Basic authentication for it (407)
    DELAY = "delay"  # the proxies wait `delay_ms` before answering for it
    # the stages after the connect (issue 4)
    EXPIRED = "expired"  # its TLS certificate has expired
    WRONG_HOST = "wrong_host"  # its TLS certificate names another host
    INTERCEPT = "intercept"  # the proxies terminate its TLS with the lab's inspection CA
    BLOCK_PAGE = "block_page"  # it answers HTTP with a gateway's block page, not the service
    ACCEPT_ALL = "accept_all"  # its address accepts every port (a SYN-proxying middlebox);
    # as `*=accept_all`, every address does: a middlebox answering for the whole range
    GARBAGE = "garbage"  # it answers with bytes that are neither TLS nor HTTP
    SILENT = "silent"  # it accepts and never says a word
    ENDLESS_HEADER = "endless_header"  # its HTTP answer is a head that never ends


@dataclass(frozen=True, slots=True)
class LabHost:
    name: str
    address: str
    ports: tuple[int, ...]
    faults: frozenset[Fault] = frozenset()
    delay_ms: int = 0


EVERY_HOST = "*"  # `*=accept_all`: the fault of the whole range, not of one host
FAULT_HELP = ("nxdomain, closed, filtered, denied, auth, delay:MS, expired, wrong_host, intercept, "
              "block_page, accept_all, garbage, silent, endless_header")


def parse_fault(text: str) -> tuple[str, Fault, int]:
    """`HOST=FAULT` (`delay:MS` for a delay) -> (host, fault, delay in ms)."""
    host, sep, spec = text.partition("=")
    host = host.strip().lower()
    spec = spec.strip().lower()
    if not sep or not host or not spec:
        raise UsageError(f"--fault {text!r}: expected HOST=FAULT ({FAULT_HELP})")
    problem = None if host == EVERY_HOST else validate_hostname(host)
    if problem:
        raise UsageError(f"--fault {text!r}: {problem}")
    kind, _, arg = spec.partition(":")
    try:
        fault = Fault(kind)
    except ValueError:
        raise UsageError(f"--fault {text!r}: unknown fault {kind!r} ({FAULT_HELP})") from None
    if host == EVERY_HOST and fault is not Fault.ACCEPT_ALL:
        raise UsageError(f"--fault {text!r}: only accept_all applies to every host ({EVERY_HOST})")
    delay = 0
    if fault is Fault.DELAY:
        if not (arg.isascii() and arg.isdigit()) or not 0 < int(arg) <= 60_000:
            raise UsageError(f"--fault {text!r}: expected delay:MS with MS from 1 to 60000")
        delay = int(arg)
    elif arg:
        raise UsageError(f"--fault {text!r}: {kind} takes no argument")
    return host, fault, delay


def lab_address(index: int) -> str:
    """The index-th lab address: 127.0.1.1, 127.0.1.2, ... skipping .0 and .255."""
    if not 0 <= index < 250 * 254:
        raise UsageError("the lab holds at most 63,500 hosts")
    third, fourth = divmod(index, 250)
    return str(ipaddress.IPv4Address(f"127.0.{third + 1}.{fourth + 1}"))


def plan_hosts(catalog: Catalog, faults: Iterable[tuple[str, Fault, int]] = (),
               first: int = 0) -> tuple[LabHost, ...]:
    """One loopback address per catalog host (from the `first`-th lab address on), faults
    attached; a fault for a host outside the catalog is an error."""
    wanted: dict[str, set[Fault]] = {}
    delays: dict[str, int] = {}
    for host, fault, delay in faults:
        wanted.setdefault(host, set()).add(fault)
        if fault is Fault.DELAY:
            delays[host] = delay
    names = [e.host for e in catalog.endpoints]
    unknown = sorted(set(wanted) - set(names) - {EVERY_HOST})
    if unknown:
        raise UsageError(f"--fault names {unknown[0]!r}, which is not in catalog {catalog.name!r}")
    everyone = wanted.get(EVERY_HOST, set())
    return tuple(
        LabHost(e.host, lab_address(first + i), e.ports, frozenset(wanted.get(e.host, set()) | everyone),
                delays.get(e.host, 0))
        for i, e in enumerate(catalog.endpoints)
    )


def dns_records(hosts: Sequence[LabHost]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """(records, faults) for the lab DNS zone."""
    records = {h.name: [h.address] for h in hosts}
    faults = {h.name: "nxdomain" for h in hosts if Fault.NXDOMAIN in h.faults}
    return records, faults


def by_name(hosts: Sequence[LabHost]) -> Mapping[str, LabHost]:
    return {h.name: h for h in hosts}
