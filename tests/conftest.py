"""Test-wide rules: every socket a test opens goes to loopback, or the test fails."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_sendto = socket.socket.sendto


class NonLoopbackTraffic(AssertionError):
    """A test tried to reach an address outside 127.0.0.0/8 and ::1."""


def _check(address: Any) -> None:
    if not isinstance(address, tuple):  # AF_UNIX paths and the like
        return
    host = str(address[0])
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        raise NonLoopbackTraffic(f"a test connected to a host name ({host!r}): use addresses") from None
    if not ip.is_loopback:
        raise NonLoopbackTraffic(f"a test tried to reach {host}: only loopback is allowed")


def _connect(self: socket.socket, address: Any) -> None:
    _check(address)
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


def _sendto(self: socket.socket, data: Any, *args: Any) -> int:
    _check(args[-1])
    return _real_sendto(self, data, *args)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test whose Python-level sockets connect or send beyond loopback.

    The suite also runs inside a private network namespace (tests/run), so
    even traffic from C code (c-ares, squid) cannot leave the machine.
    """
    monkeypatch.setattr(socket.socket, "connect", _connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", _sendto)
    yield


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, bool]]:
    return "asyncio", {"use_uvloop": True}
