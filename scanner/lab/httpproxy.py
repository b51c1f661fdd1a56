"""The lab's HTTP CONNECT proxy: an allowlist, optional Basic auth, squid's error headers."""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import anyio
from anyio.abc import SocketStream, TaskStatus

from scanner.errors import ProtocolError
from scanner.httphead import parse_request_head
from scanner.lab.relay import IDLE_TIMEOUT, connect_loopback, intercept, read_head, relay, shielded
from scanner.lab.zone import Fault, LabHost
from scanner.names import split_host_port


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    hosts: Mapping[str, LabHost]  # the allowlist: catalog names (and their addresses)
    credentials: tuple[str, str] | None = None  # required of every client when set
    fault_credentials: tuple[str, str] = ("lab", "lab")  # accepted for hosts with the auth fault
    connect_timeout: float = 1.0
    inspect: Callable[[str], ssl.SSLContext] | None = None  # the inspection CA's context per name


def _response(status: int, reason: str, headers: Mapping[str, str] | None = None) -> bytes:
    body = b"" if status == 200 else f"{status} {reason}\n".encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Server: scanner-lab"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if status != 200:
        lines += [f"Content-Length: {len(body)}", "Content-Type: text/plain", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _authorised(header: str | None, wanted: tuple[str, str]) -> bool:
    if not header:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = decoded.partition(":")
    return (hmac.compare_digest(user.encode(), wanted[0].encode())
            and hmac.compare_digest(password.encode(), wanted[1].encode()))


async def handle(policy: ProxyPolicy, client: SocketStream) -> None:
    async with client:
        try:
            with anyio.fail_after(10):
                head_bytes, rest = await read_head(client)
            request = parse_request_head(head_bytes)
        except (ProtocolError, TimeoutError):
            await _send(client, _response(400, "Bad Request"))
            return
        if request.method != "CONNECT":
            if request.target.lower().startswith("http://"):
                await _forward(policy, client, head_bytes, rest, target=request.target,
                               authorization=request.get("proxy-authorization"))
                return
            await _send(client, _response(501, "Not Implemented", {"X-Squid-Error": "ERR_UNSUP_REQ 0"}))
            return
        try:
            name, port_text = split_host_port(request.target)
            if port_text is None or not (port_text.isascii() and port_text.isdigit()):
                raise ValueError("no port")
        except ValueError:
            await _send(client, _response(400, "Bad Request", {"X-Squid-Error": "ERR_INVALID_URL 0"}))
            return
        name = name.lower().rstrip(".")
        answer = await decide(policy, name, int(port_text), request.get("proxy-authorization"))
        if isinstance(answer, bytes):
            await _send(client, answer)
            return
        async with answer:
            await client.send(_response(200, "Connection established"))
            host = policy.hosts.get(name)
            if policy.inspect is not None and host is not None and Fault.INTERCEPT in host.faults:
                await intercept(client, answer, rest, policy.inspect(host.name), host.name)
                return
            await relay(client, answer, rest)


async def _forward(policy: ProxyPolicy, client: SocketStream, head: bytes, rest: bytes, *,
                   target: str, authorization: str | None) -> None:
    """A plain HTTP request in absolute form: sent on to the host in origin form."""
    authority, _, path = target[len("http://"):].partition("/")
    try:
        name, port_text = split_host_port(authority)
        port = int(port_text) if port_text else 80
    except ValueError:
        await _send(client, _response(400, "Bad Request", {"X-Squid-Error": "ERR_INVALID_URL 0"}))
        return
    answer = await decide(policy, name.lower().rstrip("."), port, authorization)
    if isinstance(answer, bytes):
        await _send(client, answer)
        return
    first_line, _, headers = head.partition(b"\r\n")
    method = first_line.split(b" ", 1)[0]
    async with answer:
        await answer.send(method + b" /" + path.encode() + b" HTTP/1.1\r\n" + headers + rest)
        await relay(client, answer)


async def decide(policy: ProxyPolicy, name: str, port: int,
                 authorization: str | None) -> bytes | SocketStream:
    """The proxy's answer: an error response, or the connected upstream stream."""
    host = policy.hosts.get(name) or next(
        (h for h in policy.hosts.values() if h.address == name), None)
    if host is not None and host.delay_ms:
        await anyio.sleep(host.delay_ms / 1000)
    if policy.credentials and not _authorised(authorization, policy.credentials):
        return _auth_required()
    if host is None or Fault.DENIED in host.faults:
        return _response(403, "Forbidden", {"X-Squid-Error": "ERR_ACCESS_DENIED 0"})
    if Fault.AUTH in host.faults and not _authorised(authorization, policy.fault_credentials):
        return _auth_required()
    if Fault.NXDOMAIN in host.faults:
        return _response(503, "Service Unavailable", {"X-Squid-Error": "ERR_DNS_FAIL 0"})
    try:
        return await connect_loopback(host.address, port, policy.connect_timeout)
    except TimeoutError:
        return _response(504, "Gateway Timeout", {"X-Squid-Error": "ERR_CONNECT_FAIL 110"})
    except OSError:
        return _response(503, "Service Unavailable", {"X-Squid-Error": "ERR_CONNECT_FAIL 111"})


def _auth_required() -> bytes:
    return _response(407, "Proxy Authentication Required", {
        "Proxy-Authenticate": 'Basic realm="scanner lab"',
        "X-Squid-Error": "ERR_CACHE_ACCESS_DENIED 0",
    })


async def _send(client: SocketStream, data: bytes) -> None:
    try:
        await client.send(data)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


async def serve_http_proxy(policy: ProxyPolicy, *, host: str = "127.0.0.1", port: int = 0,
                           task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))

        await listener.serve(shielded(partial(handle, policy), IDLE_TIMEOUT * 4))
