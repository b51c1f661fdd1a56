"""The real-server helpers work: dnsmasq answers, squid tunnels and denies, dante relays."""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from tests.integration.servers import (
    AAAA,
    CNAME,
    NOERROR,
    NXDOMAIN,
    A,
    RunningServer,
    SquidServer,
    banner_listener,
    dante,
    dns_query,
    dnsmasq,
    free_port,
    squid,
)

if os.environ.get("SCANNER_TEST_NETNS") != "1":
    pytest.fail(
        "integration tests run real servers and must run inside the private network namespace: use tests/run",
        pytrace=False,
    )

pytestmark = pytest.mark.integration

BANNER = b"hello from the target\n"
USER, PASSWORD = "alice", "Sup3r:s3cret pw"
RECORDS = {
    "allowed.example.test": ["127.0.0.2"],
    "www.allowed.example.test": ["127.0.0.2"],
    "denied.example.test": ["127.0.0.3"],
    "closed.example.test": ["127.0.0.4"],
    "dual.example.test": ["127.0.0.5", "127.0.0.6", "::1"],
    "socks.example.test": ["127.0.0.2"],
}


# ---------------------------------------------------------------- clients


def read_head(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """Read an HTTP response head byte by byte; return status and lower-cased headers."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        if len(data) > 16384:
            raise AssertionError(f"response head too long: {data[:200]!r}")
        chunk = sock.recv(1)
        if not chunk:
            raise AssertionError(f"connection closed inside the response head: {data!r}")
        data += chunk
    status_line, *header_lines = data.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers


def http_connect(
    proxy_port: int, target: str, *, credentials: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], socket.socket]:
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    request = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request += f"Proxy-Authorization: Basic {token}\r\n"
    sock.sendall((request + "\r\n").encode())
    status, headers = read_head(sock)
    return status, headers, sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    return data


def socks5_connect(proxy_port: int, host: str, port: int) -> tuple[int, socket.socket]:
    """SOCKS5 CONNECT by domain name (ATYP 3); return the reply code and the socket."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=10)
    sock.sendall(b"\x05\x01\x00")
    assert recv_exactly(sock, 2) == b"\x05\x00"
    name = host.encode("ascii")
    sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port))
    version, reply, _reserved, atyp = recv_exactly(sock, 4)
    assert version == 5
    address_length = {1: 4, 4: 16}.get(atyp) or recv_exactly(sock, 1)[0]
    recv_exactly(sock, address_length + 2)
    return reply, sock


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def dns() -> Iterator[RunningServer]:
    """dnsmasq on 127.0.0.1:53, the resolver of squid and of dante (via resolv.conf)."""
    with dnsmasq(
        RECORDS,
        nxdomain_names=["missing.example.test"],
        extra_cnames={"alias.example.test": "allowed.example.test"},
    ) as server:
        yield server


@pytest.fixture(scope="module")
def target_port() -> Iterator[int]:
    """One port with a listener on 127.0.0.2 and 127.0.0.3; nothing listens on 127.0.0.4."""
    port = free_port("127.0.0.2")
    with banner_listener("127.0.0.2", port, BANNER), banner_listener("127.0.0.3", port, BANNER):
        yield port


@pytest.fixture(scope="module")
def proxy(dns: RunningServer) -> Iterator[SquidServer]:
    with squid(
        port=free_port(),
        auth_port=free_port(),
        users={USER: PASSWORD},
        allow_domains=[".allowed.example.test", "closed.example.test", "missing.example.test"],
    ) as server:
        yield server


@pytest.fixture(scope="module")
def socks(dns: RunningServer) -> Iterator[RunningServer]:
    with dante(port=free_port()) as server:
        yield server


# ---------------------------------------------------------------- dnsmasq


def test_dnsmasq_answers_records_authoritatively(dns: RunningServer) -> None:
    reply = dns_query("allowed.example.test", port=dns.port)
    assert (reply.rcode, reply.authoritative, reply.answers) == (0, True, ((A, "127.0.0.2"),))
    dual_a = dns_query("dual.example.test", A, port=dns.port)
    assert sorted(dual_a.addresses()) == ["127.0.0.5", "127.0.0.6"]
    dual_aaaa = dns_query("dual.example.test", AAAA, port=dns.port)
    assert dual_aaaa.answers == ((AAAA, "::1"),)


def test_dnsmasq_nodata_and_nxdomain(dns: RunningServer) -> None:
    no_aaaa = dns_query("allowed.example.test", AAAA, port=dns.port)
    assert (no_aaaa.rcode, no_aaaa.answers) == (NOERROR, ())
    for name in ("missing.example.test", "sub.allowed.example.test", "other.invalid", "bare"):
        assert dns_query(name, port=dns.port).rcode == NXDOMAIN, name
        assert dns_query(name, AAAA, port=dns.port).rcode == NXDOMAIN, name


def test_dnsmasq_cname(dns: RunningServer) -> None:
    reply = dns_query("alias.example.test", port=dns.port)
    assert reply.rcode == 0
    assert reply.answers == ((CNAME, "allowed.example.test"), (A, "127.0.0.2"))


def test_dnsmasq_on_another_port() -> None:
    with dnsmasq({"x.test": ["127.0.0.9"]}, port=free_port()) as server:
        assert dns_query("x.test", port=server.port).addresses() == ["127.0.0.9"]
        assert "query[A] x.test" in server.log()


def test_system_resolver_uses_the_namespace_dnsmasq(dns: RunningServer) -> None:
    infos = socket.getaddrinfo("allowed.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)
    assert {info[4][0] for info in infos} == {"127.0.0.2"}
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("missing.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)


# ---------------------------------------------------------------- squid


def test_squid_tunnels_to_an_allowed_name(proxy: SquidServer, target_port: int) -> None:
    status, _headers, sock = http_connect(proxy.port, f"www.allowed.example.test:{target_port}")
    with sock:
        assert status == 200
        assert recv_exactly(sock, len(BANNER)) == BANNER


def test_squid_denies_other_names(proxy: SquidServer, target_port: int) -> None:
    for target in (f"denied.example.test:{target_port}", f"127.0.0.2:{target_port}"):
        status, headers, sock = http_connect(proxy.port, target)
        sock.close()
        assert status == 403, target
        assert headers["x-squid-error"] == "ERR_ACCESS_DENIED 0"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET http://allowed.example.test/ HTTP/1.1\r\nHost: allowed.example.test\r\n\r\n")
        status, headers = read_head(sock)
    assert (status, headers["x-squid-error"]) == (403, "ERR_ACCESS_DENIED 0")


def test_squid_connect_fail_and_unresolvable_name(proxy: SquidServer, target_port: int) -> None:
    status, headers, sock = http_connect(proxy.port, f"closed.example.test:{target_port}")
    sock.close()
    assert (status, headers["x-squid-error"]) == (503, "ERR_CONNECT_FAIL 111")
    status, headers, sock = http_connect(proxy.port, f"missing.example.test:{target_port}")
    sock.close()
    # Squid 5.7 reports a name that does not resolve as "cannot forward", not ERR_DNS_FAIL.
    assert (status, headers["x-squid-error"]) == (500, "ERR_CANNOT_FORWARD 0")


def test_squid_auth_port(proxy: SquidServer, target_port: int) -> None:
    assert proxy.auth_port is not None
    target = f"allowed.example.test:{target_port}"
    status, headers, sock = http_connect(proxy.auth_port, target)
    sock.close()
    assert status == 407
    assert headers["proxy-authenticate"] == 'Basic realm="scanner-test"'
    assert headers["x-squid-error"] == "ERR_CACHE_ACCESS_DENIED 0"

    status, headers, sock = http_connect(proxy.auth_port, target, credentials=(USER, "wrong"))
    sock.close()
    assert status == 407

    status, headers, sock = http_connect(proxy.auth_port, target, credentials=(USER, PASSWORD))
    with sock:
        assert status == 200
        assert recv_exactly(sock, len(BANNER)) == BANNER

    status, headers, sock = http_connect(
        proxy.auth_port, f"denied.example.test:{target_port}", credentials=(USER, PASSWORD)
    )
    sock.close()
    assert (status, headers["x-squid-error"]) == (403, "ERR_ACCESS_DENIED 0")


# ---------------------------------------------------------------- dante


def test_dante_connects_by_name(socks: RunningServer, dns: RunningServer, target_port: int) -> None:
    reply, sock = socks5_connect(socks.port, "socks.example.test", target_port)
    with sock:
        assert reply == 0
        assert recv_exactly(sock, len(BANNER)) == BANNER
    # Dante resolved through the namespace's /etc/resolv.conf, i.e. our dnsmasq
    # (which may write its log a moment after answering).
    for _ in range(40):
        if "query[A] socks.example.test from 127.0.0.1" in dns.log():
            break
        time.sleep(0.05)
    else:
        raise AssertionError("dnsmasq never saw dante's query:\n" + dns.log())


def test_dante_failures(socks: RunningServer, target_port: int) -> None:
    reply, sock = socks5_connect(socks.port, "closed.example.test", target_port)
    sock.close()
    assert reply == 5  # connection refused
    reply, sock = socks5_connect(socks.port, "missing.example.test", target_port)
    sock.close()
    assert reply == 4  # host unreachable: the name does not resolve
    reply, sock = socks5_connect(socks.port, "192.0.2.1", target_port)
    sock.close()
    assert reply == 2  # not allowed by the ruleset
