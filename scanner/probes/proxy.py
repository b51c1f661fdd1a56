"""Probes through a proxy: HTTP CONNECT (our own bounded head parser) and SOCKS (python-socks).

Both connect to the proxy's IP address with our own socket first, so a proxy
that does not accept the connection is told apart, with its errno, from a
proxy that answers.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
from python_socks.async_.anyio import Proxy

from scanner.errors import ProtocolError
from scanner.httphead import MAX_HEAD, auth_schemes, find_head_end, parse_response_head
from scanner.models import ConnectResult, ConnectStatus, Route, RouteKind
from scanner.probes.tcp import ConnectFailed, abort, open_socket, set_linger_0
from scanner.verdicts import state_for_http_status, state_for_socks_reply

USER_AGENT = "scanner/0.1"


def _elapsed(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def connect_request(host: str, port: int, route: Route) -> bytes:
    """The CONNECT request; anonymous unless the route carries credentials."""
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}"]
    if route.username is not None:
        token = base64.b64encode(f"{route.username}:{route.password or ''}".encode()).decode()
        lines.append(f"Proxy-Authorization: Basic {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


async def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of the head; returns (head, bytes after it, which belong to the tunnel)."""
    loop = asyncio.get_running_loop()
    buffer = bytearray()
    while True:
        chunk = await loop.sock_recv(sock, 16384)
        if not chunk:
            if not buffer:
                raise ProtocolError("proxy closed the connection without answering")
            raise ProtocolError("proxy closed the connection in the middle of its answer")
        buffer += chunk
        end = find_head_end(buffer, MAX_HEAD)
        if end is not None:
            return bytes(buffer[:end]), bytes(buffer[end:])


async def probe_http_connect(
    proxy_address: str, route: Route, host: str, port: int, timeout: float
) -> ConnectResult:
    result, tunnel = await open_http_connect(proxy_address, route, host, port, timeout)
    if tunnel is not None:
        abort(tunnel[0])
    return result


async def open_http_connect(
    proxy_address: str, route: Route, host: str, port: int, timeout: float
) -> tuple[ConnectResult, tuple[socket.socket, bytes] | None]:
    """CONNECT; on a 2xx the socket stays open and comes back with the bytes that followed
    the head (the start of the tunnel)."""
    start = time.perf_counter()
    try:
        sock = await open_socket(proxy_address, route.port, timeout)
    except ConnectFailed as failed:
        return ConnectResult(ConnectStatus.PROXY_UNREACHABLE, _elapsed(start), None,
                             failed.detail, proxy_address), None
    loop = asyncio.get_running_loop()
    try:
        with anyio.fail_after(timeout):
            await loop.sock_sendall(sock, connect_request(host, port, route))
            head_bytes, tunnel = await _read_head(sock)
        head = parse_response_head(head_bytes)
    except TimeoutError:
        abort(sock)
        return ConnectResult(ConnectStatus.TIMEOUT, _elapsed(start), None,
                             f"proxy sent no complete answer to CONNECT within {timeout:g}s",
                             proxy_address), None
    except ConnectionResetError:
        abort(sock)
        return ConnectResult(ConnectStatus.DENIED, _elapsed(start), None,
                             "proxy reset the connection instead of answering (a TCP_RESET policy?)",
                             proxy_address), None
    except ProtocolError as exc:
        abort(sock)
        return ConnectResult(ConnectStatus.ERROR, _elapsed(start), None, exc.message, proxy_address), None
    except OSError as exc:
        abort(sock)
        return ConnectResult(ConnectStatus.ERROR, _elapsed(start), None,
                             f"proxy connection failed: {exc.strerror or exc}", proxy_address), None
    except BaseException:
        abort(sock)
        raise
    status = state_for_http_status(head.status)
    scrub = _scrubber(route)
    squid_error = scrub(head.get("x-squid-error"))
    detail = f"HTTP {head.status}" + (f" {scrub(head.reason)}" if head.reason else "")
    if squid_error:
        detail += f", {squid_error}"
    result = ConnectResult(status, _elapsed(start), head.status, detail, proxy_address,
                           auth_schemes=auth_schemes(head), proxy_error=squid_error)
    if status is not ConnectStatus.TUNNEL:
        abort(sock)
        return result, None
    return result, (sock, tunnel)


def _scrubber(route: Route) -> Callable[[str | None], str | None]:
    """Hides our own credentials should a proxy echo them back in its answer."""
    secrets = [x for x in (route.password, route.username) if x]
    if route.username is not None:
        secrets.insert(0, base64.b64encode(
            f"{route.username}:{route.password or ''}".encode()).decode())

    def scrub(text: str | None) -> str | None:
        if text is None:
            return None
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return scrub


class _Connected:
    """Hands python-socks a stream we connected ourselves (its `forward` hook)."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self._stream = stream

    async def connect(self, dest_host: str, dest_port: int, timeout: float | None = None,
                      **kwargs: Any) -> anyio.abc.SocketStream:
        return self._stream


_SOCKS_TYPES = {RouteKind.SOCKS4: ProxyType.SOCKS4, RouteKind.SOCKS5: ProxyType.SOCKS5,
                RouteKind.SOCKS5H: ProxyType.SOCKS5}


async def probe_socks(
    proxy_address: str, route: Route, dest: str, port: int, timeout: float
) -> ConnectResult:
    """`dest` is the host name for socks5h (the proxy resolves it), else an IP address."""
    result, stream = await open_socks(proxy_address, route, dest, port, timeout)
    if stream is not None:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
    return result


async def open_socks(
    proxy_address: str, route: Route, dest: str, port: int, timeout: float
) -> tuple[ConnectResult, anyio.abc.SocketStream | None]:
    """As `probe_socks`, with the tunnel handed back open when it was granted."""
    start = time.perf_counter()
    try:
        sock = await open_socket(proxy_address, route.port, timeout)
    except ConnectFailed as failed:
        return ConnectResult(ConnectStatus.PROXY_UNREACHABLE, _elapsed(start), None,
                             failed.detail, proxy_address), None
    set_linger_0(sock)
    stream = await anyio.abc.SocketStream.from_socket(sock)
    proxy = Proxy(
        _SOCKS_TYPES[route.kind], proxy_address, route.port,
        username=route.username, password=route.password,
        rdns=route.kind is RouteKind.SOCKS5H,
        forward=_Connected(stream),  # type: ignore[arg-type]
    )
    granted = False
    try:
        await proxy.connect(dest, port, timeout=timeout)
        granted = True
    except ProxyTimeoutError:
        return ConnectResult(ConnectStatus.TIMEOUT, _elapsed(start), None,
                             f"SOCKS proxy gave no complete answer within {timeout:g}s",
                             proxy_address), None
    except ProxyError as exc:
        code = exc.error_code if isinstance(exc.error_code, int) else None
        if code is not None:
            status, text = state_for_socks_reply(route.kind, code)
            return ConnectResult(status, _elapsed(start), None, f"SOCKS reply {code}: {text}",
                                 proxy_address, reply_code=code), None
        text = str(exc)
        status = ConnectStatus.AUTH_REQUIRED if "auth" in text.lower() else ConnectStatus.ERROR
        return ConnectResult(status, _elapsed(start), None, text, proxy_address), None
    except (ProxyConnectionError, OSError) as exc:
        return ConnectResult(ConnectStatus.ERROR, _elapsed(start), None,
                             f"SOCKS exchange failed: {exc.strerror or exc}", proxy_address), None
    except (asyncio.IncompleteReadError, anyio.EndOfStream, anyio.BrokenResourceError):
        return ConnectResult(ConnectStatus.ERROR, _elapsed(start), None,
                             "SOCKS proxy closed the connection in the middle of its answer",
                             proxy_address), None
    except ValueError as exc:  # python-socks on malformed replies
        return ConnectResult(ConnectStatus.ERROR, _elapsed(start), None,
                             f"malformed SOCKS reply: {exc}", proxy_address), None
    finally:
        if not granted:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
    return ConnectResult(ConnectStatus.TUNNEL, _elapsed(start), None, None, proxy_address), stream
