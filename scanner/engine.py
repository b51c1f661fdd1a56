"""The engine: one task group, a fixed pool of workers, a bounded stream of probes.

Each finished probe becomes a Record handed to `emit` at once, so results
stream out in the order they complete.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream, ObjectReceiveStream, SocketStream

from scanner.certs import default_trust
from scanner.models import (
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Probe,
    RangeFinding,
    Record,
    RouteKind,
)
from scanner.names import is_ip_literal
from scanner.plan import CheckPlan
from scanner.probes.dns import DnsStage
from scanner.probes.proxy import open_http_connect, open_socks
from scanner.probes.streams import Prefixed
from scanner.probes.tcp import abort, open_direct, set_linger_0
from scanner.stages import Stages, wants_stream
from scanner.verdicts import judge, judge_stages

Emit = Callable[[Record], None]
OnRange = Callable[[RangeFinding], None]


async def _proxy_address(dns: DnsStage, probe: Probe) -> str | ConnectResult:
    host = probe.route.host
    if is_ip_literal(host):
        return host
    result = await dns.lookup(host)
    if result.status is not DnsStatus.RESOLVED:
        return ConnectResult(ConnectStatus.PROXY_UNREACHABLE, 0.0, None,
                             f"proxy name {host} did not resolve ({result.status.value})")
    return result.addresses[0]


async def _stream(sock: socket.socket | None, prefix: bytes = b"", keep: bool = True
                  ) -> ByteStream | None:
    """The kept connection as a stream for the later stages; closed at once when unwanted."""
    if sock is None:
        return None
    if not keep:
        abort(sock)
        return None
    set_linger_0(sock)
    try:
        stream = await SocketStream.from_socket(sock)
    except BaseException:
        abort(sock)
        raise
    return Prefixed(stream, prefix) if prefix else stream


async def _drop(stream: ByteStream | None) -> None:
    if stream is not None:
        with anyio.CancelScope(shield=True):
            try:
                await stream.aclose()
            except OSError:
                pass


async def _through_proxy(dns: DnsStage, probe: Probe, target_dns: DnsResult | None,
                         timeout: float, keep: bool = False) -> tuple[ConnectResult, ByteStream | None]:
    """`target_dns` is None when the proxy resolves the name (http, socks5h)."""
    address = await _proxy_address(dns, probe)
    if isinstance(address, ConnectResult):
        return address, None
    route, host, port = probe.route, probe.endpoint.host, probe.port
    if route.kind is RouteKind.HTTP:
        result, tunnel = await open_http_connect(address, route, host, port, timeout)
        if tunnel is None:
            return result, None
        return result, await _stream(tunnel[0], tunnel[1], keep)
    if target_dns is None:
        result, stream = await open_socks(address, route, host, port, timeout)
    else:
        candidates = target_dns.addresses
        if route.kind is RouteKind.SOCKS4:
            candidates = tuple(a for a in candidates if ":" not in a)
        if target_dns.status is not DnsStatus.RESOLVED or not candidates:
            resolved = target_dns.status is DnsStatus.RESOLVED
            why = "no IPv4 address for SOCKS4" if resolved else "did not resolve"
            return ConnectResult(ConnectStatus.SKIPPED, 0.0, None, f"{host} {why}"), None
        result, stream = await open_socks(address, route, candidates[0], port, timeout)
    if stream is not None and not keep:
        await _drop(stream)
        stream = None
    return result, stream


async def run_probe(dns: DnsStage, probe: Probe, timeout: float, stages: Stages | None = None) -> Record:
    """One probe: DNS, the connect, then (with `stages`) TLS, HTTP and the middlebox check."""
    kind = probe.route.kind
    host = probe.endpoint.host
    if kind is RouteKind.NONE:  # --analyzer: a path that does not exist here; nothing to send
        connect = ConnectResult(ConnectStatus.NOT_CONFIGURED, 0.0, None, probe.route.explanation)
        dns_result = await dns.lookup(host)  # shared with the host's other routes
        ok, reason = judge(probe, dns_result, connect)
        return Record(probe, dns_result, connect, ok, reason, time.time())
    keep = stages is not None and wants_stream(probe)
    stream: ByteStream | None = None
    try:
        if kind is RouteKind.DIRECT:
            dns_result = await dns.lookup(host)
            if dns_result.status is DnsStatus.RESOLVED:
                connect, sock = await open_direct(dns_result.addresses, probe.port, timeout)
                stream = await _stream(sock, keep=keep)
            else:
                connect = ConnectResult(ConnectStatus.SKIPPED, 0.0, None,
                                        f"not attempted: {dns_result.status.value}")
        elif kind in (RouteKind.SOCKS4, RouteKind.SOCKS5):
            dns_result = await dns.lookup(host)  # the client resolves for these
            connect, stream = await _through_proxy(dns, probe, dns_result, timeout, keep)
        else:
            # the proxy resolves the name: our own lookup runs beside it, for the record only
            dns_box: list[DnsResult] = []

            async def look() -> None:
                dns_box.append(await dns.lookup(host))

            async with anyio.create_task_group() as tg:
                tg.start_soon(look)
                connect, stream = await _through_proxy(dns, probe, None, timeout, keep)
            dns_result = dns_box[0]
    except BaseException:
        await _drop(stream)
        raise
    if stages is None:
        await _drop(stream)
        ok, reason = judge(probe, dns_result, connect)
        return Record(probe, dns_result, connect, ok, reason, time.time())
    connect, tls, http, middlebox = await stages.run(probe, connect, stream)
    ok, reason = judge(probe, dns_result, connect)
    if ok:
        ok, reason = judge_stages(probe, tls, http)
    return Record(probe, dns_result, connect, ok, reason, time.time(), tls, http, middlebox)


async def guarded_probe(dns: DnsStage, probe: Probe, timeout: float,
                        stages: Stages | None = None) -> Record:
    """run_probe, but a bug or a peer we failed to foresee costs one `error` record, not the run."""
    try:
        return await run_probe(dns, probe, timeout, stages)
    except Exception as exc:  # every probe is accounted for by one record
        dns_result = DnsResult(DnsStatus.ERROR, detail="not known: the probe failed")
        connect = ConnectResult(ConnectStatus.ERROR, 0.0, None,
                                f"unexpected {type(exc).__name__} in the probe")
        ok, reason = judge(probe, dns_result, connect)
        return Record(probe, dns_result, connect, ok, reason, time.time())


async def run_check(plan: CheckPlan, emit: Emit, on_range: OnRange | None = None) -> None:
    """Probe everything in `plan`, calling `emit` with each record as it completes, and
    `on_range` once at the end when a whole range of addresses accepted closed ports."""
    dns = DnsStage(plan.dns_servers or None, plan.timeout)
    stages = Stages(plan.stages.trust or default_trust(), plan.timeout, verify=plan.stages.verify,
                    middlebox=plan.stages.middlebox)
    send, receive = anyio.create_memory_object_stream[Probe](plan.concurrency)

    async def worker(inbox: ObjectReceiveStream[Probe]) -> None:
        async with inbox:
            async for probe in inbox:
                emit(await guarded_probe(dns, probe, plan.timeout, stages))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(plan.concurrency):
                tg.start_soon(worker, receive.clone())
            receive.close()
            async with send:
                for probe in plan.probes():
                    await send.send(probe)
        finding = stages.middlebox.finding() if stages.middlebox is not None else None
        if finding is not None and on_range is not None:
            on_range(finding)
    finally:
        with anyio.CancelScope(shield=True):
            await dns.close()
