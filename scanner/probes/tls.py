"""The TLS stage: a handshake over any stream (a direct connection or a proxy tunnel),
SNI set to the host, verification done afterwards by `scanner.certs` on the chain as sent."""

from __future__ import annotations

import ssl
import time
from dataclasses import replace
from datetime import UTC, datetime

import anyio
from anyio.abc import ByteStream
from anyio.streams.tls import TLSAttribute, TLSStream

from scanner.certs import Trust, analyse
from scanner.models import TlsResult, TlsStatus
from scanner.names import is_ip_literal


def client_context() -> ssl.SSLContext:
    """Verification off on purpose: every chain, however bad, is recorded and judged."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


def chain_ders(tls: TLSStream) -> list[bytes]:
    """The chain as the server sent it (leaf first); the leaf alone where the private
    accessor is missing (it is private in Python 3.11 and 3.12, public from 3.13)."""
    ssl_object = tls.extra(TLSAttribute.ssl_object)
    inner = getattr(ssl_object, "_sslobj", None)
    getter = getattr(ssl_object, "get_unverified_chain", None) or getattr(
        inner, "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            return [c if isinstance(c, bytes) else c.public_bytes(ssl.Encoding.DER)  # type: ignore[attr-defined]
                    for c in chain]
        except (ssl.SSLError, ValueError, AttributeError):
            pass
    leaf = tls.extra(TLSAttribute.peer_certificate_binary)
    return [leaf] if leaf else []


def _alert(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or ""
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    return f"{reason}: {text}" if reason and reason not in text else text


async def tls_handshake(stream: ByteStream, host: str, timeout: float, trust: Trust,
                        pins: tuple[str, ...] = ()) -> tuple[TlsResult, TLSStream | None]:
    """Handshake within `timeout`; the open TLS stream is returned for an HTTP stage on top."""
    start = time.perf_counter()

    def ms() -> float:
        return round((time.perf_counter() - start) * 1000, 3)

    try:
        with anyio.fail_after(timeout):
            tls = await TLSStream.wrap(stream, hostname=None if is_ip_literal(host) else host,
                                       ssl_context=client_context(), standard_compatible=False)
    except TimeoutError:
        return TlsResult(TlsStatus.TIMEOUT, ms(), f"no complete TLS handshake within {timeout:g}s"), None
    except ssl.SSLError as exc:
        return TlsResult(TlsStatus.HANDSHAKE_FAILED, ms(), _alert(exc)), None
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        why = getattr(exc, "strerror", None) or "the peer closed the connection"
        return TlsResult(TlsStatus.HANDSHAKE_FAILED, ms(), f"{why} during the TLS handshake"), None
    ssl_object = tls.extra(TLSAttribute.ssl_object)
    cipher = ssl_object.cipher()
    result = analyse(host, chain_ders(tls), trust, pins, datetime.now(UTC))
    return replace(result, ms=ms(), version=ssl_object.version(),
                   cipher=cipher[0] if cipher else None,
                   alpn=ssl_object.selected_alpn_protocol()), tls
