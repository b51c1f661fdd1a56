"""The HTML report: one self-contained page, a matrix of endpoints x routes coloured by state.

`render_html` is pure: records in, bytes out. Every cell carries its details in a
<details> element (readable without JavaScript); a small inline script, allowed by
the page's Content-Security-Policy through its hash and nothing else, makes the
tables sortable. Everything that came from the network or a catalog is escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterable, Sequence
from enum import StrEnum

from scanner.models import ConnectStatus, Record, Tally
from scanner.output import iso_utc, printable, stages_text


class Tone(StrEnum):
    """A cell's colour: what kind of outcome it is, best first (the sort order)."""

    OK = "ok"
    STAGE = "stage"  # connected, but a later stage (TLS, HTTP) or the expectation failed
    SUSPECT = "suspect"  # a middlebox, or --verify could not confirm the service
    POLICY = "policy"  # a proxy said no: denied, authentication, proxy error
    DNS = "dns"  # the name did not resolve
    UNREACHED = "unreached"  # refused, filtered, unreachable, timed out
    NONE = "none"  # not probed on this route


_POLICY = {ConnectStatus.DENIED, ConnectStatus.AUTH_REQUIRED, ConnectStatus.PROXY_ERROR}
_SUSPECT = {ConnectStatus.SUSPECT_MIDDLEBOX, ConnectStatus.UNVERIFIED}
_REACHED = {ConnectStatus.LISTENING, ConnectStatus.TUNNEL}
_RANK = {tone: rank for rank, tone in enumerate(Tone)}


def tone(record: Record) -> Tone:
    status = record.connect.status
    if record.ok:
        return Tone.OK
    if status is ConnectStatus.SKIPPED:
        return Tone.DNS
    if status in _POLICY:
        return Tone.POLICY
    if status in _SUSPECT:
        return Tone.SUSPECT
    if status in _REACHED:
        return Tone.STAGE
    return Tone.UNREACHED


def _text(value: object) -> str:
    """Anything shown on the page: control characters made visible, then HTML-escaped."""
    return html.escape(printable(str(value)), quote=True)


_STYLE = """
:root{font:14px/1.4 system-ui,sans-serif;color:#1b1f24;background:#fff}
body{margin:1.5rem}
h1{font-size:1.4rem;margin:0 0 .3rem}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem}
p.meta{margin:.2rem 0;color:#444}
table{border-collapse:collapse;margin:.4rem 0}
th,td{border:1px solid #c9ced6;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#eef1f5;white-space:nowrap}
th button{all:inherit;cursor:pointer;padding:0;border:0}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
td.cell{min-width:8rem}
td.cell summary{cursor:pointer;font-weight:600}
td.cell table{font-size:12px;margin:.3rem 0 0;background:#fff}
td.cell table th,td.cell table td{border-color:#dde1e6;padding:.1rem .3rem}
.ok{background:#d7f5dd}.stage{background:#ffd9d0}.suspect{background:#ffe6c2}
.policy{background:#fff2b3}.dns{background:#e8dcff}.unreached{background:#ffc4c4}
.none{background:#f4f5f7;color:#888}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.4rem}
ul.legend li{border:1px solid #c9ced6;padding:.1rem .5rem}
code{font-size:12px}
.nowrap{white-space:nowrap}
"""

_SCRIPT = """
(function () {
  "use strict";
  function key(row, column) {
    var cell = row.cells[column];
    if (!cell) { return ""; }
    return cell.hasAttribute("data-key") ? cell.getAttribute("data-key") : cell.textContent.trim();
  }
  function compare(a, b) {
    var x = Number(a), y = Number(b);
    if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) { return x - y; }
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function sortBy(table, column, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r, s) {
      var order = compare(key(r, column), key(s, column));
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      if (index === column) {
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      var button = document.createElement("button");
      button.type = "button";
      button.title = "sort by this column";
      while (th.firstChild) { button.appendChild(th.firstChild); }
      th.appendChild(button);
      button.addEventListener("click", function () {
        sortBy(table, column, th.getAttribute("aria-sort") === "ascending");
      });
    });
  });
  document.documentElement.setAttribute("data-sortable", "ready");
})();
"""


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


# No network, no other script: an escaping slip cannot run code or fetch anything.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(_STYLE)}; script-src {_csp_hash(_SCRIPT)}; "
    "img-src 'none'; form-action 'none'; base-uri 'none'"
)

_LEGEND = {
    Tone.OK: "ok: matched the catalog's expectation",
    Tone.STAGE: "connected, but TLS, HTTP or the expectation failed",
    Tone.SUSPECT: "suspect middlebox or unverified",
    Tone.POLICY: "a proxy refused: denied, authentication, proxy error",
    Tone.DNS: "the name did not resolve",
    Tone.UNREACHED: "not reached: refused, filtered, unreachable, timeout",
    Tone.NONE: "not probed on this route",
}

EndpointKey = tuple[str, str, int]  # catalog, host, port


def _detail_rows(record: Record) -> list[tuple[str, str]]:
    dns, connect, tls, http = record.dns, record.connect, record.tls, record.http
    rows = [("dns", f"{dns.status.value} {', '.join(dns.addresses)} ({dns.ms:.1f} ms)"
                    f"{' ' + dns.detail if dns.detail else ''}")]
    connect_text = f"{connect.status.value} ({connect.ms:.1f} ms)"
    if connect.address:
        connect_text += f" at {connect.address}"
    if connect.http_status is not None:
        connect_text += f" HTTP {connect.http_status}"
    if connect.detail:
        connect_text += f": {connect.detail}"
    rows.append(("connect", connect_text))
    if tls is not None:
        parts = [tls.status.value, tls.version or "", f"issuer {tls.issuer}" if tls.issuer else "",
                 f"{tls.days_left} days left" if tls.days_left is not None else "", tls.detail or ""]
        rows.append(("tls", " ".join(p for p in parts if p)))
    if http is not None:
        parts = [http.status.value, str(http.http_status) if http.http_status is not None else "",
                 http.reason or "", f"server {http.server}" if http.server else "", http.detail or ""]
        rows.append(("http", " ".join(p for p in parts if p)))
    if record.middlebox is not None:
        rows.append(("middlebox", record.middlebox.detail))
    rows.append(("reason", record.reason or "-"))
    rows.append(("at", iso_utc(record.ts)))
    return rows


def _cell(records: Sequence[Record]) -> str:
    if not records:
        return f'<td class="cell {Tone.NONE}" data-key="{_RANK[Tone.NONE]}" data-state="none">-</td>'
    worst = max(records, key=lambda r: _RANK[tone(r)])
    worst_tone = tone(worst)
    mark = "\u2713" if worst.ok else "\u2717"
    label = worst.connect.status.value
    stages = stages_text(worst)
    title = "; ".join(f"{name}: {value}" for name, value in _detail_rows(worst))
    parts = [f'<td class="cell {worst_tone}" data-key="{_RANK[worst_tone]}" '
             f'data-state="{_text(label)}" data-ok="{str(worst.ok).lower()}" title="{_text(title)}">'
             f"<details><summary>{mark} {_text(label)}</summary>"]
    for record in records:
        rows = "".join(f"<tr><th>{_text(name)}</th><td>{_text(value)}</td></tr>"
                       for name, value in _detail_rows(record))
        parts.append(f"<table>{rows}</table>")
    parts.append("</details>")
    if stages and not worst.ok:
        parts.append(f"<div><small>{_text(stages)}</small></div>")
    parts.append("</td>")
    return "".join(parts)


def _route_order(route: str) -> tuple[int, str]:
    return (0 if route == "direct" else 1, route)


def _matrix(records: Iterable[Record]) -> tuple[list[EndpointKey], list[str],
                                                 dict[tuple[EndpointKey, str], list[Record]]]:
    cells: dict[tuple[EndpointKey, str], list[Record]] = {}
    endpoints: set[EndpointKey] = set()
    routes: set[str] = set()
    for record in records:
        probe = record.probe
        endpoint = (probe.catalog or "", probe.endpoint.host, probe.port)
        endpoints.add(endpoint)
        routes.add(probe.route.display)
        cells.setdefault((endpoint, probe.route.display), []).append(record)
    return sorted(endpoints), sorted(routes, key=_route_order), cells


def render_html(records: Sequence[Record], tally: Tally, elapsed_s: float, now: float) -> bytes:
    """The whole page for one run."""
    endpoints, routes, cells = _matrix(records)
    head = "".join(f'<th scope="col" data-route="{_text(r)}">{_text(r)}</th>' for r in routes)
    body: list[str] = []
    for endpoint in endpoints:
        catalog, host, port = endpoint
        failed = sum(1 for r in routes for rec in cells.get((endpoint, r), []) if not rec.ok)
        row = "".join(_cell(cells.get((endpoint, r), [])) for r in routes)
        body.append(f'<tr data-host="{_text(host)}" data-port="{port}">'
                    f'<th scope="row">{_text(host)}:{port}</th>'
                    f'<td class="nowrap">{_text(catalog or "-")}</td>'
                    f"<td>{failed}</td>{row}</tr>")
    wildcards = sorted({(r.probe.endpoint.host, r.probe.endpoint.wildcard) for r in records
                        if r.probe.endpoint.wildcard})
    by_status = ", ".join(f"{n} {_text(s)}" for s, n in sorted(tally.by_status.items()))
    by_status = f"[{by_status}]" if by_status else ""
    drift = ""
    if tally.drift is not None:
        changes = ", ".join(f"{n} {_text(k)}" for k, n in tally.drift.items()) or "none"
        drift = f'<p class="meta" id="drift">Changes since the baseline: {changes}</p>'
    legend = "".join(f'<li class="{t}">{_text(text)}</li>' for t, text in _LEGEND.items())
    notes = ""
    if wildcards:
        items = "".join(f"<li><code>{_text(h)}</code> stands for <code>{_text(w)}</code></li>"
                        for h, w in wildcards)
        notes = f"<h2>Wildcards</h2><ul>{items}</ul>"
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="scanner">
<title>scanner report {iso_utc(now)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>Connectivity report</h1>
<p class="meta" id="totals">{tally.total} checked in {elapsed_s:.2f} s: {tally.ok} ok, {tally.failed} failed
{by_status}</p>
<p class="meta">Written {iso_utc(now)}. Open a cell for DNS, connect, TLS and HTTP details;
click a column heading to sort.</p>
{drift}
<ul class="legend">{legend}</ul>
<table class="sortable" id="matrix">
<thead><tr><th scope="col">endpoint</th><th scope="col">catalog</th><th scope="col">failed</th>
{head}</tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
{notes}
<script>{_SCRIPT}</script>
</body>
</html>
"""
    return page.encode()
