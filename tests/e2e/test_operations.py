"""A scheduled run: baseline drift and its exit status, JUnit and Prometheus files, end to end."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import orjson
from prometheus_client.parser import text_string_to_metric_families

from scanner.lab.zone import Fault, lab_address
from tests.e2e.test_check_cli import lab, scanner

ENDPOINTS = ["--endpoint", "us.vortex-win.data.microsoft.com:443", "--endpoint", "crl.microsoft.com:80"]


def test_baseline_drift_junit_and_prometheus(tmp_path: Path) -> None:
    first = tmp_path / "first.jsonl"
    with lab([], first_address=3000) as running:
        done = scanner("check", *ENDPOINTS, "--dns-server", running.dns_server, "--direct",
                       "--output", str(first))
    assert done.returncode == 0, done.stderr
    junit, prom = tmp_path / "report.xml", tmp_path / "scanner.prom"
    with lab([("crl.microsoft.com", Fault.CLOSED, 0)], first_address=3000) as running:
        done = scanner("check", *ENDPOINTS, "--dns-server", running.dns_server, "--direct",
                       "--baseline", str(first), "--junit", str(junit), "--prometheus", str(prom))
    assert done.returncode == 4, done.stderr
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    drift = [line for line in lines if line["event"] == "drift"]
    crl = lab_address(3000 + 7)  # crl.microsoft.com is the catalog's eighth host
    assert drift == [{"event": "drift", "schema": 1, "kind": "newly_failing", "host": "crl.microsoft.com",
                      "port": 80, "route": "direct",
                      "before": {"status": "listening", "ok": True, "addresses": [crl], "tls_issuer": None},
                      "after": {"status": "not_listening", "ok": False, "addresses": [crl], "tls_issuer": None}}]
    assert [line["event"] for line in lines] == ["endpoint", "endpoint", "drift", "summary"]
    assert lines[-1]["drift"] == {"newly_failing": 1}
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "not_listening"
    families = {f.name: f for f in text_string_to_metric_families(prom.read_text())}
    assert {s.labels["host"]: s.value for s in families["scanner_endpoint_success"].samples} == {
        "us.vortex-win.data.microsoft.com": 1.0, "crl.microsoft.com": 0.0}


def test_unchanged_failure_is_not_a_regression(tmp_path: Path) -> None:
    base = tmp_path / "base.jsonl"
    with lab([("crl.microsoft.com", Fault.CLOSED, 0)], first_address=3000) as running:
        first = scanner("check", *ENDPOINTS, "--dns-server", running.dns_server, "--direct",
                        "--output", str(base))
        again = scanner("check", *ENDPOINTS, "--dns-server", running.dns_server, "--direct",
                        "--baseline", str(base))
    assert (first.returncode, again.returncode) == (1, 1)
    assert b'"event":"drift"' not in again.stdout
    assert orjson.loads(again.stdout.splitlines()[-1])["drift"] == {}
