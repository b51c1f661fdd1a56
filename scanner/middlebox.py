"""Middlebox detection: does the address also accept a port that is closed by design?

Firewalls with SYN proxies, transparent proxies and some security clients complete the
TCP handshake for every address and port, so `listening` alone proves nothing there.
Each address gets one control port, chosen at random from the dynamic range and never
one of the endpoint's own ports; if that port accepts too, something answers for
everything. One check per address per run, shared by its ports.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection

import anyio

from scanner.models import ConnectStatus, MiddleboxResult
from scanner.probes.tcp import connect_once

CONTROL_PORTS = range(49152, 65536)  # IANA's dynamic range: no service is registered there
CONTROL_TIMEOUT = 1.0  # a dropped control port is the normal case: do not wait long


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
