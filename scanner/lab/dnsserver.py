"""A small authoritative DNS server for the offline lab: UDP and TCP on one loopback port.

The zone is any ``Resolve`` callable; ``StaticZone`` covers addresses, CNAME
chains, wildcards and injected faults. Wire handling lives in ``dnswire``; this
module only moves bytes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus, UDPSocket
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.stapled import MultiListener

from scanner.lab.dnswire import (
    CLASS_IN,
    Answer,
    DnsWireError,
    Rcode,
    RRType,
    build_query,
    build_response,
    parse_query,
)

__all__ = ["Fault", "Resolve", "StaticZone", "respond", "serve_dns"]

Resolve = Callable[[str, int], Answer | None]
"""Look up (name, qtype); None means drop the query unanswered (a simulated timeout)."""

UDP_MAX_SIZE = 512  # no EDNS: larger answers are truncated and the client retries over TCP
TCP_MAX_QUERY = 4096  # bigger length prefixes close the connection
TCP_IDLE_TIMEOUT = 10.0  # seconds to wait for each query on a TCP connection
TCP_MAX_QUERIES = 1000  # per connection
BIND_ATTEMPTS = 20  # when port 0's UDP port is taken for TCP
MAX_CNAME_HOPS = 8

_CLASS_ANY = 255


class Fault(StrEnum):
    NXDOMAIN = "nxdomain"
    SERVFAIL = "servfail"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NODATA = "nodata"


def _normalise(name: str) -> str:
    return name.lower().removesuffix(".")


@dataclass(frozen=True, slots=True, eq=False)
class StaticZone:
    """A fixed zone: addresses, CNAMEs and faults by name; ``*.suffix`` keys are wildcards.

    Unknown names answer NXDOMAIN, known names without an address of the asked
    family answer NOERROR with no records. Names match case-insensitively; an
    exact name beats a wildcard, and a closer wildcard beats a farther one.
    """

    records: Mapping[str, Sequence[str]] = field(default_factory=dict)
    cnames: Mapping[str, str] = field(default_factory=dict)
    faults: Mapping[str, str] = field(default_factory=dict)
    ttl: int = 60

    def __post_init__(self) -> None:
        records: dict[str, tuple[str, ...]] = {}
        for name, addresses in self.records.items():
            # ip_address rejects bad text early: a typo in a lab zone should fail loudly.
            records[_normalise(name)] = tuple(str(ipaddress.ip_address(a)) for a in addresses)
        cnames = {_normalise(k): _normalise(v) for k, v in self.cnames.items()}
        faults = {_normalise(k): Fault(v) for k, v in self.faults.items()}
        for name in [*records, *cnames, *cnames.values(), *faults]:
            build_query(name, RRType.A)  # raises DnsWireError (a ValueError) on a bad name
        if clash := records.keys() & cnames.keys():
            raise ValueError(f"names with both a CNAME and addresses: {sorted(clash)}")
        object.__setattr__(self, "records", MappingProxyType(records))
        object.__setattr__(self, "cnames", MappingProxyType(cnames))
        object.__setattr__(self, "faults", MappingProxyType(faults))

    def _owner(self, name: str) -> str | None:
        """The zone key that answers for ``name``: itself, else its closest wildcard."""
        if name in self.records or name in self.cnames or name in self.faults:
            return name
        labels = name.split(".")
        for i in range(1, len(labels)):
            wildcard = "*." + ".".join(labels[i:])
            if wildcard in self.records or wildcard in self.cnames or wildcard in self.faults:
                return wildcard
        return None

    def __call__(self, name: str, qtype: int) -> Answer | None:
        chain: list[str] = []
        current = _normalise(name)
        for _ in range(MAX_CNAME_HOPS + 1):
            owner = self._owner(current)
            if owner is None:
                return Answer(Rcode.NXDOMAIN, tuple(chain), ttl=self.ttl)
            fault = self.faults.get(owner)
            if fault is Fault.TIMEOUT:
                return None
            if fault is Fault.SERVFAIL:
                return Answer(Rcode.SERVFAIL, ttl=self.ttl)
            if fault is Fault.REFUSED:
                return Answer(Rcode.REFUSED, ttl=self.ttl)
            if fault is Fault.NXDOMAIN:
                return Answer(Rcode.NXDOMAIN, tuple(chain), ttl=self.ttl)
            if fault is Fault.NODATA:
                return Answer(Rcode.NOERROR, tuple(chain), ttl=self.ttl)
            target = self.cnames.get(owner)
            if target is not None:
                chain.append(target)
                if qtype == RRType.CNAME:  # asked for the alias itself: do not follow
                    return Answer(Rcode.NOERROR, tuple(chain), ttl=self.ttl)
                current = target
                continue
            addresses = self.records.get(owner, ())
            return Answer(Rcode.NOERROR, tuple(chain), _of_type(addresses, qtype), self.ttl)
        # Too long a chain (or a loop): what a recursive resolver reports.
        return Answer(Rcode.SERVFAIL, ttl=self.ttl)


def _of_type(addresses: Sequence[str], qtype: int) -> tuple[str, ...]:
    if qtype == RRType.ANY:
        return tuple(addresses)
    if qtype == RRType.A:
        return tuple(a for a in addresses if ":" not in a)
    if qtype == RRType.AAAA:
        return tuple(a for a in addresses if ":" in a)
    return ()


def respond(resolve: Resolve, data: bytes, *, max_size: int | None = None) -> bytes | None:
    """The response to one raw query, or None when it gets none (garbage or a dropped query)."""
    try:
        query = parse_query(data)
    except DnsWireError:
        return None
    if query.opcode != 0:
        answer: Answer | None = Answer(Rcode.NOTIMP)
    elif query.qclass not in (CLASS_IN, _CLASS_ANY):
        answer = Answer(Rcode.REFUSED)
    else:
        # Errors raised by resolve are bugs in the zone and propagate on purpose.
        answer = resolve(query.qname, query.qtype)
    if answer is None:
        return None
    return build_response(query, answer, max_size=max_size)


async def _serve_udp(sock: UDPSocket, resolve: Resolve) -> None:
    # Runs until cancelled; each iteration handles one datagram.
    async for data, (client_host, client_port) in sock:
        response = respond(resolve, data, max_size=UDP_MAX_SIZE)
        if response is None:
            continue
        try:
            await sock.sendto(response, client_host, client_port)
        except OSError:
            continue  # the client went away; nothing to tell it


async def _serve_tcp_connection(stream: SocketStream, resolve: Resolve) -> None:
    async with stream:
        reader = BufferedByteReceiveStream(stream)
        try:
            for _ in range(TCP_MAX_QUERIES):
                with anyio.fail_after(TCP_IDLE_TIMEOUT):
                    length = int.from_bytes(await reader.receive_exactly(2), "big")
                    if length > TCP_MAX_QUERY:
                        return
                    data = await reader.receive_exactly(length)
                response = respond(resolve, data)
                if response is not None:
                    await stream.send(len(response).to_bytes(2, "big") + response)
        except (
            TimeoutError,
            anyio.EndOfStream,
            anyio.IncompleteRead,
            anyio.BrokenResourceError,
            OSError,
        ):
            return


async def _bind(host: str, port: int) -> tuple[UDPSocket, MultiListener[SocketStream]]:
    """Bind UDP, then TCP on the same port; with port 0, retry if TCP finds it taken."""
    for _ in range(BIND_ATTEMPTS):
        udp = await anyio.create_udp_socket(local_host=host, local_port=port)
        bound = udp.extra(SocketAttribute.local_port)
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=bound)
        except OSError:
            await udp.aclose()
            if port != 0:
                raise
            continue
        return udp, listener
    raise OSError(f"no port free for both UDP and TCP on {host} after {BIND_ATTEMPTS} tries")


async def serve_dns(
    resolve: Resolve,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``resolve`` over UDP and TCP on ``host``:``port`` until cancelled.

    ``host`` must be a loopback IP literal: the lab never answers off this machine.
    Reports the bound port through ``task_status`` (use with ``TaskGroup.start``).
    """
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the lab DNS server binds loopback IP literals only, not {host!r}")

    udp, listener = await _bind(host, port)
    async with udp, listener, anyio.create_task_group() as tg:
        tg.start_soon(_serve_udp, udp, resolve)

        async def handle(stream: SocketStream) -> None:
            await _serve_tcp_connection(stream, resolve)

        tg.start_soon(listener.serve, handle, tg)
        task_status.started(udp.extra(SocketAttribute.local_port))
