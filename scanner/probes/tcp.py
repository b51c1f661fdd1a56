"""Direct TCP connects to IP addresses we resolved ourselves, keeping the real errno.

`anyio.connect_tcp` would resolve names with the system resolver and hide the
errno behind a bare OSError, so probes use non-blocking sockets on the running
loop instead and close them with SO_LINGER 0: no TIME_WAIT left behind.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Sequence

import anyio

from scanner.models import Attempt, ConnectResult, ConnectStatus
from scanner.verdicts import errno_detail, state_for_errno

_LINGER_0 = struct.pack("ii", 1, 0)


def set_linger_0(sock: socket.socket) -> None:
    """Make a later close send an RST instead of a FIN: the port is freed at once."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
    except OSError:
        pass


def abort(sock: socket.socket) -> None:
    set_linger_0(sock)
    sock.close()


class ConnectFailed(Exception):
    """A connect that did not complete; carries the verdict."""

    def __init__(self, status: ConnectStatus, detail: str, errno: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errno = errno


async def open_socket(address: str, port: int, timeout: float) -> socket.socket:
    """A connected non-blocking socket, or ConnectFailed with the connect-scan verdict."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        with anyio.fail_after(timeout):
            await loop.sock_connect(sock, (address, port))
    except TimeoutError:
        abort(sock)
        raise ConnectFailed(ConnectStatus.FILTERED, f"no answer within {timeout:g}s") from None
    except OSError as exc:
        abort(sock)
        raise ConnectFailed(state_for_errno(exc.errno), errno_detail(exc.errno), exc.errno) from None
    except BaseException:
        abort(sock)
        raise
    return sock


async def _attempt(address: str, port: int, timeout: float) -> tuple[Attempt, socket.socket | None]:
    start = time.perf_counter()
    try:
        sock = await open_socket(address, port, timeout)
    except ConnectFailed as failed:
        ms = (time.perf_counter() - start) * 1000
        return Attempt(address, failed.status, round(ms, 3), failed.detail), None
    ms = (time.perf_counter() - start) * 1000
    return Attempt(address, ConnectStatus.LISTENING, round(ms, 3)), sock


async def connect_once(address: str, port: int, timeout: float) -> Attempt:
    attempt, sock = await _attempt(address, port, timeout)
    if sock is not None:
        abort(sock)
    return attempt


async def open_direct(addresses: Sequence[str], port: int, timeout: float
                      ) -> tuple[ConnectResult, socket.socket | None]:
    """Try each address in turn until one listens; report the first that did, else the first.
    The listening socket is handed back open, for the stages after the connect."""
    attempts: list[Attempt] = []
    sock: socket.socket | None = None
    try:
        for address in addresses:
            attempt, sock = await _attempt(address, port, timeout)
            attempts.append(attempt)
            if sock is not None:
                break
    except BaseException:
        if sock is not None:
            abort(sock)
        raise
    chosen = attempts[-1] if attempts[-1].status is ConnectStatus.LISTENING else attempts[0]
    total = round(sum(a.ms for a in attempts), 3)
    return ConnectResult(chosen.status, total, None, chosen.detail, chosen.address, tuple(attempts)), sock


async def probe_direct(addresses: Sequence[str], port: int, timeout: float) -> ConnectResult:
    result, sock = await open_direct(addresses, port, timeout)
    if sock is not None:
        abort(sock)
    return result
