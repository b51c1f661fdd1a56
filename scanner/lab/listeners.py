"""The lab's endpoint listeners: plain HTTP, TLS, and a port that drops every SYN."""

from __future__ import annotations

import socket
import ssl
from contextlib import ExitStack
from enum import StrEnum

import anyio
from anyio.abc import ByteStream, SocketStream, TaskGroup
from anyio.streams.tls import TLSStream

from scanner.errors import ProtocolError
from scanner.lab.relay import read_head, shielded

TLS_PORTS = frozenset({443})
BODY = b"scanner lab: this is the service\n"
BLOCK_PAGE = (b"<html><head><title>Access denied</title></head><body><h1>Access denied</h1>"
              b"<p>This site is blocked by your organisation's web gateway.</p></body></html>\n")
ENDLESS_LIMIT = 64 * 1024 * 1024  # an endless header still ends somewhere: at most 64 MiB sent


class Behaviour(StrEnum):
    """How a lab listener answers once connected (and, on TLS ports, after the handshake)."""

    SERVICE = "service"  # the real service: 200, Server: scanner-lab, its body
    BLOCK_PAGE = "block_page"  # a web gateway's 200 with an HTML block page
    GARBAGE = "garbage"  # bytes that are neither TLS nor HTTP, before any handshake
    SILENT = "silent"  # nothing, ever
    ENDLESS_HEADER = "endless_header"  # a response head that never ends


def _head(status: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers),
             f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _answer_http(stream: ByteStream, behaviour: Behaviour = Behaviour.SERVICE) -> None:
    try:
        with anyio.fail_after(10):
            await read_head(stream)
        if behaviour is Behaviour.ENDLESS_HEADER:
            await stream.send(b"HTTP/1.1 200 OK\r\n")
            line = b"X-Filler: " + b"a" * 1000 + b"\r\n"
            for _ in range(ENDLESS_LIMIT // len(line)):
                await stream.send(line)
            return
        if behaviour is Behaviour.BLOCK_PAGE:
            await stream.send(_head("200 OK", [("Server", "lab-gateway"),
                                               ("Content-Type", "text/html")], BLOCK_PAGE))
            return
        await stream.send(_head("200 OK", [("Server", "scanner-lab"), ("Content-Type", "text/plain")],
                                BODY))
    except (ProtocolError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError,
            anyio.EndOfStream, OSError, ssl.SSLError):
        pass


async def _garbage(stream: ByteStream) -> None:
    """What a confused server (or a non-TLS service on 443) sends: not a TLS record."""
    try:
        await stream.send(b"\x15\x99\x99garbage, not TLS and not HTTP\r\n" * 64)
        with anyio.move_on_after(10):
            while await stream.receive():
                pass
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
        pass


async def _silent(stream: ByteStream) -> None:
    with anyio.move_on_after(14):
        try:
            while await stream.receive():
                pass  # read and drop: never a word back
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError):
            pass


async def serve_endpoint(address: str, port: int, context: ssl.SSLContext | None,
                         tg: TaskGroup, behaviour: Behaviour = Behaviour.SERVICE) -> None:
    """Listen on address:port and answer HTTP (over TLS when `context` is given)."""
    listener = await anyio.create_tcp_listener(local_host=address, local_port=port, backlog=4096)

    async def handle(client: SocketStream) -> None:
        async with client:
            with anyio.move_on_after(15):
                if behaviour is Behaviour.GARBAGE:
                    await _garbage(client)
                    return
                if behaviour is Behaviour.SILENT:
                    await _silent(client)
                    return
                if context is None:
                    await _answer_http(client, behaviour)
                    return
                try:
                    tls = await TLSStream.wrap(client, server_side=True, ssl_context=context,
                                               standard_compatible=False)
                except (ssl.SSLError, OSError, anyio.BrokenResourceError, anyio.EndOfStream):
                    return
                await _answer_http(tls, behaviour)

    async def run() -> None:
        async with listener:
            await listener.serve(shielded(handle, 20))

    tg.start_soon(run)


class AcceptAll:
    """An address that accepts every port a scanner might pick as a control port: the
    whole dynamic range listens (never accepting: the kernel completes the handshakes
    from the backlog, as a SYN proxy would), so no privileges or packet filter are needed."""

    def __init__(self, address: str, ports: range, skip: frozenset[int]) -> None:
        self.socks: list[socket.socket] = []
        # ports it could not listen on: out of descriptors, or in use (a TIME_WAIT left by
        # an earlier client on that port conflicts with the wildcard address)
        self.missing: list[int] = []
        try:
            for port in ports:
                if port in skip:
                    continue
                try:
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                except OSError:  # out of descriptors
                    self.missing.append(port)
                    continue
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((address, port))
                    sock.listen(8)
                except OSError:
                    sock.close()
                    self.missing.append(port)
                    continue
                self.socks.append(sock)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()


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
