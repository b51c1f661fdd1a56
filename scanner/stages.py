"""The stages after the connect: TLS, HTTP and the middlebox check, on the stream the
connect stage kept open (a direct connection or a proxy's tunnel).

Which stages run comes from the endpoint's `Checks`; the verdicts on them live in
`scanner.verdicts`.
"""

from __future__ import annotations

import socket
from dataclasses import replace

import anyio
from anyio.abc import ByteStream, SocketStream

from scanner.certs import Trust
from scanner.middlebox import MiddleboxStage
from scanner.models import (
    ConnectResult,
    ConnectStatus,
    HttpResult,
    HttpStatus,
    MiddleboxResult,
    Probe,
    RouteKind,
    TlsResult,
)
from scanner.probes.http import build_request, http_exchange
from scanner.probes.tcp import ConnectFailed, abort, open_socket
from scanner.probes.tls import tls_handshake

_REACHED = (ConnectStatus.LISTENING, ConnectStatus.TUNNEL)


def fds_per_probe(middlebox: bool) -> int:
    """File descriptors one probe can hold at once: its connection or tunnel (TLS and HTTP
    reuse it; plain HTTP through a proxy opens its own only after the CONNECT's is closed),
    and, beside it, the middlebox check's control connect on direct routes."""
    return 2 if middlebox else 1


def wants_stream(probe: Probe) -> bool:
    """Whether the connect stage should keep its connection open for a later stage.
    (Plain HTTP through an HTTP proxy is a request of its own: absolute-form, no CONNECT.)"""
    checks, port = probe.endpoint.checks, probe.port
    tls, http = checks.tls_on(port), checks.http_on(port)
    if http and not tls and probe.route.kind is RouteKind.HTTP:
        return False
    return tls or http


def confirmed(probe: Probe, tls: TlsResult | None, http: HttpResult | None) -> bool:
    """Did the real service answer: its own certificate, or the HTTP answer the catalog states?"""
    expect = probe.endpoint.checks.http
    stated = bool(expect.status) or expect.header is not None or expect.body is not None
    return ((tls is not None and tls.status.value == "ok")
            or (http is not None and http.status is HttpStatus.OK and stated))


def mark(probe: Probe, connect: ConnectResult, tls: TlsResult | None, http: HttpResult | None,
         middlebox: MiddleboxResult | None, *, verify: bool) -> ConnectResult:
    """The connect state once the later stages are known: `suspect_middlebox` when the
    control port accepted and nothing proved the service; `unverified` under --verify when
    neither a TLS handshake nor an HTTP answer came."""
    if connect.status not in _REACHED:
        return connect
    if middlebox is not None and middlebox.suspect and not confirmed(probe, tls, http):
        return replace(connect, status=ConnectStatus.SUSPECT_MIDDLEBOX, detail=middlebox.detail)
    answered = (tls is not None and tls.handshake_done) or (
        http is not None and http.status is HttpStatus.OK)
    if verify and not answered:
        return replace(connect, status=ConnectStatus.UNVERIFIED,
                       detail="accepted, but no TLS handshake or expected HTTP answer followed")
    return connect


class Stages:
    """One per run: the trust material, the middlebox cache, the --verify switch."""

    def __init__(self, trust: Trust, timeout: float, *, verify: bool = False,
                 middlebox: bool = True) -> None:
        self.trust = trust
        self.timeout = timeout
        self.verify = verify
        self.middlebox = MiddleboxStage(timeout) if middlebox else None

    async def run(self, probe: Probe, connect: ConnectResult, stream: ByteStream | None
                  ) -> tuple[ConnectResult, TlsResult | None, HttpResult | None, MiddleboxResult | None]:
        """Run the stages; `stream` (if any) is closed on the way out."""
        tls: TlsResult | None = None
        http: HttpResult | None = None
        box: list[MiddleboxResult] = []
        reached = connect.status in _REACHED
        try:
            async with anyio.create_task_group() as tg:
                if (reached and self.middlebox is not None and probe.route.kind is RouteKind.DIRECT
                        and connect.address):
                    stage, address = self.middlebox, connect.address

                    async def control() -> None:
                        box.append(await stage.check(address, probe.endpoint.ports))

                    tg.start_soon(control)
                if reached:
                    tls, http = await self._service(probe, connect, stream)
        finally:
            if stream is not None:
                with anyio.CancelScope(shield=True):
                    await _close(stream)
        middlebox = box[0] if box else None
        return mark(probe, connect, tls, http, middlebox, verify=self.verify), tls, http, middlebox

    async def _service(self, probe: Probe, connect: ConnectResult, stream: ByteStream | None
                       ) -> tuple[TlsResult | None, HttpResult | None]:
        checks, port, host = probe.endpoint.checks, probe.port, probe.endpoint.host
        want_tls, want_http = checks.tls_on(port), checks.http_on(port)
        tls: TlsResult | None = None
        if want_tls and stream is not None:
            tls, tls_stream = await tls_handshake(stream, host, self.timeout, self.trust, checks.pins)
            if not want_http:
                if tls_stream is not None:
                    with anyio.CancelScope(shield=True):
                        await _close(tls_stream)
                return tls, None
            if tls_stream is None:
                return tls, HttpResult(HttpStatus.SKIPPED, detail="the TLS handshake failed")
            try:
                request = build_request(checks.http, host, port, absolute=False, tls=True)
                label = f"{checks.http.method} https://{host}:{port}{checks.http.path}"
                return tls, await http_exchange(tls_stream, request, checks.http, self.timeout, label)
            finally:
                with anyio.CancelScope(shield=True):
                    await _close(tls_stream)
        if not want_http:
            return None, None
        if stream is not None:
            request = build_request(checks.http, host, port, absolute=False, tls=False)
            label = f"{checks.http.method} {checks.http.path}"
            return None, await http_exchange(stream, request, checks.http, self.timeout, label)
        if probe.route.kind is RouteKind.HTTP and connect.address:
            return None, await self._via_proxy(probe, connect.address)
        return None, None

    async def _via_proxy(self, probe: Probe, proxy_address: str) -> HttpResult:
        """Plain HTTP through an HTTP proxy: an absolute-form request on a connection of its own."""
        checks, host, port = probe.endpoint.checks, probe.endpoint.host, probe.port
        request = build_request(checks.http, host, port, absolute=True, tls=False)
        label = f"{checks.http.method} http://{host}:{port}{checks.http.path} (absolute-form, via proxy)"
        if probe.route.username is not None:
            from scanner.probes.proxy import connect_request  # noqa: PLC0415

            # the same Proxy-Authorization line as the CONNECT carries
            auth = [line for line in connect_request(host, port, probe.route).split(b"\r\n")
                    if line.startswith(b"Proxy-Authorization:")]
            request = request.replace(b"\r\n\r\n", b"\r\n" + auth[0] + b"\r\n\r\n", 1)
        try:
            sock = await open_socket(proxy_address, probe.route.port, self.timeout)
        except ConnectFailed as failed:
            return HttpResult(HttpStatus.CLOSED, 0.0, label, detail=f"proxy: {failed.detail}")
        stream = await _socket_stream(sock)
        try:
            return await http_exchange(stream, request, checks.http, self.timeout, label)
        finally:
            with anyio.CancelScope(shield=True):
                await _close(stream)


async def _socket_stream(sock: socket.socket) -> SocketStream:
    try:
        return await SocketStream.from_socket(sock)
    except BaseException:
        abort(sock)
        raise


async def _close(stream: ByteStream) -> None:
    try:
        await stream.aclose()
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
        pass
