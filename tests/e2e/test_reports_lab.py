"""Real output of `scanner check` against the lab: JSON lines against the schema, the HTML page
read back by headless Chromium, ECS lines, and syslog datagrams to a socket of our own."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from scanner.lab.lab import RunningLab
from scanner.lab.zone import Fault
from tests.browser import Browser, dump_dom
from tests.e2e.test_check_cli import lab, scanner
from tests.unit.test_htmlreport import Cells
from tests.unit.test_record_schema import validator

FAULTS = [
    ("eu.vortex-win.data.microsoft.com", Fault.NXDOMAIN, 0),
    ("sevillegwneu.microsoft.com", Fault.CLOSED, 0),
    ("crl.microsoft.com", Fault.DENIED, 0),
    ("sevillegwcus.microsoft.com", Fault.INTERCEPT, 0),
]


@pytest.fixture(scope="module")
def report_lab() -> Iterator[RunningLab]:
    with lab(FAULTS, first_address=4000) as running:
        yield running


@pytest.fixture(scope="module")
def run(report_lab: RunningLab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run with every output: native JSON lines, --html, --syslog, and a --baseline that drifts."""
    folder = tmp_path_factory.mktemp("reports")
    first = scanner("check", "defender-atp", *report_lab.check_flags(), "--timeout", "1.5")
    assert first.returncode == 1, first.stderr
    # The baseline says crl.microsoft.com worked through the HTTP proxy before, and knew one more host.
    baseline = []
    for line in first.stdout.splitlines():
        item = orjson.loads(line)
        if item.get("host") == "crl.microsoft.com" and item["route"].startswith("http:"):
            item = {**item, "ok": True, "connect": {**item["connect"], "status": "tunnel"}}
        baseline.append(orjson.dumps(item))
    gone = orjson.loads(first.stdout.splitlines()[0])
    baseline.append(orjson.dumps({**gone, "host": "retired.example.test"}))
    (folder / "base.jsonl").write_bytes(b"\n".join(baseline) + b"\n")
    with tempfile.TemporaryDirectory(prefix="sl") as short:
        path = str(Path(short) / "log")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        server.settimeout(0.2)
        datagrams: list[bytes] = []
        stop = threading.Event()

        def daemon() -> None:  # reads as it comes, as journald does: the queue is small
            while not stop.is_set():
                try:
                    datagrams.append(server.recv(65536))
                except TimeoutError:
                    continue

        reader = threading.Thread(target=daemon)
        reader.start()
        try:
            done = scanner("check", "defender-atp", *report_lab.check_flags(), "--timeout", "1.5",
                           "--html", str(folder / "report.html"), "--baseline", str(folder / "base.jsonl"),
                           "--syslog", "--syslog-socket", path, "--syslog-format", "rfc5424")
            lines = done.stdout.splitlines()
            deadline = time.monotonic() + 5
            while len(datagrams) < len(lines) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            reader.join(timeout=5)
            server.close()
    return {"done": done, "lines": [orjson.loads(line) for line in lines], "datagrams": datagrams,
            "html": folder / "report.html"}


def test_every_line_matches_the_schema(run: dict[str, Any]) -> None:
    assert run["done"].returncode == 4, run["done"].stderr  # regressed since the baseline
    check = validator()
    for line in run["lines"]:
        check.validate(line)
    events = [line["event"] for line in run["lines"]]
    assert events.count("endpoint") == 36 and events[-1] == "summary"
    kinds = {line["kind"] for line in run["lines"] if line["event"] == "drift"}
    assert {"newly_failing", "removed"} <= kinds
    endpoints = [line for line in run["lines"] if line["event"] == "endpoint"]
    # the optional stages really occur in what was validated
    for stage in ("tls", "http", "middlebox"):
        assert any(line[stage] is not None for line in endpoints), stage
    assert any(line["tls"] and line["tls"]["status"] == "intercepted" for line in endpoints)


def test_syslog_got_every_line(run: dict[str, Any]) -> None:
    assert b"syslog" not in run["done"].stderr
    assert len(run["datagrams"]) == len(run["lines"])
    for datagram, line in zip(run["datagrams"], run["lines"], strict=True):
        head, _, body = datagram.partition(b" - ")
        assert head.startswith(b"<") and b">1 " in head
        assert head.split(b" ")[5] == line["event"].encode()
        assert orjson.loads(body) == line


def cell_states(page: str) -> dict[str, list[tuple[str, str]]]:
    parser = Cells()
    parser.feed(page)
    return parser.rows


def test_html_in_chromium_shows_every_record(run: dict[str, Any]) -> None:
    dom = dump_dom(run["html"])
    assert 'data-sortable="ready"' in dom  # the inline script ran under the page's CSP
    rows = cell_states(dom)
    endpoints = [line for line in run["lines"] if line["event"] == "endpoint"]
    routes = sorted({line["route"] for line in endpoints}, key=lambda r: (r != "direct", r))
    assert len(rows) == 12
    for line in endpoints:
        tone, state = rows[f"{line['host']}:{line['port']}"][routes.index(line["route"])]
        assert state == line["connect"]["status"]
        assert (tone == "ok") == line["ok"]
    assert rows["eu.vortex-win.data.microsoft.com:443"][0] == ("dns", "skipped")
    assert rows["crl.microsoft.com:80"][1] == ("policy", "denied")


def test_html_sorts_in_chromium(run: dict[str, Any], tmp_path: Path) -> None:
    rows_js = ("Array.from(document.getElementById('matrix').tBodies[0].rows)"
               ".map(r => [r.cells[0].textContent, Number(r.cells[2].textContent)])")
    with Browser() as browser:
        browser.open(run["html"])
        before = browser.evaluate(rows_js)
        assert [name for name, _ in before] == sorted(name for name, _ in before)
        click = "document.querySelectorAll('#matrix thead th button')[2].click()"
        browser.evaluate(click)
        ascending = browser.evaluate(rows_js)
        assert [n for _, n in ascending] == sorted(n for _, n in ascending)
        browser.evaluate(click)
        descending = browser.evaluate(rows_js)
        assert [n for _, n in descending] == sorted((n for _, n in descending), reverse=True)
        assert descending[0][1] == 3
        assert browser.evaluate("document.querySelectorAll('#matrix thead th')[2].getAttribute('aria-sort')") \
            == "descending"
        # a cell's details open without script: <details> is the browser's own
        opened = browser.evaluate(
            "(() => { const d = document.querySelector('#matrix td.cell details'); d.open = true;"
            " return d.querySelector('table').innerText; })()")
        assert "dns" in opened and "connect" in opened
        browser.screenshot(tmp_path / "report.png")
        assert (tmp_path / "report.png").read_bytes().startswith(b"\x89PNG")
        assert browser.console_errors() == []


def test_ecs_lines(report_lab: RunningLab) -> None:
    done = scanner("check", "--endpoint", "us.vortex-win.data.microsoft.com:443", "--endpoint",
                   "crl.microsoft.com:80", "--dns-server", report_lab.dns_server, "--direct",
                   "--log-style", "ecs", "--timeout", "1.5")
    assert done.returncode == 0, done.stderr
    docs = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [d["event"]["dataset"] for d in docs] == ["scanner.endpoint"] * 2 + ["scanner.summary"]
    by_host = {d["destination"]["domain"]: d for d in docs[:2]}
    crl = by_host["crl.microsoft.com"]
    assert crl["event"]["outcome"] == "success" and crl["destination"]["port"] == 80
    assert crl["http"]["response"]["status_code"] == 200
    assert crl["scanner"]["connect"]["status"] == "listening"
    assert all(d["@timestamp"].endswith("Z") and d["ecs"]["version"] for d in docs)
    assert docs[-1]["scanner"]["summary"]["total"] == 2


def test_bad_report_and_syslog_targets_are_usage_errors(tmp_path: Path) -> None:
    done = scanner("check", "--endpoint", "127.0.0.1:9", "--direct", "--syslog",
                   "--syslog-socket", str(tmp_path / "no-daemon"))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("scanner: error: cannot send --syslog to ")
    assert done.stderr.count(b"\n") == 1
    done = scanner("check", "--endpoint", "127.0.0.1:9", "--direct", "--html", str(tmp_path / "no" / "x.html"))
    assert done.returncode == 2 and done.stderr.startswith(b"scanner: error: cannot write --html ")
