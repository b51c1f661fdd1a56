"""`--log-style ecs`: the JSON lines with Elastic Common Schema field names.

Pure functions over the native line (`{"event": name, **fields}` as written by
scanner.output). ECS fields get what ECS has a name for; everything else stays,
unchanged, under `scanner.` (summary fields under `scanner.summary.`, drift under
`scanner.drift.`, so that one field never holds two types across documents).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from scanner.errors import UsageError
from scanner.output import LineStyle, iso_utc

ECS_VERSION = "8.11.0"

_DNS_RESPONSE_CODES = {"resolved": "NOERROR", "nodata": "NOERROR", "nxdomain": "NXDOMAIN",
                       "servfail": "SERVFAIL", "refused": "REFUSED"}


def _pruned(value: dict[str, Any]) -> dict[str, Any]:
    """Drop None and empty objects, as ECS documents leave absent fields out."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        kept = _pruned(item) if isinstance(item, dict) else item
        if kept is None or kept == {}:
            continue
        out[key] = kept
    return out


def _event(kind: str, action: str, dataset: str, **more: Any) -> dict[str, Any]:
    return {"kind": kind, "category": ["network"], "action": action, "dataset": dataset,
            "module": "scanner", **more}


def _ns(ms: float) -> int:
    return round(ms * 1_000_000)


def _ip_type(address: str | None) -> str | None:
    if not address:
        return None
    return "ipv6" if ":" in address else "ipv4"


def _tls(tls: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    version = str(tls.get("version") or "")
    protocol, _, number = version.partition("v")
    chain = tls.get("chain") or []
    leaf_hash = str(chain[0]["sha256"]).replace(":", "").upper() if chain else None
    return {
        "version": number or None,
        "version_protocol": protocol.lower() or None,
        "cipher": tls.get("cipher"),
        "next_protocol": tls.get("alpn"),
        "established": tls.get("status") not in ("handshake_failed", "timeout"),
        "server": {"subject": tls.get("subject"), "issuer": tls.get("issuer"),
                   "not_before": tls.get("not_before"), "not_after": tls.get("not_after"),
                   "hash": {"sha256": leaf_hash}},
    }


def _http(http: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if http is None:
        return None
    request = str(http.get("request") or "")
    method = request.split(" ", 1)[0] if request else None
    return {"request": {"method": method},
            "response": {"status_code": http.get("http_status"), "mime_type": http.get("content_type"),
                         "body": {"bytes": http.get("body_bytes")}}}


def _endpoint(fields: dict[str, Any]) -> dict[str, Any]:
    host, port, route = fields["host"], fields["port"], fields["route"]
    dns, connect = fields["dns"], fields["connect"]
    tls, http = fields.get("tls"), fields.get("http")
    ok, reason = fields["ok"], fields.get("reason")
    duration = dns["ms"] + connect["ms"] + (tls or {}).get("ms", 0.0) + (http or {}).get("ms", 0.0)
    direct_ip = connect.get("address") if route == "direct" else None
    scheme = "https" if tls is not None else "http" if http is not None else None
    message = f"{host}:{port} via {route}: {connect['status']}" + (f" ({reason})" if reason else "")
    doc = {
        "@timestamp": fields["ts"],
        "ecs": {"version": ECS_VERSION},
        "message": message,
        "log": {"level": "info" if ok else "warning", "logger": "scanner"},
        "event": _event("event", "endpoint-check", "scanner.endpoint", type=["connection"],
                        outcome="success" if ok else "failure", duration=_ns(duration), reason=reason),
        "destination": {"address": host, "domain": host, "port": port, "ip": direct_ip},
        "url": {"domain": host, "port": port, "scheme": scheme},
        "network": {"transport": "tcp", "protocol": scheme, "type": _ip_type(direct_ip)},
        "dns": {"question": {"name": host}, "resolved_ip": list(dns["addresses"]) or None,
                "response_code": _DNS_RESPONSE_CODES.get(dns["status"])},
        "tls": _tls(tls),
        "http": _http(http),
    }
    scanner = {k: v for k, v in fields.items() if k not in ("ts", "host", "port")}
    return {**_pruned(doc), "scanner": scanner}


def _summary(fields: dict[str, Any], now: float) -> dict[str, Any]:
    failed = fields["failed"]
    doc = {
        "@timestamp": iso_utc(now),
        "ecs": {"version": ECS_VERSION},
        "message": f"{fields['total']} checked: {fields['ok']} ok, {failed} failed"
                   + (" (interrupted)" if fields.get("interrupted") else ""),
        "log": {"level": "info" if failed == 0 else "warning", "logger": "scanner"},
        "event": _event("metric", "summary", "scanner.summary", type=["info"],
                        outcome="success" if failed == 0 else "failure",
                        duration=_ns(fields["elapsed_s"] * 1000)),
    }
    schema = fields.get("schema")
    rest = {k: v for k, v in fields.items() if k != "schema"}
    return {**doc, "scanner": {"schema": schema, "summary": rest}}


def _drift(fields: dict[str, Any], now: float) -> dict[str, Any]:
    host, port, route, kind = fields["host"], fields["port"], fields["route"], fields["kind"]
    before, after = fields.get("before"), fields.get("after")
    was = before["status"] if before else "-"
    now_state = after["status"] if after else "-"
    doc = {
        "@timestamp": iso_utc(now),
        "ecs": {"version": ECS_VERSION},
        "message": f"{host}:{port} via {route}: {kind} ({was} -> {now_state})",
        "log": {"level": "warning" if kind == "newly_failing" else "info", "logger": "scanner"},
        "event": _event("event", "drift", "scanner.drift", type=["change"], reason=kind),
        "destination": {"address": host, "domain": host, "port": port},
        "url": {"domain": host, "port": port},
    }
    drift = {k: v for k, v in fields.items() if k not in ("schema", "host", "port", "route")}
    return {**doc, "scanner": {"schema": fields.get("schema"), "route": route, "drift": drift}}


def ecs_line(line: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One native line as an ECS document; `now` stamps lines that carry no time of their own."""
    name = str(line.get("event"))
    fields = {k: v for k, v in line.items() if k != "event"}
    if name == "endpoint":
        return _endpoint(fields)
    if name == "summary":
        return _summary(fields, now)
    if name == "drift":
        return _drift(fields, now)
    return {"@timestamp": iso_utc(now), "ecs": {"version": ECS_VERSION},
            "event": {"kind": "event", "action": name, "dataset": f"scanner.{name}", "module": "scanner"},
            "scanner": {name: fields}}


def line_style(name: str) -> LineStyle | None:
    """The restyling of `--log-style NAME`; None for the native field names."""
    if name == "native":
        return None
    if name == "ecs":
        def restyle(line: dict[str, Any]) -> dict[str, Any]:
            return ecs_line(line, time.time())

        return restyle
    raise UsageError(f"unknown --log-style {name!r} (native, ecs)")
