"""JUnit and Prometheus reports, read back with real parsers; drift between two runs."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scanner.drift import DriftKind, Snapshot, compare, counts, load_baseline, snapshot
from scanner.errors import OutputError, UsageError
from scanner.models import (
    DIRECT,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Probe,
    Record,
    Route,
    RouteKind,
    RouteSource,
    Tally,
)
from scanner.reports import ReportWriter, check_writable, render_junit, render_prometheus

PROXY = Route(RouteKind.HTTP, "127.0.0.1", 3128, "user", "Secr3t")


def make(host: str, route: Route, status: ConnectStatus, ok: bool, catalog: str | None = "cat",
         reason: str | None = None) -> Record:
    return Record(Probe(catalog, Endpoint(host, (443,)), 443, route),
                  DnsResult(DnsStatus.RESOLVED, ("127.0.0.5",), (), 1.5),
                  ConnectResult(status, 2.5, None, "detail <&> \"quoted\""), ok, reason, 1_700_000_000.0)


RECORDS = [
    make("a.test", DIRECT, ConnectStatus.LISTENING, True),
    make("a.test", PROXY, ConnectStatus.DENIED, False, reason="proxy denied a.test:443"),
    make("b.test", DIRECT, ConnectStatus.NOT_LISTENING, False, catalog=None, reason='refused "x"\n'),
]


def tally() -> Tally:
    t = Tally()
    for record in RECORDS:
        t.add(record)
    return t


def test_junit_read_back() -> None:
    root = ET.fromstring(render_junit(RECORDS, tally(), 1.25))
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("time")) == (
        "testsuites", "3", "2", "1.250")
    suites = {s.get("name", ""): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["cat", "endpoints"]
    cases = [(c.get("classname"), c.get("name"), c.find("failure")) for c in suites["cat"]]
    assert [(c[0], c[1]) for c in cases] == [
        ("cat.direct", "a.test:443 via direct"), ("cat.http://***@127.0.0.1:3128", "a.test:443 via http://***@127.0.0.1:3128")]
    assert cases[0][2] is None
    failure = cases[1][2]
    assert failure is not None
    assert (failure.get("type"), failure.get("message")) == ("denied", "proxy denied a.test:443")
    other = suites["endpoints"].find("testcase/failure")
    assert other is not None and other.get("message") == 'refused "x"\n'
    assert b"Secr3t" not in render_junit(RECORDS, tally(), 1.25)


def test_prometheus_read_back() -> None:
    text = render_prometheus(RECORDS, tally(), 1.25, 1_700_000_100.0)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    success = {(s.labels["host"], s.labels["route"]): s.value for s in families["scanner_endpoint_success"].samples}
    assert success == {("a.test", "direct"): 1.0, ("a.test", "http://***@127.0.0.1:3128"): 0.0,
                       ("b.test", "direct"): 0.0}
    states = {(s.labels["host"], s.labels["route"]): (s.labels["state"], s.labels["dns"])
              for s in families["scanner_endpoint_state"].samples}
    assert states[("b.test", "direct")] == ("not_listening", "resolved")
    durations = [s.value for s in families["scanner_endpoint_duration_seconds"].samples]
    assert durations == [0.004, 0.004, 0.004]
    runs = {s.labels["outcome"]: s.value for s in families["scanner_run_probes"].samples}
    assert runs == {"ok": 1.0, "failed": 2.0, "not_configured": 0.0}
    assert families["scanner_run_timestamp_seconds"].samples[0].value == 1_700_000_100.0
    assert "Secr3t" not in text


def test_report_writer_is_atomic_and_checks_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "scan.prom"
    target.write_text("old\n")
    writer = ReportWriter(check_writable(str(target), "--prometheus"), "prometheus")
    for record in RECORDS:
        writer.record(record)
    writer.summary(tally(), 1.0, False)
    assert target.read_text().startswith("# HELP scanner_endpoint_success")
    assert [p.name for p in tmp_path.iterdir()] == ["scan.prom"]  # no temporary file left
    with pytest.raises(UsageError) as info:
        check_writable(str(tmp_path / "missing" / "x.xml"), "--junit")
    assert info.value.message.startswith("cannot write --junit")
    with pytest.raises(UsageError):
        check_writable(str(tmp_path), "--junit")


def snap(status: str, ok: bool, *addresses: str) -> Snapshot:
    return Snapshot(status, ok, tuple(addresses))


def test_compare_finds_every_kind_of_drift() -> None:
    before = {
        ("a", 443, "direct"): snap("listening", True, "127.0.0.1"),
        ("b", 443, "direct"): snap("filtered", False, "127.0.0.2"),
        ("c", 443, "direct"): snap("denied", False),
        ("d", 443, "direct"): snap("listening", True, "127.0.0.4"),
        ("gone", 443, "direct"): snap("listening", True),
        ("same", 443, "direct"): snap("listening", True, "127.0.0.9"),
    }
    after = {
        ("a", 443, "direct"): snap("filtered", False, "127.0.0.1"),
        ("b", 443, "direct"): snap("listening", True, "127.0.0.2"),
        ("c", 443, "direct"): snap("auth_required", False),
        ("d", 443, "direct"): snap("listening", True, "127.0.0.40"),
        ("new", 443, "direct"): snap("listening", True),
        ("same", 443, "direct"): snap("listening", True, "127.0.0.9"),
    }
    drifts = compare(before, after)
    assert [(d.kind, d.key[0]) for d in drifts] == [
        (DriftKind.NEWLY_FAILING, "a"), (DriftKind.RECOVERED, "b"), (DriftKind.STATE_CHANGED, "c"),
        (DriftKind.ADDRESSES_CHANGED, "d"), (DriftKind.REMOVED, "gone"), (DriftKind.ADDED, "new")]
    assert counts(drifts) == {"added": 1, "addresses_changed": 1, "newly_failing": 1,
                              "recovered": 1, "removed": 1, "state_changed": 1}
    assert drifts[0].fields() == {
        "schema": 1, "kind": "newly_failing", "host": "a", "port": 443, "route": "direct",
        "before": {"status": "listening", "ok": True, "addresses": ["127.0.0.1"], "tls_issuer": None},
        "after": {"status": "filtered", "ok": False, "addresses": ["127.0.0.1"], "tls_issuer": None}}


def test_tls_issuer_change_is_drift() -> None:
    before = {("a", 443, "direct"): Snapshot("listening", True, ("127.0.0.1",), "CN=Public CA")}
    after = {("a", 443, "direct"): Snapshot("listening", True, ("127.0.0.1",), "CN=Corp Inspection CA")}
    drifts = compare(before, after)
    assert [d.kind for d in drifts] == [DriftKind.TLS_ISSUER_CHANGED]
    fields = drifts[0].fields()
    assert (fields["before"]["tls_issuer"], fields["after"]["tls_issuer"]) == (
        "CN=Public CA", "CN=Corp Inspection CA")


def test_load_baseline(tmp_path: Path) -> None:
    good = tmp_path / "run.jsonl"
    lines = [
        {"event": "endpoint", "host": "a", "port": 443, "route": "direct", "ok": True,
         "connect": {"status": "listening"}, "dns": {"addresses": ["127.0.0.2", "127.0.0.1"]}},
        {"event": "summary", "total": 1},
    ]
    good.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n\n")
    assert load_baseline(str(good)) == {("a", 443, "direct"): snap("listening", True, "127.0.0.1", "127.0.0.2")}
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(lines[0]) + b"\n{not json\n")
    with pytest.raises(UsageError) as info:
        load_baseline(str(bad))
    assert info.value.message == f"--baseline {bad}: line 2 is not a scanner JSONL record"
    with pytest.raises(UsageError) as info:
        load_baseline(str(tmp_path / "none.jsonl"))
    assert info.value.message == f"cannot read --baseline {tmp_path / 'none.jsonl'}: No such file or directory"


# --- --analyzer: not_configured records (ok None) and routes told apart by their source --------

WINHTTP_DIRECT = Route(RouteKind.DIRECT, source=RouteSource.WINHTTP, explanation="netsh: direct access")
NOT_CONFIGURED = Route(RouteKind.NONE, source=RouteSource.NAMED_PROXY, explanation="no named proxy given")
ANALYZER = [
    make("a.test", Route(RouteKind.DIRECT, source=RouteSource.PROXY_DISABLED), ConnectStatus.LISTENING, True),
    make("a.test", WINHTTP_DIRECT, ConnectStatus.LISTENING, True),
    Record(Probe("cat", Endpoint("a.test", (443,)), 443, NOT_CONFIGURED),
           DnsResult(DnsStatus.RESOLVED, ("127.0.0.5",), (), 1.5),
           ConnectResult(ConnectStatus.NOT_CONFIGURED, 0.0, None, "no named proxy given"), None, None, 1.0),
]


def analyzer_tally() -> Tally:
    t = Tally()
    for record in ANALYZER:
        t.add(record)
    return t


def test_not_configured_counts_in_neither_ok_nor_failed() -> None:
    t = analyzer_tally()
    assert (t.total, t.ok, t.failed, t.by_status) == (3, 2, 0, {"listening": 2, "not_configured": 1})


def test_junit_skips_not_configured_and_names_the_source() -> None:
    root = ET.fromstring(render_junit(ANALYZER, analyzer_tally(), 1.0))
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "1")
    cases = [(c.get("name"), [(x.tag, x.get("message")) for x in c]) for c in suite.findall("testcase")]
    assert cases == [("a.test:443 via direct (proxy_disabled)", []), ("a.test:443 via direct (winhttp)", []),
                     ("a.test:443 via none (named_proxy)", [("skipped", "no named proxy given")])]


def test_prometheus_has_one_series_per_path_and_no_success_without_a_verdict() -> None:
    text = render_prometheus(ANALYZER, analyzer_tally(), 1.0, 2.0)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    success = {(s.labels["route"], s.labels["route_source"]): s.value
               for s in families["scanner_endpoint_success"].samples}
    assert success == {("direct", "proxy_disabled"): 1.0, ("direct", "winhttp"): 1.0}
    states = [(s.labels["route_source"], s.labels["state"]) for s in families["scanner_endpoint_state"].samples]
    assert states == [("proxy_disabled", "listening"), ("winhttp", "listening"), ("named_proxy", "not_configured")]
    runs = {s.labels["outcome"]: s.value for s in families["scanner_run_probes"].samples}
    assert runs == {"ok": 2.0, "failed": 0.0, "not_configured": 1.0}


def test_drift_keys_tell_paths_apart_and_not_configured_is_no_regression() -> None:
    assert [snapshot(r)[0] for r in ANALYZER] == [
        ("a.test", 443, "direct (proxy_disabled)"), ("a.test", 443, "direct (winhttp)"),
        ("a.test", 443, "none (named_proxy)")]
    key = ("a.test", 443, "http://p:3128 (named_proxy)")
    ok, failing, nothing = snap("tunnel", True), snap("denied", False), Snapshot("not_configured", None, ())
    assert [d.kind for d in compare({key: ok}, {key: nothing})] == [DriftKind.STATE_CHANGED]
    assert [d.kind for d in compare({key: nothing}, {key: failing})] == [DriftKind.STATE_CHANGED]
    assert [d.kind for d in compare({key: nothing}, {key: nothing})] == []
    assert [d.kind for d in compare({key: ok}, {key: failing})] == [DriftKind.NEWLY_FAILING]


def test_load_baseline_reads_route_source_and_null_ok(tmp_path: Path) -> None:
    run = tmp_path / "run.jsonl"
    lines = [
        {"event": "endpoint", "host": "a", "port": 443, "route": "direct", "route_source": "winhttp",
         "ok": True, "connect": {"status": "listening"}, "dns": {"addresses": []}},
        {"event": "endpoint", "host": "a", "port": 443, "route": "none", "route_source": "wpad",
         "ok": None, "connect": {"status": "not_configured"}, "dns": {"addresses": []}},
        {"event": "endpoint", "host": "a", "port": 443, "route": "direct", "route_source": "explicit",
         "ok": False, "connect": {"status": "filtered"}, "dns": {"addresses": []}},
    ]
    run.write_bytes(b"\n".join(orjson.dumps(x) for x in lines) + b"\n")
    assert load_baseline(str(run)) == {
        ("a", 443, "direct (winhttp)"): snap("listening", True),
        ("a", 443, "none (wpad)"): Snapshot("not_configured", None, ()),
        ("a", 443, "direct"): snap("filtered", False),
    }


def test_report_into_a_device_writes_into_it(tmp_path: Path) -> None:
    """/dev/null stays a device: the report is written into it, never renamed over it."""
    import os
    import stat

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        writer = ReportWriter(check_writable(str(fifo), "--junit"), "junit")
        for record in RECORDS:
            writer.record(record)
        writer.summary(tally(), 1.0, False)
        assert os.read(reader, 100).startswith(b"<?xml")
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    full = ReportWriter(check_writable("/dev/full", "--prometheus"), "prometheus")
    with pytest.raises(OutputError) as info:
        full.summary(tally(), 1.0, False)
    assert info.value.message == "cannot write /dev/full: No space left on device"
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)
