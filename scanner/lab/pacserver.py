"""A tiny HTTP server for the lab that serves fixed files (wpad.dat, proxy.pac) on loopback."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from scanner.errors import ProtocolError
from scanner.httphead import parse_request_head
from scanner.lab.relay import read_head

PAC_TYPE = b"application/x-ns-proxy-autoconfig"


async def _answer(stream: SocketStream, files: Mapping[str, bytes]) -> None:
    async with stream:
        try:
            with anyio.fail_after(10):
                head, _ = await read_head(stream)
            request = parse_request_head(head)
            body = files.get(request.target.split("?", 1)[0])
            if body is None:
                await stream.send(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            await stream.send(b"HTTP/1.0 200 OK\r\nContent-Type: " + PAC_TYPE + b"\r\nContent-Length: "
                              + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        except (ProtocolError, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass


async def serve_files(files: Mapping[str, bytes], *, host: str = "127.0.0.1", port: int = 80,
                      task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve `files` (path -> bytes) over HTTP/1.0 on a loopback address until cancelled."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the lab serves loopback only, not {host!r}")
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener, anyio.create_task_group() as tg:

        async def handle(stream: SocketStream) -> None:
            await _answer(stream, files)

        tg.start_soon(listener.serve, handle, tg)
        task_status.started(port or listener.extra(SocketAttribute.local_port))
