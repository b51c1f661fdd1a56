"""The lab's SOCKS5 proxy (RFC 1928, no authentication, CONNECT only)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import struct
from collections.abc import Callable, Mapping
from functools import partial

import anyio
from anyio.abc import SocketStream, TaskStatus
from anyio.streams.buffered import BufferedByteReceiveStream

from scanner.lab.relay import IDLE_TIMEOUT, connect_loopback, intercept, relay, shielded
from scanner.lab.zone import Fault, LabHost

SUCCEEDED, NOT_ALLOWED, HOST_UNREACHABLE, REFUSED, CMD_UNSUPPORTED, ATYP_UNSUPPORTED = 0, 2, 4, 5, 7, 8


def reply(code: int) -> bytes:
    return bytes([5, code, 0, 1]) + socket.inet_aton("0.0.0.0") + struct.pack("!H", 0)


async def _request(reader: BufferedByteReceiveStream) -> tuple[int, int, str, int]:
    """(command, address type, destination, port) after the greeting."""
    ver, nmethods = await reader.receive_exactly(2)
    if ver != 5:
        raise ValueError("not SOCKS5")
    methods = await reader.receive_exactly(nmethods)
    return ver, nmethods, methods.hex(), 0


async def handle(hosts: Mapping[str, LabHost], connect_timeout: float,
                 inspect: Callable[[str], ssl.SSLContext] | None, client: SocketStream) -> None:
    async with client:
        reader = BufferedByteReceiveStream(client)
        try:
            with anyio.fail_after(10):
                ver, nmethods = await reader.receive_exactly(2)
                if ver != 5:
                    return
                methods = await reader.receive_exactly(nmethods)
                if 0 not in methods:
                    await client.send(b"\x05\xff")
                    return
                await client.send(b"\x05\x00")
                _ver, cmd, _rsv, atyp = await reader.receive_exactly(4)
                if atyp == 1:
                    dest = socket.inet_ntop(socket.AF_INET, await reader.receive_exactly(4))
                elif atyp == 4:
                    dest = socket.inet_ntop(socket.AF_INET6, await reader.receive_exactly(16))
                elif atyp == 3:
                    (length,) = await reader.receive_exactly(1)
                    dest = (await reader.receive_exactly(length)).decode("idna").lower()
                else:
                    await client.send(reply(ATYP_UNSUPPORTED))
                    return
                (port,) = struct.unpack("!H", await reader.receive_exactly(2))
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, TimeoutError,
                UnicodeError, OSError):
            return
        if cmd != 1:
            await client.send(reply(CMD_UNSUPPORTED))
            return
        host = hosts.get(dest) or next((h for h in hosts.values() if h.address == dest), None)
        if host is not None and host.delay_ms:
            await anyio.sleep(host.delay_ms / 1000)
        if host is None:
            code = HOST_UNREACHABLE if atyp == 3 else NOT_ALLOWED
            await client.send(reply(code if _is_ip(dest) or atyp == 3 else NOT_ALLOWED))
            return
        if Fault.DENIED in host.faults:
            await client.send(reply(NOT_ALLOWED))
            return
        if Fault.NXDOMAIN in host.faults and atyp == 3:
            await client.send(reply(HOST_UNREACHABLE))
            return
        try:
            upstream = await connect_loopback(host.address, port, connect_timeout)
        except TimeoutError:
            await client.send(reply(HOST_UNREACHABLE))
            return
        except OSError:
            await client.send(reply(REFUSED))
            return
        async with upstream:
            await client.send(reply(SUCCEEDED))
            if inspect is not None and Fault.INTERCEPT in host.faults:
                await intercept(client, upstream, bytes(reader.buffer), inspect(host.name), host.name)
                return
            await relay(client, upstream, reader.buffer)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


async def serve_socks5(hosts: Mapping[str, LabHost], *, host: str = "127.0.0.1", port: int = 0,
                       connect_timeout: float = 1.0,
                       inspect: Callable[[str], ssl.SSLContext] | None = None,
                       task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))

        await listener.serve(shielded(partial(handle, hosts, connect_timeout, inspect), IDLE_TIMEOUT * 4))
