"""The sweep's record line, the runner's stream splitter, and resume files."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import UsageError
from scanner.permutation import Shard
from scanner.sweep.records import Clock, port_line, route_json
from scanner.sweep.runner import Splitter
from scanner.sweep.state import SweepState, fingerprint, parse_state


@given(st.floats(0, 1e5, allow_nan=False), st.sampled_from(["direct", 'http://***@[::1]:3128', 'x"\\y']))
def test_port_line_is_the_documented_json(ms: float, route: str) -> None:
    ms = round(ms, 3)
    line = port_line("2026-12-03T13:00:00.000Z", "::1", 443, "listening", ms, route_json(route))
    assert line.endswith("\n")
    assert list(orjson.loads(line).items()) == [
        ("event", "port"), ("schema", 1), ("ts", "2026-12-03T13:00:00.000Z"), ("ip", "::1"),
        ("port", 443), ("state", "listening"), ("ms", ms), ("route", route)]


def test_clock_formats_iso_utc_per_millisecond() -> None:
    clock = Clock()
    assert clock.iso(0.0) == "1970-01-01T00:00:00.000Z"
    assert clock.iso(1.2345) == "1970-01-01T00:00:01.234Z"


@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").lstrip(b"!")), max_size=20),
       st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_splitter_forwards_each_line_once_and_extracts_controls(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" + b'!{"done": %d}\n' % i for i, line in enumerate(lines))
    splitter, records, controls, at = Splitter(), b"", [], 0
    for cut in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        forwarded, found = splitter.feed(stream[at: at + cut])
        records += forwarded
        controls += found
        at += cut
        if at >= len(stream):
            break
    assert records == b"".join(line + b"\n" for line in lines)
    assert [c["done"] for c in controls] == list(range(len(lines)))
    assert splitter.tail == b""


def test_state_round_trip_and_errors() -> None:
    state = SweepState(7, Shard(2, 3), fingerprint(((4, 1, 9),), (80,)), 9, ((3, 5), (7, 9)), 4)
    assert parse_state(state.to_bytes(), "s") == state
    assert fingerprint(((4, 1, 9),), (80,)) != fingerprint(((4, 1, 9),), (443,))
    for bad in (b"", b"[]", b'{"version": 99}', b'{"version": 1}'):
        with pytest.raises(UsageError, match="not a sweep state file"):
            parse_state(bad, "s")
