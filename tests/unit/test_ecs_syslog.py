"""--log-style ecs (pure mapping) and --syslog (framing, and a writer to a socket of our own)."""

from __future__ import annotations

import io
import re
import socket
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from scanner.ecs import ecs_line, line_style
from scanner.errors import UsageError
from scanner.models import (
    DIRECT,
    CertInfo,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Probe,
    Record,
    Tally,
    TlsResult,
    TlsStatus,
)
from scanner.output import record_fields
from scanner.syslog import Severity, SyslogFormat, SyslogWriter, frame, severity

RECORD = Record(
    Probe("cat", Endpoint("a.test", (443,)), 443, DIRECT),
    DnsResult(DnsStatus.RESOLVED, ("127.0.0.5",), (), 1.5),
    ConnectResult(ConnectStatus.LISTENING, 2.5, address="127.0.0.5"), True, None, 1_700_000_000.0,
    tls=TlsResult(TlsStatus.OK, 3.0, version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", alpn="http/1.1",
                  subject="CN=a.test", issuer="CN=Lab CA",
                  chain=(CertInfo("CN=a.test", "CN=Lab CA", "ab:cd", "2024-01-01", "2025-01-01"),)))


def native(record: Record = RECORD) -> dict[str, object]:
    return {"event": "endpoint", **record_fields(record)}


def test_ecs_endpoint_fields() -> None:
    doc = ecs_line(native(), 0.0)
    assert doc["@timestamp"] == "2023-11-14T22:13:20.000Z"
    assert doc["event"] == {"kind": "event", "category": ["network"], "action": "endpoint-check",
                            "dataset": "scanner.endpoint", "module": "scanner", "type": ["connection"],
                            "outcome": "success", "duration": 7_000_000}
    assert doc["destination"] == {"address": "a.test", "domain": "a.test", "port": 443, "ip": "127.0.0.5"}
    assert doc["url"] == {"domain": "a.test", "port": 443, "scheme": "https"}
    assert doc["network"] == {"transport": "tcp", "protocol": "https", "type": "ipv4"}
    assert doc["dns"] == {"question": {"name": "a.test"}, "resolved_ip": ["127.0.0.5"], "response_code": "NOERROR"}
    assert doc["tls"]["version"] == "1.3" and doc["tls"]["version_protocol"] == "tls"
    assert doc["tls"]["server"]["hash"] == {"sha256": "ABCD"}
    assert doc["tls"]["established"] is True
    assert "http" not in doc  # the stage did not run: absent, not null
    # lossless: the native record, less what ECS carries, under `scanner.`
    rest = {k: v for k, v in native().items() if k not in ("event", "ts", "host", "port")}
    assert doc["scanner"] == rest


def test_ecs_summary_and_drift_keep_their_fields_apart() -> None:
    summary = ecs_line({"event": "summary", "schema": 1, "total": 2, "ok": 1, "failed": 1, "elapsed_s": 0.5,
                        "interrupted": False, "by_status": {"listening": 2}}, 1_700_000_000.0)
    assert summary["event"]["kind"] == "metric" and summary["event"]["outcome"] == "failure"
    assert summary["event"]["duration"] == 500_000_000
    assert summary["scanner"]["summary"]["ok"] == 1  # not scanner.ok, a boolean on endpoint documents
    drift = ecs_line({"event": "drift", "schema": 1, "kind": "newly_failing", "host": "a.test", "port": 80,
                      "route": "direct", "before": {"status": "listening", "ok": True, "addresses": []},
                      "after": {"status": "filtered", "ok": False, "addresses": []}}, 1_700_000_000.0)
    assert drift["message"] == "a.test:80 via direct: newly_failing (listening -> filtered)"
    assert drift["log"]["level"] == "warning"
    assert drift["scanner"]["drift"]["kind"] == "newly_failing"
    assert drift["@timestamp"] == "2023-11-14T22:13:20.000Z"


def test_log_style_names() -> None:
    assert line_style("native") is None
    style = line_style("ecs")
    assert style is not None and "@timestamp" in style(native())
    with pytest.raises(UsageError):
        line_style("gelf")


RFC5424 = re.compile(rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\d+) (\S+) - (.*)$", re.S)
RFC3164 = re.compile(rb"^<(\d{1,3})>([A-Z][a-z]{2} [ 1-3]\d \d\d:\d\d:\d\d) (\S+)\[(\d+)\]: (.*)$", re.S)


def test_frames() -> None:
    when = datetime(2024, 3, 5, 7, 8, 9, 123456, tzinfo=UTC)
    data = frame(SyslogFormat.RFC5424, 14, when, b'{"x":1}', hostname="my host", app="scanner", pid=42,
                 msgid="endpoint")
    match = RFC5424.match(data)
    assert match is not None
    assert match.groups() == (b"14", b"2024-03-05T07:08:09.123456Z", b"my_host", b"scanner", b"42",
                              b"endpoint", b'{"x":1}')
    data = frame(SyslogFormat.RFC3164, 12, when, b"{}", hostname="h", app="scanner", pid=7, msgid="x")
    match = RFC3164.match(data)
    assert match is not None and match.group(1, 3, 4, 5) == (b"12", b"scanner", b"7", b"{}")
    assert frame(SyslogFormat.RFC5424, 14, when, b"", hostname="", app="a", pid=1, msgid="").split(b" ")[2] == b"-"


def test_severity() -> None:
    assert severity({"event": "endpoint", "ok": True}) is Severity.INFO
    assert severity({"event": "endpoint", "ok": False}) is Severity.WARNING
    assert severity({"event": "drift", "kind": "newly_failing"}) is Severity.WARNING
    assert severity({"event": "drift", "kind": "recovered"}) is Severity.NOTICE
    assert severity({"event": "summary", "failed": 0}) is Severity.INFO


@pytest.fixture
def log_socket() -> Iterator[tuple[str, socket.socket]]:
    """A syslog daemon of our own: a bound Unix datagram socket (short path: sun_path is 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="sl") as folder:
        path = str(Path(folder) / "log")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        server.settimeout(5)
        try:
            yield path, server
        finally:
            server.close()


def test_writer_sends_one_datagram_per_line(log_socket: tuple[str, socket.socket]) -> None:
    path, server = log_socket
    writer = SyslogWriter.open(path, "rfc5424", None)
    writer.record(RECORD)
    writer.event("drift", {"schema": 1, "kind": "recovered", "host": "a.test", "port": 443, "route": "direct",
                           "before": None, "after": None})
    tally = Tally()
    tally.add(RECORD)
    writer.summary(tally, 0.1, False)
    writer.close()
    got = [RFC5424.match(server.recv(65536)) for _ in range(3)]
    assert all(m is not None for m in got)
    heads = [(int(m.group(1)), m.group(6)) for m in got if m is not None]
    assert heads == [(8 + 6, b"endpoint"), (8 + 5, b"drift"), (8 + 6, b"summary")]
    first = got[0]
    assert first is not None and orjson.loads(first.group(7)) == orjson.loads(orjson.dumps(native()))


def test_writer_in_ecs_style(log_socket: tuple[str, socket.socket]) -> None:
    path, server = log_socket
    writer = SyslogWriter.open(path, "rfc3164", line_style("ecs"))
    writer.record(RECORD)
    writer.close()
    match = RFC3164.match(server.recv(65536))
    assert match is not None and orjson.loads(match.group(5))["destination"]["domain"] == "a.test"


def test_missing_socket_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        SyslogWriter.open(str(tmp_path / "nothing"), "rfc3164", None)
    assert info.value.message.startswith("cannot send --syslog to ")


def test_a_vanished_daemon_costs_one_retry_then_a_warning(log_socket: tuple[str, socket.socket]) -> None:
    path, server = log_socket
    stderr = io.StringIO()
    writer = SyslogWriter.open(path, "rfc3164", None, stderr)
    server.close()
    Path(path).unlink()
    writer.record(RECORD)
    writer.record(RECORD)
    writer.close()
    assert writer.dropped == 2
    assert stderr.getvalue().startswith(f"scanner: warning: --syslog {path}: 2 lines not sent")
