"""Many names at once: A and AAAA over one connected UDP socket, no task per query.

aiodns/pycares costs ~140 us of CPU per query here, which caps a sweep's name
list at a few thousand names per second. This stub keeps up to `window`
queries in flight on one socket driven by loop callbacks, matches answers by id
and question, resends on silence (`tries`, rotating over the servers), and
hands back the names it could not settle (truncated answers, silence) so the
caller can ask c-ares for those. The window is small on purpose: against a
local dnsmasq, 100-200 queries in flight answered faster than 1,000 (queues
overflow and queries are resent).
"""

from __future__ import annotations

import asyncio
import errno as E
import socket
import time
from collections import deque
from collections.abc import Sequence

from scanner.stubdns import QTYPE_A, QTYPE_AAAA, StubWireError, decode_answer, encode_query

RCODE_NOERROR = 0
_RECV_BATCH = 512


class BulkLookup:
    """One run over a list of names; `results` maps each name to (A, AAAA) address lists."""

    def __init__(self, names: Sequence[str], servers: Sequence[tuple[str, int]], timeout: float,
                 tries: int = 3, window: int = 128) -> None:
        self.names = names
        self.servers = servers
        self.timeout = timeout
        self.tries = tries
        self.window = window
        self.results: dict[str, tuple[list[str], list[str]]] = {n: ([], []) for n in names}
        self.unsettled: set[str] = set()  # truncated or never answered: ask elsewhere
        self._todo = deque((name, qtype) for name in names for qtype in (QTYPE_A, QTYPE_AAAA))
        self._flight: dict[int, tuple[str, int, int]] = {}  # id -> (name, qtype, try)
        self._deadlines: deque[tuple[float, int, str, int]] = deque()
        self._next_id = 1
        self._socks: list[socket.socket] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        for host, port in self.servers:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.connect((host, port))  # connected: only this server's datagrams arrive
            self._socks.append(sock)
            loop.add_reader(sock.fileno(), self._readable, sock, done)
        try:
            self._pump(done)
            while not done.done():
                await asyncio.wait([done], timeout=min(self.timeout / 4, 0.05))
                self._expire(time.monotonic())
                self._pump(done)
        finally:
            for sock in self._socks:
                loop.remove_reader(sock.fileno())
                sock.close()

    def _pump(self, done: asyncio.Future[None]) -> None:
        flight, todo = self._flight, self._todo
        while todo and len(flight) < self.window:
            name, qtype = todo.popleft()
            self._send(name, qtype, 0)
        if not todo and not flight and not done.done():
            done.set_result(None)

    def _send(self, name: str, qtype: int, attempt: int) -> None:
        ident = self._next_id
        while ident in self._flight:
            ident = (ident % 0xFFFF) + 1
        self._next_id = (ident % 0xFFFF) + 1
        sock = self._socks[attempt % len(self._socks)]
        try:
            sock.send(encode_query(ident, name, qtype))
        except OSError as exc:
            if exc.errno not in (E.EAGAIN, E.ENOBUFS, E.ECONNREFUSED):
                raise
            # the deadline below resends it
        self._flight[ident] = (name, qtype, attempt)
        self._deadlines.append((time.monotonic() + self.timeout, ident, name, qtype))

    def _readable(self, sock: socket.socket, done: asyncio.Future[None]) -> None:
        for _ in range(_RECV_BATCH):
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # ICMP port unreachable on a connected socket: silence, retried
                continue
            try:
                answer = decode_answer(data)
            except StubWireError:
                continue
            entry = self._flight.get(answer.ident)
            if entry is None or entry[0] != answer.qname or entry[1] != answer.qtype:
                continue  # late, duplicate or not ours
            del self._flight[answer.ident]
            name, qtype, _ = entry
            if answer.truncated:
                self.unsettled.add(name)
            elif answer.rcode == RCODE_NOERROR:
                self.results[name][0 if qtype == QTYPE_A else 1].extend(answer.addresses)
        self._pump(done)

    def _expire(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, ident, name, qtype = deadlines.popleft()
            entry = self._flight.get(ident)
            if entry is None or entry[0] != name or entry[1] != qtype:
                continue
            del self._flight[ident]
            if entry[2] + 1 < self.tries:
                self._send(name, qtype, entry[2] + 1)
            else:
                self.unsettled.add(name)

    def addresses(self) -> dict[str, tuple[str, ...]]:
        return {name: (*a, *aaaa) for name, (a, aaaa) in self.results.items()}
