"""Output writers: JSON lines through structlog, and a readable console rendering.

`record_fields` is the one place a Record becomes the documented schema.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import IO, Any, BinaryIO, Protocol

import orjson
import structlog

from scanner.errors import OutputError, StdoutClosed
from scanner.models import (
    ConnectStatus,
    HttpResult,
    HttpStatus,
    MiddleboxResult,
    RangeFinding,
    Record,
    Tally,
    TlsResult,
    TlsStatus,
)

SCHEMA = 1


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_fields(record: Record) -> dict[str, Any]:
    """The record as written: everything but `event`, in schema order."""
    probe, dns, connect = record.probe, record.dns, record.connect
    return {
        "schema": SCHEMA,
        "ts": iso_utc(record.ts),
        "catalog": probe.catalog,
        "host": probe.endpoint.host,
        "port": probe.port,
        "route": probe.route.display,
        "route_source": probe.route.source.value,
        "route_explanation": probe.route.explanation,
        "wildcard": probe.endpoint.wildcard,
        "expect": probe.endpoint.expect.value,
        "dns": {
            "status": dns.status.value,
            "addresses": list(dns.addresses),
            "cnames": list(dns.cnames),
            "ms": dns.ms,
            "detail": dns.detail,
        },
        "connect": {
            "status": connect.status.value,
            "ms": connect.ms,
            "http_status": connect.http_status,
            "detail": connect.detail,
            "address": connect.address,
            "attempts": [
                {"address": a.address, "status": a.status.value, "ms": a.ms, "detail": a.detail}
                for a in connect.attempts
            ],
            "auth_schemes": list(connect.auth_schemes),
            "proxy_error": connect.proxy_error,
            "reply_code": connect.reply_code,
        },
        "tls": tls_fields(record.tls),
        "http": http_fields(record.http),
        "middlebox": middlebox_fields(record.middlebox),
        "ok": record.ok,
        "reason": record.reason,
    }


def tls_fields(tls: TlsResult | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "status": tls.status.value, "ms": tls.ms, "detail": tls.detail, "version": tls.version,
        "cipher": tls.cipher, "alpn": tls.alpn, "subject": tls.subject, "sans": list(tls.sans),
        "issuer": tls.issuer, "not_before": tls.not_before, "not_after": tls.not_after,
        "days_left": tls.days_left,
        "chain": [{"subject": c.subject, "issuer": c.issuer, "sha256": c.sha256,
                   "not_before": c.not_before, "not_after": c.not_after} for c in tls.chain],
        "root": tls.root, "trusted": tls.trusted, "public_root": tls.public_root,
        "hostname_match": tls.hostname_match,
    }


def http_fields(http: HttpResult | None) -> dict[str, Any] | None:
    if http is None:
        return None
    return {"status": http.status.value, "ms": http.ms, "request": http.request,
            "http_status": http.http_status, "reason": http.reason, "server": http.server,
            "content_type": http.content_type, "body_bytes": http.body_bytes, "detail": http.detail}


def middlebox_fields(box: MiddleboxResult | None) -> dict[str, Any] | None:
    if box is None:
        return None
    return {"suspect": box.suspect, "control_port": box.control_port, "detail": box.detail}


def range_fields(finding: RangeFinding) -> dict[str, Any]:
    """The `middlebox` event line (and the summary's `middlebox` field)."""
    return {"schema": SCHEMA, "every_address": finding.every_address,
            "networks": list(finding.networks), "addresses": list(finding.addresses),
            "accepted": finding.accepted, "checked": finding.checked, "detail": finding.detail}


def stages_text(record: Record) -> str:
    """The later stages in a few words for the console: `tls ok TLSv1.3`, `http 200`."""
    parts: list[str] = []
    tls, http = record.tls, record.http
    if tls is not None:
        extra = f" {tls.version}" if tls.status is TlsStatus.OK and tls.version else ""
        if tls.status is TlsStatus.INTERCEPTED:
            extra = f" by {tls.root}"
        parts.append(f"tls {tls.status.value}{extra}")
    if http is not None:
        code = f" {http.http_status}" if http.http_status is not None else ""
        state = "" if http.status is HttpStatus.OK else f" {http.status.value}"
        parts.append(f"http{code}{state}")
    return ", ".join(parts)


def summary_fields(tally: Tally, elapsed_s: float, interrupted: bool) -> dict[str, Any]:
    fields = {
        "schema": SCHEMA,
        "total": tally.total,
        "ok": tally.ok,
        "failed": tally.failed,
        "elapsed_s": round(elapsed_s, 3),
        "interrupted": interrupted,
        "by_status": dict(sorted(tally.by_status.items())),
    }
    if tally.drift is not None:
        fields["drift"] = tally.drift
    if tally.middlebox is not None:
        fields["middlebox"] = {k: v for k, v in tally.middlebox.items() if k != "schema"}
    return fields


class Writer(Protocol):
    def record(self, record: Record) -> None: ...
    def event(self, name: str, fields: dict[str, Any]) -> None: ...
    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None: ...
    def close(self) -> None: ...


def _event_first(_logger: object, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {"event": event.pop("event"), **event}


def _dumps(value: Any, **_kw: Any) -> bytes:
    return orjson.dumps(value)


LineStyle = Callable[[dict[str, Any]], dict[str, Any]]
"""Renames a line's fields (`{"event": ..., **fields}`) for another schema, e.g. ECS."""


class JsonlWriter:
    """One JSON object per line, flushed as each is written (structlog + orjson)."""

    def __init__(self, stream: BinaryIO, style: LineStyle | None = None) -> None:
        self._stream = stream
        restyle: list[Any] = [] if style is None else [lambda _l, _n, line: style(line)]
        self._log = structlog.wrap_logger(
            structlog.BytesLogger(stream),
            processors=[_event_first, *restyle, structlog.processors.JSONRenderer(serializer=_dumps)],
            cache_logger_on_first_use=True,
        )

    def record(self, record: Record) -> None:
        self._log.info("endpoint", **record_fields(record))

    def event(self, name: str, fields: dict[str, Any]) -> None:
        self._log.info(name, **fields)

    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None:
        self._log.info("summary", **summary_fields(tally, elapsed_s, interrupted))

    def close(self) -> None:
        if self._stream not in (sys.stdout.buffer, sys.stderr.buffer):
            self._stream.close()


_GREEN, _RED, _YELLOW = "\x1b[32m", "\x1b[31m", "\x1b[33m"
_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}


def printable(text: str) -> str:
    """What a peer sent, made safe for a terminal: control characters escaped."""
    return text.translate(_CONTROL)


def colour_wanted(stream: IO[str]) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


class ConsoleWriter:
    """Aligned columns for people; the same facts as the JSON lines, fewer of them."""

    def __init__(self, stream: IO[str], target_width: int, route_width: int, colour: bool) -> None:
        self._stream = stream
        self._tw = max(target_width, 8)
        self._rw = max(route_width, 6)
        self._paint: Callable[[str, str], str] = (
            (lambda code, text: f"{code}{text}{_RESET}") if colour else (lambda _c, text: text)
        )
        self._header_done = False

    def _header(self) -> None:
        head = (f"{'':4}  {'TARGET':<{self._tw}}  {'ROUTE':<{self._rw}}  {'DNS':<9}  "
                f"{'CONNECT':<17}  {'MS':>7}  DETAIL")
        self._stream.write(self._paint(_BOLD, head) + "\n")
        self._header_done = True

    def record(self, record: Record) -> None:
        if not self._header_done:
            self._header()
        probe, connect = record.probe, record.connect
        mark = self._paint(_GREEN, " ok ") if record.ok else self._paint(_RED, "FAIL")
        if record.ok is None:  # not_configured: no verdict
            mark = self._paint(_DIM, " -- ")
        target = f"{probe.endpoint.host}:{probe.port}"
        state = connect.status.value
        tone = _GREEN if connect.status in (ConnectStatus.LISTENING, ConnectStatus.TUNNEL) else _YELLOW
        dns_state = record.dns.status.value
        detail = printable(record.reason or connect.detail or "")
        stages = stages_text(record)
        if stages:
            detail = f"[{stages}] {detail}".rstrip()
        if probe.endpoint.wildcard:
            detail = f"(for {probe.endpoint.wildcard}) {detail}".rstrip()
        line = (
            f"{mark}  {target:<{self._tw}}  {probe.route.label:<{self._rw}}  {dns_state:<9}  "
            f"{self._paint(tone, f'{state:<17}')}  {connect.ms:>7.1f}  {self._paint(_DIM, detail)}"
        )
        self._stream.write(line.rstrip() + "\n")
        self._stream.flush()

    def event(self, name: str, fields: dict[str, Any]) -> None:
        if name == "middlebox":
            self._stream.write(f"{self._paint(_RED, 'middlebox')}  {printable(fields['detail'])}\n")
            return
        if name != "drift":
            return
        before, after = fields["before"], fields["after"]
        was = f"{before['status']}" if before else "-"
        now = f"{after['status']}" if after else "-"
        tone = _RED if fields["kind"] == "newly_failing" else _YELLOW
        self._stream.write(
            f"{self._paint(tone, 'drift')}  {fields['host']}:{fields['port']}  {fields['route']}  "
            f"{fields['kind']}: {was} -> {now}\n")

    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(tally.by_status.items()))
        verdict = self._paint(_GREEN, "all ok") if tally.failed == 0 else self._paint(
            _RED, f"{tally.failed} failed")
        note = " (interrupted)" if interrupted else ""
        self._stream.write(
            f"\n{tally.total} checked in {elapsed_s:.2f}s{note}: {tally.ok} ok, {verdict}"
            f"{' [' + counts + ']' if counts else ''}\n"
        )
        self._stream.flush()

    def close(self) -> None:
        pass


class Fanout:
    """Writes every record to several writers and keeps the tally.

    A writer whose reader went away (`| head`) is dropped and the others go on;
    a writer that cannot write (disk full) stops the run with an OutputError.
    """

    def __init__(self, writers: list[Writer]) -> None:
        self.writers = writers
        self.tally = Tally()
        self.stdout_closed = False

    def _each(self, action: Callable[[Writer], None]) -> None:
        for writer in list(self.writers):
            try:
                action(writer)
            except BrokenPipeError:
                self.writers.remove(writer)
                self.stdout_closed = True
            except OSError as exc:
                raise OutputError(f"cannot write results: {exc.strerror or exc}") from None
        # a passive writer (the progress line, the drift collector) keeps no run going alone
        if all(getattr(writer, "passive", False) for writer in self.writers):
            raise StdoutClosed

    def record(self, record: Record) -> None:
        self.tally.add(record)
        self._each(lambda writer: writer.record(record))

    def event(self, name: str, fields: dict[str, Any]) -> None:
        self._each(lambda writer: writer.event(name, fields))

    def range_finding(self, finding: RangeFinding) -> None:
        """A whole range accepted closed ports: an event line, and a field of the summary."""
        fields = range_fields(finding)
        self.tally.middlebox = fields
        self.event("middlebox", fields)

    def summary(self, elapsed_s: float, interrupted: bool) -> None:
        self._each(lambda writer: writer.summary(self.tally, elapsed_s, interrupted))

    def close(self) -> None:
        for writer in self.writers:
            try:
                writer.close()
            except OSError:
                pass
