"""Middlebox detection: does the address also accept a port that is closed by design?

Firewalls with SYN proxies, transparent proxies and some security clients complete the
TCP handshake for every address and port, so `listening` alone proves nothing there.
Each address gets one control port, chosen at random from the dynamic range and never
one of the endpoint's own ports; if that port accepts too, something answers for
everything. One check per address per run, shared by its ports.

At the end of a run the checks are also read together (`range_finding`): when every
address checked (at least two), or every address checked in one /24 (IPv6: /64), accepted
its control port, the middlebox answers for the whole range, not for one host.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Collection, Mapping

import anyio

from scanner.models import ConnectStatus, MiddleboxResult, RangeFinding
from scanner.probes.tcp import connect_once

CONTROL_PORTS = range(49152, 65536)  # IANA's dynamic range: no service is registered there
CONTROL_TIMEOUT = 1.0  # a dropped control port is the normal case: do not wait long
RANGE_MIN_ADDRESSES = 2  # one address is the per-address check; a range takes two or more
RANGE_PREFIX = {4: 24, 6: 64}  # what counts as one range: a /24, an IPv6 /64
MAX_LISTED = 64  # addresses named in a finding; the count says how many there were


def control_port(avoid: Collection[int], draw: int | None = None) -> int:
    """A port from CONTROL_PORTS that is not in `avoid` (`draw` fixes the choice for tests)."""
    span = len(CONTROL_PORTS)
    start = secrets.randbelow(span) if draw is None else draw % span
    for offset in range(span):
        port = CONTROL_PORTS[(start + offset) % span]
        if port not in avoid:
            return port
    raise ValueError("every control port is excluded")


def verdict(port: int, status: ConnectStatus) -> MiddleboxResult:
    if status is ConnectStatus.LISTENING:
        return MiddleboxResult(True, port, f"control port {port}, closed by design, accepted too: "
                                           "a middlebox answers for every port")
    return MiddleboxResult(False, port, f"control port {port}: {status.value}")


def network_of(address: str) -> str:
    """The range an address belongs to for the range check: its /24 (IPv6: /64)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return str(ipaddress.ip_network(f"{ip}/{RANGE_PREFIX[ip.version]}", strict=False))


def range_finding(results: Mapping[str, MiddleboxResult],
                  minimum: int = RANGE_MIN_ADDRESSES) -> RangeFinding | None:
    """The run-wide verdict over the per-address checks, or None when no range accepts
    everything. Pure: `results` maps each checked address to its control-port result."""
    by_network: dict[str, list[bool]] = {}
    for address, result in results.items():
        by_network.setdefault(network_of(address), []).append(result.suspect)
    networks = tuple(sorted(n for n, seen in by_network.items() if len(seen) >= minimum and all(seen)))
    suspects = sorted(a for a, r in results.items() if r.suspect)
    every = len(results) >= minimum and len(suspects) == len(results)
    if not every and not networks:
        return None
    where = (f"all {len(results)} addresses checked" if every else
             f"every address checked in {', '.join(networks[:4])}{' ...' if len(networks) > 4 else ''}")
    detail = (f"{where} accepted a port closed by design: a middlebox (SYN proxy, transparent "
              "proxy, firewall) answers for the whole range, so a connect proves nothing there")
    return RangeFinding(every, networks, tuple(suspects[:MAX_LISTED]), len(suspects), len(results),
                        detail)


class MiddleboxStage:
    """The per-run cache of control-port checks, keyed by address."""

    def __init__(self, timeout: float) -> None:
        self._timeout = min(timeout, CONTROL_TIMEOUT)
        self._done: dict[str, MiddleboxResult] = {}
        self._pending: dict[str, anyio.Event] = {}

    async def check(self, address: str, avoid: Collection[int]) -> MiddleboxResult:
        while address not in self._done:
            event = self._pending.get(address)
            if event is not None:
                await event.wait()
                continue
            event = self._pending[address] = anyio.Event()
            try:
                port = control_port(avoid)
                attempt = await connect_once(address, port, self._timeout)
                self._done[address] = verdict(port, attempt.status)
            finally:
                del self._pending[address]
                event.set()
        return self._done[address]

    def finding(self) -> RangeFinding | None:
        """The run-wide range verdict over the checks done so far."""
        return range_finding(self._done)
