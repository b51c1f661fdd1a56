"""The HTML report as text: structure, colours, escaping and its Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

from scanner.htmlreport import CONTENT_SECURITY_POLICY, Tone, render_html, tone
from scanner.models import (
    DIRECT,
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    HttpResult,
    HttpStatus,
    Probe,
    Record,
    Route,
    RouteKind,
    Tally,
    TlsResult,
    TlsStatus,
)
from scanner.reports import ReportWriter, check_writable

PROXY = Route(RouteKind.HTTP, "127.0.0.1", 3128, "user", "Secr3t")
HOSTILE = '<script>alert(1)</script>"\'&.test'


def make(host: str, route: Route, status: ConnectStatus, ok: bool, reason: str | None = None,
         dns: DnsStatus = DnsStatus.RESOLVED, catalog: str | None = "cat", **stages: object) -> Record:
    return Record(Probe(catalog, Endpoint(host, (443,)), 443, route),
                  DnsResult(dns, ("127.0.0.5",) if dns is DnsStatus.RESOLVED else (), (), 1.5),
                  ConnectResult(status, 2.5, None, "detail"), ok, reason, 1_700_000_000.0,
                  **stages)  # type: ignore[arg-type]


RECORDS = [
    make("a.test", DIRECT, ConnectStatus.LISTENING, True,
         tls=TlsResult(TlsStatus.OK, 3.0, version="TLSv1.3", issuer="Lab CA")),
    make("a.test", PROXY, ConnectStatus.DENIED, False, reason="proxy denied a.test:443"),
    make("b.test", DIRECT, ConnectStatus.LISTENING, False, reason="block page",
         http=HttpResult(HttpStatus.BLOCK_PAGE, 1.0, http_status=403, server="<b>evil</b>")),
    make("gone.test", DIRECT, ConnectStatus.SKIPPED, False, dns=DnsStatus.NXDOMAIN, reason="no name"),
    make(HOSTILE, DIRECT, ConnectStatus.FILTERED, False, reason='"><img src=x onerror=alert(2)>\x1b[31m'),
]


def tally(records: list[Record]) -> Tally:
    t = Tally()
    for record in records:
        t.add(record)
    return t


class Cells(HTMLParser):
    """The matrix as the parser sees it: row header -> [(class, data-state)] per route."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self.scripts = 0
        self._row: str | None = None
        self._in_row_header = False
        self._depth = 0  # nesting of tables: the matrix is 1, a cell's details 2

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "script":
            self.scripts += 1
        elif tag == "table":
            self._depth += 1
        elif tag == "th" and self._depth == 1 and attr.get("scope") == "row":
            self._in_row_header = True
            self._row = ""
        elif tag == "td" and self._depth == 1 and "cell" in (attr.get("class") or "") and self._row:
            self.rows[self._row].append(((attr.get("class") or "").split()[1], attr.get("data-state") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth -= 1
        elif tag == "th" and self._in_row_header:
            self._in_row_header = False
            assert self._row is not None
            self.rows[self._row] = []

    def handle_data(self, data: str) -> None:
        if self._in_row_header:
            self._row = (self._row or "") + data


def test_matrix_rows_routes_and_tones() -> None:
    page = render_html(RECORDS, tally(RECORDS), 1.25, 1_700_000_100.0).decode()
    parser = Cells()
    parser.feed(page)
    assert parser.scripts == 1
    assert parser.rows == {
        HOSTILE + ":443": [("unreached", "filtered"), ("none", "none")],
        "a.test:443": [("ok", "listening"), ("policy", "denied")],
        "b.test:443": [("stage", "listening"), ("none", "none")],
        "gone.test:443": [("dns", "skipped"), ("none", "none")],
    }
    head = re.findall(r'<th scope="col" data-route="([^"]*)">', page)
    assert head == ["direct", "http://***@127.0.0.1:3128"]  # direct first; no password anywhere
    assert "Secr3t" not in page
    assert "5 checked in 1.25 s: 1 ok, 4 failed" in page


def test_everything_from_the_network_is_escaped() -> None:
    page = render_html(RECORDS, tally(RECORDS), 1.0, 0.0).decode()
    assert "<script>alert" not in page and "<img" not in page and "<b>evil" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;.test" in page
    assert "\x1b" not in page and "\\x1b[31m" in page  # control characters shown, not sent
    assert "server &lt;b&gt;evil&lt;/b&gt;" in page


def test_the_policy_allows_exactly_the_inline_script_and_style() -> None:
    page = render_html(RECORDS, tally(RECORDS), 1.0, 0.0).decode()
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    assert script is not None and style is not None
    for body in (script.group(1), style.group(1)):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # no external resources


def test_tone_of_every_outcome() -> None:
    assert tone(make("x", DIRECT, ConnectStatus.TUNNEL, True)) is Tone.OK
    assert tone(make("x", DIRECT, ConnectStatus.AUTH_REQUIRED, False)) is Tone.POLICY
    assert tone(make("x", DIRECT, ConnectStatus.SUSPECT_MIDDLEBOX, False)) is Tone.SUSPECT
    assert tone(make("x", DIRECT, ConnectStatus.TIMEOUT, False)) is Tone.UNREACHED
    # `expect = "blocked"` reached: connected, and that is the failure
    assert tone(make("x", DIRECT, ConnectStatus.LISTENING, False)) is Tone.STAGE


def test_an_empty_run_is_still_a_page() -> None:
    page = render_html([], Tally(), 0.0, 0.0).decode()
    assert "0 checked" in page and "<tbody>" in page


def test_html_report_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    writer = ReportWriter(check_writable(str(target), "--html"), "html")
    for record in RECORDS:
        writer.record(record)
    writer.summary(tally(RECORDS), 1.0, False)
    assert target.read_bytes().startswith(b"<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
