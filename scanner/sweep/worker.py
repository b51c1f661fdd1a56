"""One sweep process: chunks of the permutation, one event loop, records to a pipe.

Direct probes use raw non-blocking sockets registered one-shot in an epoll set
of our own, whose descriptor sits on the running loop as one reader: no task,
no coroutine, no loop handle, no logger per probe, and completions handled in
batches. Closing a socket drops it from the set, so a probe costs one
epoll_ctl. Connects that have not completed by their deadline are aborted from
a periodic tick (deadlines are FIFO: every probe has the same timeout).
Proxied probes reuse the `check` probes from a fixed pool of tasks.

A worker is forked from the runner (no interpreter start, no imports) and
talks to it over two pipes: EOF on the stop pipe means "stop now"; records go
to the output pipe as finished lines, and control lines starting with `!` carry
counts and the positions still to do, always after the records they account for.
"""

from __future__ import annotations

import asyncio
import errno as E
import os
import select
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from scanner.limits import raise_nofile_limit
from scanner.models import ConnectStatus, RouteKind
from scanner.permutation import Permutation, Span, remaining
from scanner.ratelimit import TokenBucket
from scanner.routes import parse_proxy_url
from scanner.runtime import run
from scanner.sweep.plan import WorkerPlan
from scanner.sweep.records import CONTROL, Clock, port_line, route_json
from scanner.targets import AddressSpace, format_address
from scanner.verdicts import state_for_errno

_LINGER_0 = struct.pack("ii", 1, 0)
# local shortages: wait and retry the same target instead of reporting it
_SHORTAGE = frozenset({E.EMFILE, E.ENFILE, E.ENOBUFS, E.ENOMEM, E.EADDRNOTAVAIL, E.EAGAIN})
TICK = 0.01
_FOUND = frozenset({"listening", "tunnel"})  # reported without --all
_ERRNO_STATE = {E.ECONNREFUSED: state_for_errno(E.ECONNREFUSED).value}  # the common answer, looked up once
FLUSH_LINES = 256

Pending = tuple[int, int, int]  # (position, index, attempt)
Claim = Callable[[], tuple[int, list[Span]] | None]


def fds_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def unissued_after(spans: tuple[Span, ...], cursor: int) -> list[Span]:
    """The parts of `spans` at or after position `cursor` (spans are ascending)."""
    return [(max(start, cursor), stop) for start, stop in spans if stop > cursor]


class Sweeper:
    """State shared by the direct and the proxied loop: order, counts, output, snapshots."""

    def __init__(self, plan: WorkerPlan, out_fd: int, max_concurrency: int,
                 claim: Claim | None = None) -> None:
        self.plan = plan
        self.out_fd = out_fd
        self.space = AddressSpace(plan.intervals)
        self.ports = plan.ports
        self.perm = Permutation(self.space.size * len(plan.ports), plan.seed)
        self.claim = claim  # more work, chunk by chunk; None: only plan.spans
        self.claimed: list[int] = []  # chunk ids claimed since the last report
        self.current: tuple[Span, ...] = plan.spans  # the spans being issued
        self.order: Iterator[tuple[int, int]] = self.perm.indices(self.current)
        self.cursor = self.current[0][0] if self.current else 0
        self.exhausted = False
        self.retry: deque[Pending] = deque()
        self.max_cap = max_concurrency
        self.cap = max_concurrency
        self.backoffs = 0
        self.last_backoff = 0.0
        self.bucket = TokenBucket(plan.rate, time.monotonic()) if plan.rate > 0 else None
        self.counts: dict[str, int] = {}
        self.done = 0
        self.lines: list[str] = []
        self.clock = Clock()
        self.route = route_json("direct" if plan.proxy_url is None
                                else parse_proxy_url(plan.proxy_url).display)
        self.report_all = plan.report_all
        self.stopping = False
        self.output_gone = False
        self.last_report = time.monotonic()
        single = self.space.intervals[0] if len(self.space.intervals) == 1 else None
        self._single_v4 = single[1] if single is not None and single[0] == 4 else None

    # -- order
    def next_target(self) -> Pending | None:
        if self.retry:
            return self.retry.popleft()
        while not self.exhausted:
            for position, index in self.order:
                self.cursor = position + 1
                return position, index, 0
            self._next_chunk()
        return None

    def _next_chunk(self) -> None:
        claimed = self.claim() if self.claim is not None and not self.stopping else None
        if claimed is None:
            self.exhausted = True
            self.current = ()
            return
        ident, spans = claimed
        self.claimed.append(ident)
        self.current = tuple(spans)
        self.order = self.perm.indices(self.current)
        self.cursor = self.current[0][0]

    def target(self, index: int) -> tuple[str, int]:
        address, port_slot = divmod(index, len(self.ports))
        if self._single_v4 is not None:
            value = self._single_v4 + address
            ip = f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
        else:
            ip = format_address(*self.space.address_at(address))
        return ip, self.ports[port_slot]

    def grant(self, wanted: int) -> int:
        if self.bucket is None or wanted <= 0:
            return wanted
        return self.bucket.take(time.monotonic(), wanted)

    def shortage(self, item: Pending, in_flight: int) -> None:
        """Out of descriptors or local ports: put the target back and lower the concurrency."""
        self.retry.appendleft(item)
        self.cap = max(1, in_flight)
        self.backoffs += 1
        self.last_backoff = time.monotonic()

    def regrow(self, now: float) -> None:
        if self.cap < self.max_cap and now - self.last_backoff > 0.1:
            self.cap = min(self.max_cap, self.cap + max(1, self.cap // 8))

    # -- output
    def emit(self, ip: str, port: int, state: str, ms: float, ts: str) -> None:
        """Count a result and queue its line; `ts` and the clock behind `ms` are per batch."""
        self.done += 1
        self.counts[state] = self.counts.get(state, 0) + 1
        if self.report_all or state in _FOUND:
            self.lines.append(port_line(ts, ip, port, state, ms, self.route))
            if len(self.lines) >= FLUSH_LINES:
                self.flush()

    def now(self) -> tuple[float, str]:
        """The moment a batch of completions was seen: (perf_counter, ISO timestamp)."""
        return time.perf_counter(), self.clock.iso(time.time())

    def flush(self) -> None:
        if self.lines:
            data = "".join(self.lines).encode()
            self.lines.clear()
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.output_gone:
            return
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.out_fd, view):]
        except BrokenPipeError:  # the runner stopped reading (its own reader went away)
            self.output_gone = True

    def report(self, pending: list[int], final: bool) -> None:
        """Flush records, then a control line that accounts for them."""
        self.flush()
        left = remaining(unissued_after(self.current, self.cursor),
                         [*pending, *(p for p, _, _ in self.retry)])
        control = {"done": self.done, "counts": self.counts, "remaining": left,
                   "claimed": self.claimed, "backoffs": self.backoffs, "final": final}
        self.claimed = []
        self._write(CONTROL + orjson.dumps(control) + b"\n")
        self.last_report = time.monotonic()


class DirectLoop:
    """Callbacks on the event loop around raw sockets, readiness from one epoll set (Linux)."""

    def __init__(self, sweeper: Sweeper, loop: asyncio.AbstractEventLoop) -> None:
        self.s = sweeper
        self.loop = loop
        self.timeout = sweeper.plan.timeout
        self.retries = sweeper.plan.retries
        # fd -> (socket, position, index, attempt, ip, port, start)
        self.pending: dict[int, tuple[socket.socket, int, int, int, str, int, float]] = {}
        self.deadlines: deque[tuple[float, int, socket.socket]] = deque()
        self.finished: asyncio.Future[None] = loop.create_future()
        self.epoll = select.epoll()
        self.register = self.epoll.register
        self.one_shot = select.EPOLLOUT | select.EPOLLONESHOT

    def start(self) -> None:
        self.loop.add_reader(self.epoll.fileno(), self.drain)
        self.pump()
        self.loop.call_later(TICK, self.tick)

    def pump(self) -> None:
        s, pending = self.s, self.pending
        if s.stopping:
            return
        room = s.grant(s.cap - len(pending))
        inet, inet6 = socket.AF_INET, socket.AF_INET6
        stream = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
        register, one_shot = self.register, self.one_shot
        while room > 0:
            item = s.next_target()
            if item is None:
                break
            room -= 1
            ip, port = s.target(item[1])
            try:
                sock = socket.socket(inet6 if ":" in ip else inet, stream)
            except OSError as exc:
                if exc.errno in _SHORTAGE:
                    s.shortage(item, len(pending))
                    break
                raise
            started = time.perf_counter()
            code = sock.connect_ex((ip, port))
            if code == E.EINPROGRESS:
                fd = sock.fileno()
                pending[fd] = (sock, item[0], item[1], item[2], ip, port, started)
                register(fd, one_shot)
                self.deadlines.append((started + self.timeout, fd, sock))
            elif code in _SHORTAGE:
                sock.close()
                s.shortage(item, len(pending))
                break
            else:
                self.complete(sock, item[0], item[1], item[2], ip, port, started, code, *s.now())
        self.check_done()

    def drain(self) -> None:
        """The epoll set is readable: finish every connect that completed, then refill."""
        pending, complete, poll = self.pending, self.complete, self.epoll.poll
        sol, so_error = socket.SOL_SOCKET, socket.SO_ERROR
        while True:
            events = poll(0, 1024)
            now, ts = self.s.now()
            for fd, _ in events:
                entry = pending.pop(fd, None)
                if entry is None:
                    continue
                sock, position, index, attempt, ip, port, started = entry
                code = sock.getsockopt(sol, so_error)
                if code in _SHORTAGE:
                    sock.close()
                    self.s.shortage((position, index, attempt), len(pending))
                else:
                    complete(sock, position, index, attempt, ip, port, started, code, now, ts)
            if len(events) < 1024:
                break
        self.pump()

    def complete(self, sock: socket.socket, position: int, index: int, attempt: int,  # noqa: PLR0917
                 ip: str, port: int, started: float, code: int, now: float, ts: str) -> None:
        # positional on purpose: called once per probe
        ms = round((now - started) * 1000, 3)
        if code == 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
            sock.close()
            self.s.emit(ip, port, "listening", ms, ts)
            return
        sock.close()
        state = _ERRNO_STATE.get(code) or state_for_errno(code).value
        if state == "filtered" and attempt < self.retries:
            self.s.retry.append((position, index, attempt + 1))
            return
        self.s.emit(ip, port, state, ms, ts)

    def expire(self, now: float) -> None:
        deadlines, pending = self.deadlines, self.pending
        while deadlines and deadlines[0][0] <= now:
            _, fd, sock = deadlines.popleft()
            entry = pending.get(fd)
            if entry is None or entry[0] is not sock:
                continue  # completed already (the fd may have been reused since)
            del pending[fd]
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
            sock.close()
            _, position, index, attempt, ip, port, started = entry
            if attempt < self.retries:
                self.s.retry.append((position, index, attempt + 1))
            else:
                _, ts = self.s.now()
                self.s.emit(ip, port, ConnectStatus.FILTERED.value, round((now - started) * 1000, 3), ts)

    def tick(self) -> None:
        if self.finished.done():
            return
        self.drain()
        now = time.monotonic()
        self.expire(time.perf_counter())
        self.s.regrow(now)
        if now - self.s.last_report >= self.s.plan.report_interval:
            self.s.report([e[1] for e in self.pending.values()], final=False)
        else:
            self.s.flush()
        self.pump()
        if not self.finished.done():
            self.loop.call_later(TICK, self.tick)

    def stop(self) -> None:
        """Abort what is in flight: those targets stay in the remaining positions."""
        self.s.stopping = True
        for entry in self.pending.values():
            entry[0].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
            entry[0].close()
            self.s.retry.append((entry[1], entry[2], entry[3]))
        self.pending.clear()
        self.close()
        if not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        if not self.epoll.closed:
            self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()

    def check_done(self) -> None:
        s = self.s
        if not self.pending and not s.retry and s.exhausted and not self.finished.done():
            self.close()
            self.finished.set_result(None)


async def proxied_loop(sweeper: Sweeper, stop: asyncio.Event) -> None:
    """A fixed pool of tasks, each probing one (host, port) at a time through the proxy."""
    from scanner.probes.proxy import probe_http_connect, probe_socks  # noqa: PLC0415

    plan = sweeper.plan
    assert plan.proxy_url is not None and plan.proxy_address is not None
    route = parse_proxy_url(plan.proxy_url)
    probe = probe_http_connect if route.kind is RouteKind.HTTP else probe_socks
    in_flight: dict[int, int] = {}  # position -> attempt

    async def one_worker() -> None:
        while not stop.is_set():
            granted = sweeper.grant(1)
            if granted == 0:
                await asyncio.sleep(sweeper.bucket.wait() if sweeper.bucket else TICK)
                continue
            item = sweeper.next_target()
            if item is None:
                return
            position, index, attempt = item
            ip, port = sweeper.target(index)
            in_flight[position] = attempt
            started = time.perf_counter()
            result = await probe(plan.proxy_address or "", route, ip, port, plan.timeout)
            del in_flight[position]
            if stop.is_set():
                sweeper.retry.append(item)
                return
            if result.status is ConnectStatus.TIMEOUT and attempt < plan.retries:
                sweeper.retry.append((position, index, attempt + 1))
                continue
            now, ts = sweeper.now()
            sweeper.emit(ip, port, result.status.value, round((now - started) * 1000, 3), ts)

    async def reporter() -> None:
        while True:
            await asyncio.sleep(plan.report_interval)
            sweeper.report(list(in_flight), final=False)

    tasks = [asyncio.ensure_future(one_worker()) for _ in range(sweeper.cap)]
    report_task = asyncio.ensure_future(reporter())
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    everyone: asyncio.Future[Any] = asyncio.gather(*tasks)
    try:
        await asyncio.wait([everyone, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        sweeper.stopping = True
        report_task.cancel()
        stopper.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, report_task, return_exceptions=True)
        for position in list(in_flight):  # cut short: still to do
            sweeper.retry.append((position, 0, 0))
    sweeper.report([], final=True)
    error = everyone.exception() if everyone.done() and not everyone.cancelled() else None
    if error is not None:
        raise error  # a bug in a probe: fail the worker (its targets stay in the state)


async def sweep(plan: WorkerPlan, out_fd: int, in_fd: int, claim: Claim | None = None) -> None:
    loop = asyncio.get_running_loop()
    nofile = raise_nofile_limit()
    # room for one socket per probe beside what is already open (the loop, pipes, stdio)
    room = max(1, nofile - fds_in_use() - 8)
    sweeper = Sweeper(plan, out_fd, min(plan.concurrency, room), claim)
    stop = asyncio.Event()

    def on_stdin() -> None:
        try:
            data = os.read(in_fd, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(in_fd)
            stop.set()

    loop.add_reader(in_fd, on_stdin)
    if plan.proxy_url is not None:
        await proxied_loop(sweeper, stop)
        return
    direct = DirectLoop(sweeper, loop)

    def on_error(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # a callback failed (a bug): end the worker with an error instead of hanging
        if not direct.finished.done():
            error = context.get("exception") or RuntimeError(str(context.get("message")))
            direct.finished.set_exception(error)

    loop.set_exception_handler(on_error)
    stop_waiter = asyncio.ensure_future(stop.wait())
    stop_waiter.add_done_callback(lambda _f: direct.stop())
    direct.start()
    await direct.finished
    stop_waiter.cancel()
    sweeper.report([], final=True)


def child_main(plan: WorkerPlan, out_fd: int, stop_fd: int, claim: Claim | None) -> int:
    """The body of a forked worker: sweep, then return the exit status (the caller _exits)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a group-wide SIGTERM: the runner stops us via stdin
    call: Callable[[], Any] = lambda: sweep(plan, out_fd, stop_fd, claim)  # noqa: E731
    run(call)
    return 0
