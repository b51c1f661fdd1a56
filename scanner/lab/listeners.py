"""The lab's endpoint listeners: plain HTTP, TLS, and a port that drops every SYN."""

from __future__ import annotations

import socket
import ssl
from contextlib import ExitStack
from importlib import resources
from pathlib import Path

import anyio
from anyio.abc import ByteStream, SocketStream, TaskGroup
from anyio.streams.tls import TLSStream

from scanner.errors import ProtocolError
from scanner.lab.relay import read_head, shielded

TLS_PORTS = frozenset({443})
BODY = b"scanner lab: this is the service\n"


def lab_ssl_context() -> ssl.SSLContext:
    certs = Path(str(resources.files("scanner.lab") / "certs"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs / "lab-cert.pem", certs / "lab-key.pem")
    return context


async def _answer_http(stream: ByteStream) -> None:
    try:
        with anyio.fail_after(10):
            await read_head(stream)
        await stream.send(
            b"HTTP/1.1 200 OK\r\nServer: scanner-lab\r\nContent-Type: text/plain\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + BODY
        )
    except (ProtocolError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError,
            anyio.EndOfStream, OSError, ssl.SSLError):
        pass


async def serve_endpoint(address: str, port: int, context: ssl.SSLContext | None,
                         tg: TaskGroup) -> None:
    """Listen on address:port and answer HTTP (over TLS when `context` is given)."""
    listener = await anyio.create_tcp_listener(local_host=address, local_port=port, backlog=4096)

    async def handle(client: SocketStream) -> None:
        async with client:
            with anyio.move_on_after(15):
                if context is None:
                    await _answer_http(client)
                    return
                try:
                    tls = await TLSStream.wrap(client, server_side=True, ssl_context=context,
                                               standard_compatible=False)
                except (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                    return
                await _answer_http(tls)

    async def run() -> None:
        async with listener:
            await listener.serve(shielded(handle, 20))

    tg.start_soon(run)


class SynDropper:
    """A listener whose accept queue is kept full, so the kernel drops new SYNs:
    connects to it time out exactly as through a dropping firewall, with no privileges."""

    def __init__(self, address: str, port: int) -> None:
        self._stack = ExitStack()
        self.sock = self._stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.sock.bind((address, port))
        self.sock.listen(0)
        bound = self.sock.getsockname()[:2]
        for _ in range(2):  # one fills the queue; the second makes sure
            filler = self._stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            filler.setblocking(False)
            try:
                filler.connect(bound)
            except BlockingIOError:
                pass

    def close(self) -> None:
        self._stack.close()
