"""The probes against real loopback servers bound to port 0: scripted proxies, real listeners."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest
from anyio.abc import SocketStream

from scanner.lab.dnsserver import StaticZone, serve_dns
from scanner.lab.listeners import SynDropper
from scanner.models import ConnectStatus, DnsStatus, Route, RouteKind
from scanner.probes.dns import DnsStage, parse_dns_server
from scanner.probes.proxy import probe_http_connect
from scanner.probes.tcp import probe_direct

pytestmark = pytest.mark.anyio

Script = Callable[[SocketStream], Awaitable[None]]


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1:0 that runs `script` for each client; yields its port."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def handle(client: SocketStream) -> None:
        async with client:
            try:
                await script(client)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
                pass

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield port
        tg.cancel_scope.cancel()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


HTTP = Route(RouteKind.HTTP, "127.0.0.1", 0)


def _route(port: int, user: str | None = None, password: str | None = None) -> Route:
    return Route(RouteKind.HTTP, "127.0.0.1", port, user, password)


async def _read_request(client: SocketStream) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await client.receive()
    return data


def replying(*segments: bytes, pause: float = 0.02) -> Script:
    async def script(client: SocketStream) -> None:
        await _read_request(client)
        for segment in segments:
            await client.send(segment)
            await anyio.sleep(pause)
        await anyio.sleep(0.2)

    return script


# --- direct TCP -------------------------------------------------------------------------

async def test_direct_listening_and_refused() -> None:
    async with scripted_server(replying()) as port:
        result = await probe_direct(["127.0.0.1"], port, 2.0)
    assert result.status is ConnectStatus.LISTENING
    assert result.address == "127.0.0.1"
    refused = await probe_direct(["127.0.0.1"], closed_port(), 2.0)
    assert refused.status is ConnectStatus.NOT_LISTENING
    assert refused.detail is not None and refused.detail.startswith("ECONNREFUSED")


async def test_direct_filtered_when_syns_are_dropped() -> None:
    dropper = SynDropper("127.0.0.1", 0)
    port = dropper.sock.getsockname()[1]
    try:
        result = await probe_direct(["127.0.0.1"], port, 0.5)
    finally:
        dropper.close()
    assert result.status is ConnectStatus.FILTERED
    assert result.detail == "no answer within 0.5s"


async def test_direct_tries_each_address_until_one_listens() -> None:
    async with scripted_server(replying()) as port:
        result = await probe_direct(["127.0.0.2", "127.0.0.1"], port, 2.0)
    assert result.status is ConnectStatus.LISTENING
    assert [(a.address, a.status) for a in result.attempts] == [
        ("127.0.0.2", ConnectStatus.NOT_LISTENING), ("127.0.0.1", ConnectStatus.LISTENING)]


async def test_direct_ipv6_loopback() -> None:
    listener = await anyio.create_tcp_listener(local_host="::1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        result = await probe_direct(["::1"], port, 2.0)
    assert result.status is ConnectStatus.LISTENING


# --- HTTP CONNECT -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("segments", "status", "http_status"),
    [
        ([b"HTTP/1.1 200 Connection established\r\n\r\n"], ConnectStatus.TUNNEL, 200),
        ([b"HTTP/1.1 2", b"00 OK\r\nVia: x\r", b"\n\r", b"\n"], ConnectStatus.TUNNEL, 200),
        ([b"HTTP/1.1 403 Forbidden\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n\r\n"],
         ConnectStatus.DENIED, 403),
        ([b"HTTP/1.1 503 Service Unavailable\r\nX-Squid-Error: ERR_CONNECT_FAIL 111\r\n\r\n"],
         ConnectStatus.PROXY_ERROR, 503),
        ([b"HTTP/1.0 302 Found\r\nLocation: /\r\n\r\n"], ConnectStatus.ERROR, 302),
    ],
)
async def test_connect_states(segments: Sequence[bytes], status: ConnectStatus,
                              http_status: int) -> None:
    async with scripted_server(replying(*segments)) as port:
        result = await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 2.0)
    assert result.status is status
    assert result.http_status == http_status


async def test_connect_head_split_with_tunnel_bytes_after_it() -> None:
    """Headers split across segments are all read; bytes after the head are not part of it."""
    head = (b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: NTLM\r\n"
            b"Proxy-Authenticate: Basic realm=\"corp, hq\"\r\n"
            b"X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0\r\n\r\n")
    segments = [head[i:i + 7] for i in range(0, len(head), 7)] + [b"\x16\x03\x01garbage-after-head"]
    async with scripted_server(replying(*segments, pause=0.001)) as port:
        result = await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 2.0)
    assert result.status is ConnectStatus.AUTH_REQUIRED
    assert result.auth_schemes == ("NTLM", "Basic")
    assert result.proxy_error == "ERR_CACHE_ACCESS_DENIED 0"
    assert result.detail == "HTTP 407 Proxy Authentication Required, ERR_CACHE_ACCESS_DENIED 0"


async def test_connect_request_is_anonymous_unless_credentials_given() -> None:
    seen: list[bytes] = []

    async def script(client: SocketStream) -> None:
        seen.append(await _read_request(client))
        await client.send(b"HTTP/1.1 200 OK\r\n\r\n")

    async with scripted_server(script) as port:
        await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 2.0)
        await probe_http_connect("127.0.0.1", _route(port, "alice", "pw"), "svc.test", 443, 2.0)
    assert seen[0].startswith(b"CONNECT svc.test:443 HTTP/1.1\r\nHost: svc.test:443\r\n")
    assert b"Proxy-Authorization" not in seen[0]
    assert b"Proxy-Authorization: Basic YWxpY2U6cHc=\r\n" in seen[1]


async def test_connect_oversized_head_is_an_error_not_a_hang() -> None:
    endless = [b"HTTP/1.1 200 OK\r\n"] + [b"X-Pad: " + b"a" * 1000 + b"\r\n"] * 80
    async with scripted_server(replying(*endless, pause=0)) as port:
        result = await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 3.0)
    assert result.status is ConnectStatus.ERROR
    assert result.detail == "response head larger than 65536 bytes"


@pytest.mark.parametrize(
    ("segments", "detail"),
    [
        ([b"SSH-2.0-OpenSSH_9.2\r\n\r\n"], "not an HTTP status line: b'SSH-2.0-OpenSSH_9.2'"),
        ([], "proxy closed the connection without answering"),
        ([b"HTTP/1.1 200 OK\r\nX: y"], "proxy closed the connection in the middle of its answer"),
    ],
)
async def test_connect_garbage(segments: Sequence[bytes], detail: str) -> None:
    async def script(client: SocketStream) -> None:
        await _read_request(client)
        for segment in segments:
            await client.send(segment)

    async with scripted_server(script) as port:
        result = await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 2.0)
    assert (result.status, result.detail) == (ConnectStatus.ERROR, detail)


async def test_connect_proxy_that_never_answers_times_out() -> None:
    async with scripted_server(replying(b"HTTP/1.1 200", pause=5)) as port:
        with anyio.fail_after(3):
            result = await probe_http_connect("127.0.0.1", _route(port), "svc.test", 443, 0.5)
    assert result.status is ConnectStatus.TIMEOUT


async def test_connect_proxy_unreachable() -> None:
    result = await probe_http_connect("127.0.0.1", _route(closed_port()), "svc.test", 443, 2.0)
    assert result.status is ConnectStatus.PROXY_UNREACHABLE
    assert result.detail is not None and "ECONNREFUSED" in result.detail


# --- DNS --------------------------------------------------------------------------------

@asynccontextmanager
async def lab_dns(zone: StaticZone) -> AsyncIterator[tuple[str, list[str]]]:
    asked: list[str] = []

    def resolve(name: str, qtype: int) -> object:
        asked.append(f"{name}/{qtype}")
        return zone(name, qtype)

    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(serve_dns, resolve))  # type: ignore[arg-type]
        yield f"127.0.0.1:{port}", asked
        tg.cancel_scope.cancel()


async def test_dns_states_and_cname_chain() -> None:
    zone = StaticZone(
        records={"svc.test": ["127.0.0.5", "::1"], "edge.cdn.test": ["127.0.0.6"],
                 "v4only.test": ["127.0.0.7"]},
        cnames={"www.svc.test": "alias.cdn.test", "alias.cdn.test": "edge.cdn.test"},
        faults={"broken.test": "servfail", "nope.test": "refused", "slow.test": "timeout",
                "empty.test": "nodata"},
    )
    async with lab_dns(zone) as (server, _asked):
        dns = DnsStage([server], timeout=0.6)
        try:
            results = {name: await dns.lookup(name) for name in (
                "svc.test", "www.svc.test", "missing.test", "broken.test", "nope.test",
                "slow.test", "empty.test", "v4only.test", "127.0.0.9")}
        finally:
            await dns.close()
    assert results["svc.test"].status is DnsStatus.RESOLVED
    assert results["svc.test"].addresses == ("127.0.0.5", "::1")
    assert results["www.svc.test"].addresses == ("127.0.0.6",)
    assert results["www.svc.test"].cnames == ("alias.cdn.test", "edge.cdn.test")
    assert results["v4only.test"].addresses == ("127.0.0.7",)
    assert {n: r.status for n, r in results.items() if r.status is not DnsStatus.RESOLVED} == {
        "missing.test": DnsStatus.NXDOMAIN, "broken.test": DnsStatus.SERVFAIL,
        "nope.test": DnsStatus.REFUSED, "slow.test": DnsStatus.TIMEOUT, "empty.test": DnsStatus.NODATA}
    assert results["127.0.0.9"].addresses == ("127.0.0.9",)


async def test_dns_one_lookup_per_host_however_many_ask() -> None:
    async with lab_dns(StaticZone(records={"svc.test": ["127.0.0.5"]})) as (server, asked):
        dns = DnsStage([server], timeout=1.0)
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(dns.lookup, "svc.test")
            again = await dns.lookup("svc.test")
        finally:
            await dns.close()
    assert again.addresses == ("127.0.0.5",)
    assert sorted(asked) == ["svc.test/1", "svc.test/28"]


async def test_dns_server_that_is_not_there() -> None:
    dns = DnsStage([f"127.0.0.1:{closed_port()}"], timeout=0.5)
    try:
        result = await dns.lookup("svc.test")
    finally:
        await dns.close()
    assert result.status in (DnsStatus.REFUSED, DnsStatus.TIMEOUT)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", "127.0.0.1:53"), ("127.0.0.1:5353", "127.0.0.1:5353"), ("::1", "[::1]:53"),
    ("[::1]:5353", "[::1]:5353"),
])
def test_parse_dns_server(text: str, expected: str) -> None:
    assert parse_dns_server(text) == expected
