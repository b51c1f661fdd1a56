"""The run-wide middlebox check end to end: a range whose every address accepts every port."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from scanner.catalog import parse_catalog
from scanner.lab.lab import RunningLab, running_lab
from scanner.lab.zone import EVERY_HOST, Fault, lab_address
from tests.e2e.test_check_cli import scanner
from tests.unit.test_record_schema import validator

FIRST = 3000  # lab addresses 127.0.13.1 to .3: one /24
# Ports still held by TIME_WAITs of earlier tests' clients: the wildcard listeners cannot take
# them. A run whose random control port hit one is repeated (a new draw) rather than judged.
MAX_MISSING = 256
HOSTS = ("a.range.test", "b.range.test", "c.range.test")
CATALOG = 'name = "range"\n' + "".join(f'[[endpoints]]\nhost = "{h}"\nports = [80]\n' for h in HOSTS)


@contextmanager
def lab(accept_all: str) -> Iterator[RunningLab]:
    """A lab whose `accept_all` host (`*`: every address) accepts every control port."""
    catalog = parse_catalog(CATALOG.encode(), "range.toml")
    with start_blocking_portal("asyncio", {"use_uvloop": True}) as portal, \
            portal.wrap_async_context_manager(running_lab(
                catalog, [(accept_all, Fault.ACCEPT_ALL, 0)], first_address=FIRST)) as running:
        if len(running.accept_all_missing) > MAX_MISSING:
            pytest.skip(f"accept_all could not listen on {len(running.accept_all_missing)} control "
                        "ports (descriptor limit)")
        yield running


def run(running: RunningLab, fmt: str = "jsonl", tries: int = 5) -> tuple[int, list[dict[str, Any]], str]:
    """(exit status, the JSON lines, stdout) of a direct check of every host."""
    flags = [arg for host in HOSTS for arg in ("--endpoint", f"{host}:80")]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.jsonl"
        done = scanner("check", *flags, "--dns-server", running.dns_server, "--direct",
                       "--timeout", "1.5", "--format", fmt, "--output", str(out))
        lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    drawn = {line["middlebox"]["control_port"] for line in lines
             if line["event"] == "endpoint" and line["middlebox"]}
    if drawn & running.accept_all_missing:
        assert tries > 1, "the control port landed on a port the lab could not listen on, five times"
        return run(running, fmt, tries - 1)
    assert done.stderr == b""
    return done.returncode, lines, done.stdout.decode()


def test_every_address_of_the_range_accepting_is_reported_for_the_run() -> None:
    with lab(EVERY_HOST) as running:
        status, lines, _ = run(running)
        _, _, console = run(running, "console")
    assert status == 1
    assert [line["event"] for line in lines] == ["endpoint"] * 3 + ["middlebox", "summary"]
    for record in lines[:3]:
        assert record["connect"]["status"] == "suspect_middlebox"
        assert record["middlebox"]["suspect"] is True
        assert record["ok"] is False
    addresses = sorted(lab_address(FIRST + i) for i in range(3))
    finding = lines[3]
    assert finding["every_address"] is True
    assert finding["networks"] == ["127.0.13.0/24"]
    assert (finding["addresses"], finding["accepted"], finding["checked"]) == (addresses, 3, 3)
    assert "answers for the whole range" in finding["detail"]
    summary = lines[4]
    assert summary["middlebox"] == {k: v for k, v in finding.items() if k not in ("event", "schema")}
    assert "middlebox  all 3 addresses checked accepted a port closed by design" in console
    check = validator()
    for line in lines:
        check.validate(line)


def test_one_address_that_refuses_clears_the_range() -> None:
    with lab("a.range.test") as running:
        status, lines, _ = run(running)
    assert status == 1
    assert [line["event"] for line in lines] == ["endpoint"] * 3 + ["summary"]
    got = {r["host"]: r["connect"]["status"] for r in lines[:3]}
    assert got == {"a.range.test": "suspect_middlebox", "b.range.test": "listening",
                   "c.range.test": "listening"}
    assert "middlebox" not in lines[3]
