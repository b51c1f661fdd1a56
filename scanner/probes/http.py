"""The HTTP stage: one request through the route, a bounded read, and the verdict on
whether the real service answered or something in the way did (a block page).

`build_request` and `judge_response` are pure; `http_exchange` is the thin I/O around them.
"""

from __future__ import annotations

import time

import anyio
from anyio.abc import ByteStream

from scanner.errors import ProtocolError
from scanner.httphead import MAX_HEAD, ResponseHead, find_head_end, parse_response_head
from scanner.models import HttpExpect, HttpResult, HttpStatus

USER_AGENT = "scanner/0.1"
BODY_LIMIT = 16 * 1024  # bytes of body kept to look for the expected text
CHUNK = 16 * 1024
# without an expectation from the catalog, these say "not the service": a proxy's refusal
_REFUSALS = frozenset({403, 407, 451})


def build_request(expect: HttpExpect, host: str, port: int, absolute: bool, tls: bool) -> bytes:
    """Origin-form to the service; absolute-form when talking to an HTTP proxy."""
    default = 443 if tls else 80
    authority = f"[{host}]" if ":" in host else host
    if port != default:
        authority += f":{port}"
    target = f"{'https' if tls else 'http'}://{authority}{expect.path}" if absolute else expect.path
    lines = [f"{expect.method} {target} HTTP/1.1", f"Host: {authority}", f"User-Agent: {USER_AGENT}",
             "Accept: */*", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def judge_response(head: ResponseHead, body: bytes, expect: HttpExpect) -> tuple[HttpStatus, str | None]:
    """Is this the service's answer? Every stated expectation must hold; without any,
    anything but a server error or a proxy's refusal counts."""
    what = f"HTTP {head.status}" + (f" {head.reason}" if head.reason else "")
    stated = bool(expect.status) or expect.header is not None or expect.body is not None
    if not stated:
        if head.status >= 500 or head.status in _REFUSALS or head.get("x-squid-error"):
            return HttpStatus.BLOCK_PAGE, f"{what}: a refusal, not the service"
        return HttpStatus.OK, None
    if expect.status and head.status not in expect.status:
        wanted = ", ".join(str(s) for s in expect.status)
        return HttpStatus.BLOCK_PAGE, f"{what}, the service answers {wanted}"
    if expect.header is not None:
        name, fragment = expect.header
        value = head.get(name)
        if value is None or fragment.lower() not in value.lower():
            return HttpStatus.BLOCK_PAGE, (f"{what} without the service's {name}: {fragment}"
                                           f" (got {name}: {value})")
    if expect.body is not None and expect.body.encode("utf-8") not in body:
        return HttpStatus.BLOCK_PAGE, f"{what}, but the body is not the service's"
    return HttpStatus.OK, None


async def _read_response(stream: ByteStream, want_body: bool) -> tuple[bytes, bytes]:
    """(head, first bytes of the body); at most MAX_HEAD + BODY_LIMIT + CHUNK held."""
    buffer = bytearray()
    while True:
        try:
            chunk = await stream.receive(CHUNK)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            if not buffer:
                raise EOFError("closed without answering") from None
            raise ProtocolError("closed in the middle of the response head") from None
        buffer += chunk
        if len(buffer) >= 5 and not buffer.startswith(b"HTTP/"):
            raise ProtocolError(f"not an HTTP response: {bytes(buffer[:24])!r}")
        end = find_head_end(buffer, MAX_HEAD)
        if end is not None:
            break
    head, body = bytes(buffer[:end]), bytes(buffer[end:])
    if not want_body:
        return head, b""
    # the body is a bonus: what arrives before the limit or a short pause
    with anyio.move_on_after(0.5):
        while len(body) < BODY_LIMIT:
            try:
                body += await stream.receive(CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                break
    return head, body[:BODY_LIMIT]


async def http_exchange(stream: ByteStream, request: bytes, expect: HttpExpect, timeout: float,
                        label: str) -> HttpResult:
    """Send `request`, read the answer within `timeout`, and judge it."""
    start = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    try:
        with anyio.fail_after(timeout):
            await stream.send(request)
            head_bytes, body = await _read_response(stream, expect.method != "HEAD")
        head = parse_response_head(head_bytes)
    except TimeoutError:
        return HttpResult(HttpStatus.TIMEOUT, ms(), label, detail=f"no complete answer within {timeout:g}s")
    except EOFError:
        return HttpResult(HttpStatus.CLOSED, ms(), label, detail="the peer closed without answering")
    except ProtocolError as exc:
        return HttpResult(HttpStatus.PROTOCOL_ERROR, ms(), label, detail=exc.message)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        return HttpResult(HttpStatus.CLOSED, ms(), label,
                          detail=f"connection failed: {getattr(exc, 'strerror', None) or exc}")
    status, detail = judge_response(head, body, expect)
    return HttpResult(status, ms(), label, head.status, head.reason, head.get("server"),
                      head.get("content-type"), len(body), detail)
