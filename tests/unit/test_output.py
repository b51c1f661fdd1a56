"""The record schema, the JSON lines writer and the console writer."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from scanner.errors import StdoutClosed
from scanner.models import (
    DIRECT,
    Attempt,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Expectation,
    Probe,
    Record,
    Route,
    RouteKind,
    RouteSource,
    Tally,
)
from scanner.output import (
    ConsoleWriter,
    Fanout,
    JsonlWriter,
    colour_wanted,
    iso_utc,
    record_fields,
)

PW = "S3cr3t-pw"
TS = 1700000000.5  # 2023-11-14T22:13:20.500Z
PROXY = Route(RouteKind.HTTP, "proxy.corp", 3128, "svc-user", PW, RouteSource.ENV)
BLOB = Endpoint("ussus1eastprod.blob.core.windows.net", (443,), Expectation.REACHABLE,
                "*.blob.core.windows.net", "sensor storage")

LISTENING = Record(
    probe=Probe("defender-atp", BLOB, 443, DIRECT),
    dns=DnsResult(DnsStatus.RESOLVED, ("192.0.2.7", "2001:db8::7"), ("blob.x.store.core.windows.net",), 3.25),
    connect=ConnectResult(
        ConnectStatus.LISTENING, 12.5, address="192.0.2.7",
        attempts=(Attempt("2001:db8::7", ConnectStatus.UNREACHABLE, 0.5, "ENETUNREACH"),
                  Attempt("192.0.2.7", ConnectStatus.LISTENING, 12.0)),
    ),
    ok=True,
    reason=None,
    ts=TS,
)

AUTH_REASON = ("proxy http://***@proxy.corp:3128 demands authentication (NTLM, Basic) for "
               "crl.microsoft.com:80; the sensor runs as LocalSystem and cannot authenticate: "
               "allow anonymous access to it")
AUTH = Record(
    probe=Probe(None, Endpoint("crl.microsoft.com", (80,), Expectation.BLOCKED), 80, PROXY),
    dns=DnsResult(DnsStatus.NXDOMAIN, ms=1.0, detail="local resolver"),
    connect=ConnectResult(ConnectStatus.AUTH_REQUIRED, 4.0, http_status=407, detail="HTTP 407",
                          address="10.0.0.8", auth_schemes=("NTLM", "Basic"),
                          proxy_error="ERR_CACHE_ACCESS_DENIED 0", reply_code=None),
    ok=False,
    reason=AUTH_REASON,
    ts=TS + 0.25,
)


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(TS) == "2023-11-14T22:13:20.500Z"


def test_record_fields_listening() -> None:
    assert record_fields(LISTENING) == {
        "schema": 1,
        "ts": "2023-11-14T22:13:20.500Z",
        "catalog": "defender-atp",
        "host": "ussus1eastprod.blob.core.windows.net",
        "port": 443,
        "route": "direct",
        "route_source": "explicit",
        "route_explanation": None,
        "wildcard": "*.blob.core.windows.net",
        "expect": "reachable",
        "dns": {
            "status": "resolved",
            "addresses": ["192.0.2.7", "2001:db8::7"],
            "cnames": ["blob.x.store.core.windows.net"],
            "ms": 3.25,
            "detail": None,
        },
        "connect": {
            "status": "listening",
            "ms": 12.5,
            "http_status": None,
            "detail": None,
            "address": "192.0.2.7",
            "attempts": [
                {"address": "2001:db8::7", "status": "unreachable", "ms": 0.5, "detail": "ENETUNREACH"},
                {"address": "192.0.2.7", "status": "listening", "ms": 12.0, "detail": None},
            ],
            "auth_schemes": [],
            "proxy_error": None,
            "reply_code": None,
        },
        "tls": None,
        "http": None,
        "middlebox": None,
        "ok": True,
        "reason": None,
    }


def test_record_fields_through_a_proxy_in_schema_order() -> None:
    fields = record_fields(AUTH)
    assert list(fields) == ["schema", "ts", "catalog", "host", "port", "route", "route_source",
                            "route_explanation", "wildcard", "expect", "dns", "connect", "tls", "http", "middlebox", "ok",
                            "reason"]
    assert list(fields["dns"]) == ["status", "addresses", "cnames", "ms", "detail"]
    assert list(fields["connect"]) == ["status", "ms", "http_status", "detail", "address", "attempts",
                                       "auth_schemes", "proxy_error", "reply_code"]
    assert fields == {
        "schema": 1,
        "ts": "2023-11-14T22:13:20.750Z",
        "catalog": None,
        "host": "crl.microsoft.com",
        "port": 80,
        "route": "http://***@proxy.corp:3128",
        "route_source": "env",
        "route_explanation": None,
        "wildcard": None,
        "expect": "blocked",
        "dns": {"status": "nxdomain", "addresses": [], "cnames": [], "ms": 1.0, "detail": "local resolver"},
        "connect": {
            "status": "auth_required",
            "ms": 4.0,
            "http_status": 407,
            "detail": "HTTP 407",
            "address": "10.0.0.8",
            "attempts": [],
            "auth_schemes": ["NTLM", "Basic"],
            "proxy_error": "ERR_CACHE_ACCESS_DENIED 0",
            "reply_code": None,
        },
        "tls": None,
        "http": None,
        "middlebox": None,
        "ok": False,
        "reason": AUTH_REASON,
    }


def tally_of(*records: Record) -> Tally:
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally


def test_jsonl_writer_lines_and_summary() -> None:
    stream = io.BytesIO()
    writer = JsonlWriter(stream)
    writer.record(LISTENING)
    writer.record(AUTH)
    writer.summary(tally_of(LISTENING, AUTH), 1.23456, False)
    data = stream.getvalue()
    lines = data.split(b"\n")
    assert lines[-1] == b""  # every line ends with a newline
    assert len(lines) == 4
    for line, record in zip(lines[:2], (LISTENING, AUTH), strict=True):
        assert line.startswith(b'{"event":"endpoint","schema":1,')
        parsed = orjson.loads(line)
        assert parsed == {"event": "endpoint", **record_fields(record)}
        assert list(parsed) == ["event", *record_fields(record)]
    assert lines[2] == (
        b'{"event":"summary","schema":1,"total":2,"ok":1,"failed":1,"elapsed_s":1.235,'
        b'"interrupted":false,"by_status":{"auth_required":1,"listening":1}}'
    )
    assert b'"route":"http://***@proxy.corp:3128"' in lines[1]
    assert PW.encode() not in data
    assert b"svc-user" not in data
    writer.close()
    assert stream.closed


def test_jsonl_writer_interrupted_empty_summary() -> None:
    stream = io.BytesIO()
    JsonlWriter(stream).summary(Tally(), 0.0, True)
    assert stream.getvalue() == (
        b'{"event":"summary","schema":1,"total":0,"ok":0,"failed":0,"elapsed_s":0.0,'
        b'"interrupted":true,"by_status":{}}\n'
    )


def test_console_writer_plain() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream, target_width=40, route_width=26, colour=False)
    writer.record(LISTENING)
    writer.record(AUTH)
    writer.summary(tally_of(LISTENING, AUTH), 1.5, False)
    text = stream.getvalue()
    assert "\x1b" not in text
    assert text.splitlines() == [
        "      TARGET                                    ROUTE                       DNS        "
        "CONNECT                 MS  DETAIL",
        " ok   ussus1eastprod.blob.core.windows.net:443  direct                      resolved   "
        "listening             12.5  (for *.blob.core.windows.net)",
        "FAIL  crl.microsoft.com:80                      http://***@proxy.corp:3128  nxdomain   "
        f"auth_required          4.0  {AUTH_REASON}",
        "",
        "2 checked in 1.50s: 1 ok, 1 failed [1 auth_required, 1 listening]",
    ]
    assert PW not in text
    assert "svc-user" not in text


def test_console_writer_narrow_columns_still_show_target_and_state() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream, target_width=0, route_width=0, colour=False)
    writer.record(AUTH)
    writer.summary(tally_of(AUTH), 0.25, True)
    text = stream.getvalue()
    assert "crl.microsoft.com:80" in text
    assert "auth_required" in text
    assert text.endswith("\n1 checked in 0.25s (interrupted): 0 ok, 1 failed [1 auth_required]\n")


def test_console_writer_colour() -> None:
    stream = io.StringIO()
    writer = ConsoleWriter(stream, target_width=40, route_width=26, colour=True)
    writer.record(LISTENING)
    writer.record(AUTH)
    writer.summary(tally_of(LISTENING), 1.0, False)
    text = stream.getvalue()
    assert "\x1b[" in text
    lines = text.splitlines()
    assert lines[0].startswith("\x1b[1m") and lines[0].endswith("\x1b[0m")
    assert lines[1].startswith("\x1b[32m ok \x1b[0m  ussus1eastprod.blob.core.windows.net:443")
    assert f"\x1b[32m{'listening':<17}\x1b[0m" in lines[1]
    assert lines[2].startswith("\x1b[31mFAIL\x1b[0m  crl.microsoft.com:80")
    assert f"\x1b[33m{'auth_required':<17}\x1b[0m" in lines[2]
    assert lines[-1] == "1 checked in 1.00s: 1 ok, \x1b[32mall ok\x1b[0m [1 listening]"


def test_colour_not_wanted_on_a_non_terminal() -> None:
    assert colour_wanted(io.StringIO()) is False


def test_fanout_tallies_and_writes_to_every_writer() -> None:
    plain, coloured = io.StringIO(), io.StringIO()
    fanout = Fanout([ConsoleWriter(plain, 40, 26, False), ConsoleWriter(coloured, 40, 26, True)])
    fanout.record(LISTENING)
    fanout.record(AUTH)
    fanout.record(LISTENING)
    fanout.summary(2.0, False)
    fanout.close()
    assert (fanout.tally.total, fanout.tally.ok, fanout.tally.failed) == (3, 2, 1)
    assert fanout.tally.by_status == {"listening": 2, "auth_required": 1}
    assert plain.getvalue().endswith("3 checked in 2.00s: 2 ok, 1 failed [1 auth_required, 2 listening]\n")
    assert "\x1b[" in coloured.getvalue()


class _Gone(io.StringIO):
    def write(self, _text: str) -> int:
        raise BrokenPipeError


class _Passive:
    passive = True

    def __init__(self) -> None:
        self.records = 0

    def record(self, _record: Any) -> None:
        self.records += 1

    def event(self, _name: str, _fields: dict[str, Any]) -> None:
        pass

    def summary(self, *_args: object) -> None:
        pass

    def close(self) -> None:
        pass


def test_fanout_stops_when_only_passive_writers_are_left() -> None:
    passive = _Passive()
    fanout = Fanout([passive, ConsoleWriter(_Gone(), 40, 26, False)])
    with pytest.raises(StdoutClosed):  # the run does not go on for the progress line alone
        fanout.record(LISTENING)
    assert (passive.records, fanout.writers, fanout.stdout_closed) == (1, [passive], True)
