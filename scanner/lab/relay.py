"""Helpers the lab's servers share: bounded head reads, byte relays, loopback connects."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import ByteStream, SocketStream
from anyio.streams.tls import TLSStream

from scanner.errors import ProtocolError
from scanner.httphead import find_head_end
from scanner.models import ConnectStatus
from scanner.probes.streams import Prefixed
from scanner.probes.tcp import ConnectFailed, open_socket
from scanner.probes.tls import client_context

HEAD_LIMIT = 16 * 1024
IDLE_TIMEOUT = 30.0


async def read_head(stream: ByteStream, limit: int = HEAD_LIMIT) -> tuple[bytes, bytes]:
    """(head, bytes after it); ProtocolError on EOF or an oversized head."""
    buffer = bytearray()
    while True:
        try:
            chunk = await stream.receive(4096)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ProtocolError("peer closed before the end of the head") from None
        buffer += chunk
        end = find_head_end(buffer, limit)
        if end is not None:
            return bytes(buffer[:end]), bytes(buffer[end:])


async def _copy(source: ByteStream, sink: ByteStream) -> None:
    try:
        while True:
            with anyio.fail_after(IDLE_TIMEOUT):
                data = await source.receive(65536)
            await sink.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError,
            TimeoutError, OSError):
        pass
    finally:
        try:
            await sink.send_eof()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, RuntimeError):
            pass  # uvloop raises RuntimeError when the transport is already closed


async def relay(a: ByteStream, b: ByteStream, first_to_b: bytes = b"") -> None:
    """Copy bytes both ways until both sides are done."""
    if first_to_b:
        await b.send(first_to_b)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_copy, a, b)
        tg.start_soon(_copy, b, a)


async def intercept(client: ByteStream, upstream: ByteStream, first: bytes,
                    context: ssl.SSLContext, name: str) -> None:
    """What a TLS-inspecting proxy does: terminate the client's TLS with its own certificate,
    speak TLS to the real server, and relay the plaintext between the two."""
    try:
        with anyio.fail_after(10):
            inner = await TLSStream.wrap(Prefixed(client, first) if first else client,
                                         server_side=True, ssl_context=context,
                                         standard_compatible=False)
            outer = await TLSStream.wrap(upstream, hostname=name, ssl_context=client_context(),
                                         standard_compatible=False)
    except (TimeoutError, OSError, anyio.EndOfStream, anyio.BrokenResourceError):
        return
    await relay(inner, outer)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


async def connect_loopback(address: str, port: int, timeout: float) -> SocketStream:
    """The lab's servers only ever connect to loopback addresses."""
    if not is_loopback(address):
        raise ConnectionRefusedError(f"the lab only connects to loopback, not {address}")
    try:
        sock = await open_socket(address, port, timeout)
    except ConnectFailed as failed:
        if failed.status is ConnectStatus.FILTERED:
            raise TimeoutError(failed.detail) from None
        raise ConnectionRefusedError(failed.detail) from None
    return await SocketStream.from_socket(sock)


def shielded(handler: Callable[[SocketStream], Awaitable[None]],
             limit: float) -> Callable[[SocketStream], Awaitable[None]]:
    """A connection handler that cannot take its server down: a hostile or broken
    client ends its own connection, nothing else."""

    async def run(client: SocketStream) -> None:
        with anyio.move_on_after(limit):
            try:
                await handler(client)
            except Exception:  # noqa: S110  (one bad connection must not stop the lab)
                pass

    return run
