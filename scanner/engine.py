"""The engine: one task group, a fixed pool of workers, a bounded stream of probes.

Each finished probe becomes a Record handed to `emit` at once, so results
stream out in the order they complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
from anyio.abc import ObjectReceiveStream

from scanner.models import (
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Probe,
    Record,
    RouteKind,
)
from scanner.names import is_ip_literal
from scanner.plan import CheckPlan
from scanner.probes.dns import DnsStage
from scanner.probes.proxy import probe_http_connect, probe_socks
from scanner.probes.tcp import probe_direct
from scanner.verdicts import judge

Emit = Callable[[Record], None]


async def _proxy_address(dns: DnsStage, probe: Probe) -> str | ConnectResult:
    host = probe.route.host
    if is_ip_literal(host):
        return host
    result = await dns.lookup(host)
    if result.status is not DnsStatus.RESOLVED:
        return ConnectResult(ConnectStatus.PROXY_UNREACHABLE, 0.0, None,
                             f"proxy name {host} did not resolve ({result.status.value})")
    return result.addresses[0]


async def _through_proxy(dns: DnsStage, probe: Probe, target_dns: DnsResult | None,
                         timeout: float) -> ConnectResult:
    """`target_dns` is None when the proxy resolves the name (http, socks5h)."""
    address = await _proxy_address(dns, probe)
    if isinstance(address, ConnectResult):
        return address
    route, host, port = probe.route, probe.endpoint.host, probe.port
    if route.kind is RouteKind.HTTP:
        return await probe_http_connect(address, route, host, port, timeout)
    if target_dns is None:
        return await probe_socks(address, route, host, port, timeout)
    candidates = target_dns.addresses
    if route.kind is RouteKind.SOCKS4:
        candidates = tuple(a for a in candidates if ":" not in a)
    if target_dns.status is not DnsStatus.RESOLVED or not candidates:
        why = "no IPv4 address for SOCKS4" if target_dns.status is DnsStatus.RESOLVED else "did not resolve"
        return ConnectResult(ConnectStatus.SKIPPED, 0.0, None, f"{host} {why}")
    return await probe_socks(address, route, candidates[0], port, timeout)


async def run_probe(dns: DnsStage, probe: Probe, timeout: float) -> Record:
    kind = probe.route.kind
    host = probe.endpoint.host
    if kind is RouteKind.DIRECT:
        dns_result = await dns.lookup(host)
        if dns_result.status is DnsStatus.RESOLVED:
            connect = await probe_direct(dns_result.addresses, probe.port, timeout)
        else:
            connect = ConnectResult(ConnectStatus.SKIPPED, 0.0, None,
                                    f"not attempted: {dns_result.status.value}")
    elif kind in (RouteKind.SOCKS4, RouteKind.SOCKS5):
        dns_result = await dns.lookup(host)  # the client resolves for these
        connect = await _through_proxy(dns, probe, dns_result, timeout)
    else:
        # the proxy resolves the name: our own lookup runs beside it, for the record only
        dns_box: list[DnsResult] = []

        async def look() -> None:
            dns_box.append(await dns.lookup(host))

        async with anyio.create_task_group() as tg:
            tg.start_soon(look)
            connect = await _through_proxy(dns, probe, None, timeout)
        dns_result = dns_box[0]
    ok, reason = judge(probe, dns_result, connect)
    return Record(probe, dns_result, connect, ok, reason, time.time())


async def guarded_probe(dns: DnsStage, probe: Probe, timeout: float) -> Record:
    """run_probe, but a bug or a peer we failed to foresee costs one `error` record, not the run."""
    try:
        return await run_probe(dns, probe, timeout)
    except Exception as exc:  # every probe is accounted for by one record
        dns_result = DnsResult(DnsStatus.ERROR, detail="not known: the probe failed")
        connect = ConnectResult(ConnectStatus.ERROR, 0.0, None,
                                f"unexpected {type(exc).__name__} in the probe")
        ok, reason = judge(probe, dns_result, connect)
        return Record(probe, dns_result, connect, ok, reason, time.time())


async def run_check(plan: CheckPlan, emit: Emit) -> None:
    """Probe everything in `plan`, calling `emit` with each record as it completes."""
    dns = DnsStage(plan.dns_servers or None, plan.timeout)
    send, receive = anyio.create_memory_object_stream[Probe](plan.concurrency)

    async def worker(inbox: ObjectReceiveStream[Probe]) -> None:
        async with inbox:
            async for probe in inbox:
                emit(await guarded_probe(dns, probe, plan.timeout))

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(plan.concurrency):
                tg.start_soon(worker, receive.clone())
            receive.close()
            async with send:
                for probe in plan.probes():
                    await send.send(probe)
    finally:
        with anyio.CancelScope(shield=True):
            await dns.close()
