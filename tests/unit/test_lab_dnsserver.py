"""The lab DNS server: StaticZone semantics, and real queries over loopback UDP and TCP."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import aiodns
import anyio
import pycares
import pytest
from aiodns.error import DNSError

from scanner.lab.dnsserver import (
    TCP_MAX_QUERY,
    UDP_MAX_SIZE,
    Resolve,
    StaticZone,
    respond,
    serve_dns,
)
from scanner.lab.dnswire import Answer, Rcode, Response, RRType, build_query, parse_response

# pycares.errno values, as aiodns reports them in DNSError.args[0]
ARES_ENODATA = 1
ARES_ESERVFAIL = 3
ARES_ENOTFOUND = 4
ARES_EREFUSED = 6
ARES_ETIMEOUT = 12

BIG = tuple(f"10.1.{i // 256}.{i % 256}" for i in range(40))  # 40 A records: over 512 bytes

ZONE = StaticZone(
    records={
        "a.test": ["192.0.2.1", "192.0.2.2", "2001:db8::1"],
        "v4only.test": ["192.0.2.4"],
        "big.test": BIG,
        "*.wild.test": ["192.0.2.9"],
        "exact.wild.test": ["192.0.2.10"],
        "edge.cdn.test": ["198.51.100.1", "2001:db8::5"],
    },
    cnames={
        "www.test": "alias.cdn.test",
        "alias.cdn.test": "edge.cdn.test",
        "dangling.test": "x.test",
    },
    faults={
        "nx.test": "nxdomain",
        "sf.test": "servfail",
        "rf.test": "refused",
        "to.test": "timeout",
        "nd.test": "nodata",
    },
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --- StaticZone, no network ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "qtype", "expected"),
    [
        ("a.test", RRType.A, Answer(Rcode.NOERROR, (), ("192.0.2.1", "192.0.2.2"))),
        ("A.Test.", RRType.AAAA, Answer(Rcode.NOERROR, (), ("2001:db8::1",))),
        (
            "a.test",
            RRType.ANY,
            Answer(Rcode.NOERROR, (), ("192.0.2.1", "192.0.2.2", "2001:db8::1")),
        ),
        ("a.test", 15, Answer(Rcode.NOERROR)),  # MX: known name, no data
        ("v4only.test", RRType.AAAA, Answer(Rcode.NOERROR)),
        ("missing.test", RRType.A, Answer(Rcode.NXDOMAIN)),
        ("test", RRType.A, Answer(Rcode.NXDOMAIN)),
        ("x.wild.test", RRType.A, Answer(Rcode.NOERROR, (), ("192.0.2.9",))),
        ("y.x.wild.test", RRType.A, Answer(Rcode.NOERROR, (), ("192.0.2.9",))),
        ("exact.wild.test", RRType.A, Answer(Rcode.NOERROR, (), ("192.0.2.10",))),
        ("wild.test", RRType.A, Answer(Rcode.NXDOMAIN)),  # a wildcard does not match its parent
        (
            "www.test",
            RRType.A,
            Answer(Rcode.NOERROR, ("alias.cdn.test", "edge.cdn.test"), ("198.51.100.1",)),
        ),
        ("www.test", RRType.CNAME, Answer(Rcode.NOERROR, ("alias.cdn.test",))),
        ("dangling.test", RRType.A, Answer(Rcode.NXDOMAIN, ("x.test",))),
        ("nx.test", RRType.A, Answer(Rcode.NXDOMAIN)),
        ("sf.test", RRType.A, Answer(Rcode.SERVFAIL)),
        ("rf.test", RRType.A, Answer(Rcode.REFUSED)),
        ("nd.test", RRType.A, Answer(Rcode.NOERROR)),
        ("to.test", RRType.A, None),
    ],
)
def test_static_zone(name: str, qtype: int, expected: Answer | None) -> None:
    assert ZONE(name, qtype) == expected


def test_static_zone_cname_into_a_fault() -> None:
    zone = StaticZone(
        cnames={"a.test": "b.test", "c.test": "d.test"},
        faults={"b.test": "servfail", "d.test": "nodata"},
    )
    assert zone("a.test", RRType.A) == Answer(Rcode.SERVFAIL)
    assert zone("c.test", RRType.A) == Answer(Rcode.NOERROR, ("d.test",))


def test_static_zone_wildcard_cname_and_fault() -> None:
    zone = StaticZone(
        records={"origin.test": ["192.0.2.1"]},
        cnames={"*.blob.test": "origin.test"},
        faults={"*.down.test": "timeout"},
    )
    assert zone("acct.blob.test", RRType.A) == Answer(
        Rcode.NOERROR, ("origin.test",), ("192.0.2.1",)
    )
    assert zone("x.down.test", RRType.A) is None


def test_static_zone_bounds_cname_chains() -> None:
    loop = StaticZone(cnames={"a.test": "b.test", "b.test": "a.test"})
    assert loop("a.test", RRType.A) == Answer(Rcode.SERVFAIL)
    chain = {f"n{i}.test": f"n{i + 1}.test" for i in range(9)}
    long_chain = StaticZone(records={"n9.test": ["192.0.2.1"]}, cnames=chain)
    assert long_chain("n1.test", RRType.A).addresses == ("192.0.2.1",)  # type: ignore[union-attr]
    assert long_chain("n0.test", RRType.A) == Answer(Rcode.SERVFAIL)  # 9 hops


@pytest.mark.parametrize(
    "kwargs",
    [
        {"records": {"a.test": ["not-an-ip"]}},
        {"faults": {"a.test": "on-fire"}},
        {"records": {"a.test": ["192.0.2.1"]}, "cnames": {"A.test.": "b.test"}},
        {"cnames": {"a.test": "bad..target"}},
        {"records": {"a" * 64 + ".test": ["192.0.2.1"]}},
    ],
)
def test_static_zone_rejects_bad_definitions(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StaticZone(**kwargs)


def test_static_zone_ttl() -> None:
    assert StaticZone(records={"a.test": ["192.0.2.1"]}, ttl=7)("a.test", 1) == Answer(
        Rcode.NOERROR, (), ("192.0.2.1",), 7
    )


# --- respond, no network -------------------------------------------------------------


def test_respond_ignores_garbage() -> None:
    assert respond(ZONE, b"") is None
    assert respond(ZONE, b"\x00" * 12) is None
    assert respond(ZONE, b"\xff" * 40) is None


def test_respond_refuses_other_opcodes_and_classes() -> None:
    status = bytearray(build_query("a.test", 1))
    status[2] |= 2 << 3  # opcode 2 (STATUS)
    assert parse_response(respond(ZONE, bytes(status)) or b"").rcode == Rcode.NOTIMP
    chaos = build_query("a.test", 1)[:-2] + b"\x00\x03"
    assert parse_response(respond(ZONE, chaos) or b"").rcode == Rcode.REFUSED


def test_respond_drops_timeouts() -> None:
    assert respond(ZONE, build_query("to.test", 1)) is None


# --- over loopback -------------------------------------------------------------------


@asynccontextmanager
async def running(resolve: Resolve = ZONE, host: str = "127.0.0.1") -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        port: int = await tg.start(partial(serve_dns, resolve, host=host))
        yield port
        tg.cancel_scope.cancel()


def resolver(port: int, host: str = "127.0.0.1") -> aiodns.DNSResolver:
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return aiodns.DNSResolver(nameservers=[server], timeout=1, tries=1)


async def query(
    port: int, name: str, qtype: str, host: str = "127.0.0.1"
) -> list[tuple[str, int, str]]:
    """(owner, type, data) for each answer record, data being the address or CNAME target."""
    async with resolver(port, host) as dns:
        with anyio.fail_after(5):
            result = await dns.query_dns(name, qtype)
    rows = []
    for rr in result.answer:
        if isinstance(rr.data, pycares.CNAMERecordData):
            data = rr.data.cname
        else:
            assert isinstance(rr.data, pycares.ARecordData | pycares.AAAARecordData)
            data = rr.data.addr
        rows.append((rr.name, rr.type, data))
    return rows


async def error_code(port: int, name: str, qtype: str = "A") -> int:
    async with resolver(port) as dns:
        with pytest.raises(DNSError) as caught, anyio.fail_after(5):
            await dns.query_dns(name, qtype)
    code: int = caught.value.args[0]
    return code


@pytest.mark.anyio
async def test_a_and_aaaa() -> None:
    async with running() as port:
        assert await query(port, "a.test", "A") == [
            ("a.test", RRType.A, "192.0.2.1"),
            ("a.test", RRType.A, "192.0.2.2"),
        ]
        assert await query(port, "a.test", "AAAA") == [("a.test", RRType.AAAA, "2001:db8::1")]


@pytest.mark.anyio
async def test_result_shape() -> None:
    async with running() as port, resolver(port) as dns:
        result = await dns.query_dns("a.test", "A")
    assert (result.authority, result.additional) == ([], [])
    rr = result.answer[0]
    assert type(rr).__name__ == "DNSRecord"
    assert isinstance(rr.data, pycares.ARecordData)
    assert (rr.name, rr.type, rr.record_class, rr.ttl, rr.data.addr) == (
        "a.test",
        1,
        1,
        60,
        "192.0.2.1",
    )


@pytest.mark.anyio
async def test_cname_chain() -> None:
    async with running() as port:
        assert await query(port, "www.test", "A") == [
            ("www.test", RRType.CNAME, "alias.cdn.test"),
            ("alias.cdn.test", RRType.CNAME, "edge.cdn.test"),
            ("edge.cdn.test", RRType.A, "198.51.100.1"),
        ]
        assert (await query(port, "www.test", "AAAA"))[-1] == (
            "edge.cdn.test",
            RRType.AAAA,
            "2001:db8::5",
        )


@pytest.mark.anyio
async def test_wildcard() -> None:
    async with running() as port:
        assert await query(port, "deep.host.wild.test", "A") == [
            ("deep.host.wild.test", RRType.A, "192.0.2.9")
        ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "qtype", "code"),
    [
        ("missing.test", "A", ARES_ENOTFOUND),
        ("nx.test", "A", ARES_ENOTFOUND),
        ("dangling.test", "A", ARES_ENOTFOUND),
        ("sf.test", "A", ARES_ESERVFAIL),
        ("rf.test", "A", ARES_EREFUSED),
        ("nd.test", "A", ARES_ENODATA),
        ("v4only.test", "AAAA", ARES_ENODATA),
    ],
)
async def test_errors(name: str, qtype: str, code: int) -> None:
    async with running() as port:
        assert await error_code(port, name, qtype) == code


@pytest.mark.anyio
async def test_timeout_fault_gets_no_answer() -> None:
    async with running() as port:
        started = time.monotonic()
        code = None
        async with resolver(port) as dns:
            with anyio.move_on_after(2.5) as scope:
                try:
                    await dns.query_dns("to.test", "A")
                except DNSError as exc:
                    code = exc.args[0]
        elapsed = time.monotonic() - started
        # c-ares gives up on its own after ~1 s; our deadline is the backstop.
        assert scope.cancelled_caught or code == ARES_ETIMEOUT
        assert elapsed < 2.6
        # The server is still fine afterwards.
        assert await query(port, "v4only.test", "A") == [("v4only.test", RRType.A, "192.0.2.4")]


@pytest.mark.anyio
async def test_large_answer_truncates_over_udp_and_completes_over_tcp() -> None:
    async with running() as port:
        async with await anyio.create_connected_udp_socket("127.0.0.1", port) as udp:
            await udp.send(build_query("big.test", 1, ident=42))
            with anyio.fail_after(2):
                raw = await udp.receive()
        assert len(raw) <= UDP_MAX_SIZE
        response = parse_response(raw)
        assert (response.id, response.truncated, response.answers) == (42, True, ())
        # c-ares sees TC, retries over TCP and gets every record.
        rows = await query(port, "big.test", "A")
        assert [data for _, _, data in rows] == list(BIG)


@pytest.mark.anyio
async def test_udp_survives_garbage_and_echoes_letter_case() -> None:
    async with running() as port:
        async with await anyio.create_connected_udp_socket("127.0.0.1", port) as udp:
            for junk in (b"", b"\x00", b"\xff" * 512, build_query("a.test", 1)[:20]):
                await udp.send(junk)
            mixed = build_query("A.tEsT", 1, ident=7)
            await udp.send(mixed)
            with anyio.fail_after(2):
                raw = await udp.receive()
        assert raw[12 : len(mixed)] == mixed[12:]  # question echoed byte for byte
        assert [r.data for r in parse_response(raw).answers] == ["192.0.2.1", "192.0.2.2"]


def tcp_message(ident: int, *labels: bytes, qtype: int = 1) -> bytes:
    """A length-prefixed query, built by hand."""
    name = b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"
    body = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", qtype, 1)
    return struct.pack("!H", len(body)) + body


@pytest.mark.anyio
async def test_tcp_raw_several_queries_per_connection() -> None:
    async with running() as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        # Both queries in one write, then a dropped one, then another: answers come in order.
        await stream.send(
            tcp_message(1, b"a", b"test") + tcp_message(2, b"v4only", b"test", qtype=28)
        )
        await stream.send(tcp_message(3, b"to", b"test"))
        await stream.send(tcp_message(4, b"www", b"test"))
        received = b""
        responses: list[Response] = []
        with anyio.fail_after(3):
            while len(responses) < 3:
                received += await stream.receive()
                while len(received) >= 2 and len(received) >= 2 + int.from_bytes(received[:2]):
                    size = int.from_bytes(received[:2])
                    responses.append(parse_response(received[2 : 2 + size]))
                    received = received[2 + size :]
    assert [r.id for r in responses] == [1, 2, 4]
    assert [r.data for r in responses[0].answers] == ["192.0.2.1", "192.0.2.2"]
    assert (responses[1].rcode, responses[1].answers) == (Rcode.NOERROR, ())
    assert [(r.rtype, r.data) for r in responses[2].answers] == [
        (RRType.CNAME, "alias.cdn.test"),
        (RRType.CNAME, "edge.cdn.test"),
        (RRType.A, "198.51.100.1"),
    ]
    assert all(r.authoritative and not r.truncated for r in responses)


@pytest.mark.anyio
async def test_tcp_closes_on_oversized_or_garbage_framing() -> None:
    async with running() as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(struct.pack("!H", TCP_MAX_QUERY + 1) + b"\x00" * 64)
            with anyio.fail_after(2), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
        # A garbage message inside valid framing is ignored, the connection stays.
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(struct.pack("!H", 5) + b"junk!" + tcp_message(9, b"a", b"test"))
            with anyio.fail_after(2):
                data = await stream.receive()
            assert parse_response(data[2:]).id == 9
        assert await query(port, "a.test", "AAAA") == [("a.test", RRType.AAAA, "2001:db8::1")]


@pytest.mark.anyio
async def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:  # pragma: no cover - hosts without IPv6
        pytest.skip(f"no IPv6 loopback: {exc}")
    async with running(host="::1") as port:
        assert await query(port, "a.test", "A", host="::1") == [
            ("a.test", RRType.A, "192.0.2.1"),
            ("a.test", RRType.A, "192.0.2.2"),
        ]


@pytest.mark.anyio
async def test_two_servers_get_different_ports() -> None:
    async with running() as first, running() as second:
        assert first != second
        assert await query(second, "a.test", "AAAA") == [("a.test", RRType.AAAA, "2001:db8::1")]


@pytest.mark.anyio
@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "localhost", "::"])
async def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        await serve_dns(ZONE, host=host)


@pytest.mark.anyio
async def test_explicit_port_taken_fails() -> None:
    async with running() as port:
        with pytest.raises(OSError):
            await serve_dns(ZONE, port=port)
