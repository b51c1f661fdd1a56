"""The sweep's output lines, produced in one place (schema 1).

Workers format lines themselves and the runner only forwards bytes, so a
record is built with one f-string instead of a dict and a serializer: this is
the hot path. `tests/unit/test_sweep_records.py` checks it against orjson.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

SCHEMA = 1
CONTROL = b"!"  # worker -> runner lines that are not records start with this byte


def port_line(ts: str, ip: str, port: int, state: str, ms: float, route_json: str  # noqa: PLR0917
              ) -> str:
    """`{"event": "port", "schema": 1, "ts", "ip", "port", "state", "ms", "route"}` and a newline.

    `ip` is an address literal and `state` a ConnectStatus value: neither needs escaping;
    `route_json` is the route already encoded as a JSON string.
    """
    return (f'{{"event":"port","schema":{SCHEMA},"ts":"{ts}","ip":"{ip}","port":{port},'
            f'"state":"{state}","ms":{ms},"route":{route_json}}}\n')


def console_line(ip: str, port: int, state: str, ms: float) -> str:
    target = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    return f"{target:<23} {state:<17} {ms:>9.3f} ms\n"


def route_json(display: str) -> str:
    return orjson.dumps(display).decode()


class Clock:
    """ISO-8601 UTC timestamps, formatted once per millisecond rather than once per record."""

    __slots__ = ("_last_ms", "_text")

    def __init__(self) -> None:
        self._last_ms = -1
        self._text = ""

    def iso(self, now: float) -> str:
        ms = int(now * 1000)
        if ms != self._last_ms:
            self._last_ms = ms
            moment = datetime.fromtimestamp(ms / 1000, UTC)
            self._text = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return self._text


def summary_line(fields: dict[str, Any]) -> bytes:
    return orjson.dumps({"event": "summary", "schema": SCHEMA, **fields}) + b"\n"
