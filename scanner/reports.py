"""Reports written once a run ends: JUnit XML for CI, a node_exporter textfile for Prometheus,
an HTML page for people (rendered in scanner.htmlreport).

Both are rendered by pure functions from the records; the writers only collect
records and write the file atomically (a temporary file renamed over the target),
so a scraper or a CI step never reads half a report.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from scanner.errors import OutputError, UsageError
from scanner.htmlreport import render_html
from scanner.models import Record, Tally
from scanner.output import iso_utc


def _case_name(record: Record) -> str:
    probe = record.probe
    return f"{probe.endpoint.host}:{probe.port} via {probe.route.label}"


def render_junit(records: Sequence[Record], tally: Tally, elapsed_s: float) -> bytes:
    """One testsuite per catalog (ad-hoc endpoints: `endpoints`), one testcase per
    endpoint x port x route; a failed probe is a <failure> whose type is its state."""
    suites: dict[str, list[Record]] = {}
    for record in records:
        suites.setdefault(record.probe.catalog or "endpoints", []).append(record)
    root = ET.Element("testsuites", name="scanner", tests=str(tally.total),
                      failures=str(tally.failed), time=f"{elapsed_s:.3f}")
    for name, members in suites.items():
        failed = sum(1 for r in members if r.ok is False)
        skipped = sum(1 for r in members if r.ok is None)
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(members)),
                              failures=str(failed), errors="0", skipped=str(skipped),
                              time=f"{sum(r.connect.ms + r.dns.ms for r in members) / 1000:.3f}")
        for record in members:
            case = ET.SubElement(suite, "testcase", classname=f"{name}.{record.probe.route.display}",
                                 name=_case_name(record),
                                 time=f"{(record.connect.ms + record.dns.ms) / 1000:.3f}")
            if record.ok is None:  # not_configured: a path that does not exist here
                ET.SubElement(case, "skipped", message=record.connect.detail or record.connect.status.value)
            elif not record.ok:
                failure = ET.SubElement(case, "failure", type=record.connect.status.value,
                                        message=record.reason or record.connect.status.value)
                failure.text = (f"dns: {record.dns.status.value} {list(record.dns.addresses)}\n"
                                f"connect: {record.connect.status.value} {record.connect.detail or ''}\n"
                                f"at: {iso_utc(record.ts)}")
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True)) + b"\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(record: Record) -> str:
    probe = record.probe
    pairs = (("catalog", probe.catalog or ""), ("host", probe.endpoint.host),
             ("port", str(probe.port)), ("route", probe.route.display),
             ("route_source", probe.route.source.value), ("expect", probe.endpoint.expect.value))
    return ",".join(f'{key}="{_label(value)}"' for key, value in pairs)


def render_prometheus(records: Iterable[Record], tally: Tally, elapsed_s: float, now: float) -> str:
    """The node_exporter textfile format: success, duration and state per endpoint x route."""
    success, duration, state = [], [], []
    for record in records:
        labels = _labels(record)
        if record.ok is not None:  # not_configured has no verdict: no success sample
            success.append(f"scanner_endpoint_success{{{labels}}} {int(record.ok)}")
        seconds = (record.dns.ms + record.connect.ms) / 1000
        duration.append(f"scanner_endpoint_duration_seconds{{{labels}}} {seconds:.6f}")
        state.append(f'scanner_endpoint_state{{{labels},state="{record.connect.status.value}",'
                     f'dns="{record.dns.status.value}"}} 1')
    lines = [
        "# HELP scanner_endpoint_success 1 when the endpoint's outcome matched its expectation.",
        "# TYPE scanner_endpoint_success gauge", *success,
        "# HELP scanner_endpoint_duration_seconds DNS plus connect time of the probe.",
        "# TYPE scanner_endpoint_duration_seconds gauge", *duration,
        "# HELP scanner_endpoint_state The probe's connect state (and DNS state) as labels.",
        "# TYPE scanner_endpoint_state gauge", *state,
        "# HELP scanner_run_probes Probes in the last run, by outcome.",
        "# TYPE scanner_run_probes gauge",
        f'scanner_run_probes{{outcome="ok"}} {tally.ok}',
        f'scanner_run_probes{{outcome="failed"}} {tally.failed}',
        f'scanner_run_probes{{outcome="not_configured"}} {tally.by_status.get("not_configured", 0)}',
        "# HELP scanner_run_duration_seconds Wall time of the last run.",
        "# TYPE scanner_run_duration_seconds gauge",
        f"scanner_run_duration_seconds {elapsed_s:.3f}",
        "# HELP scanner_run_timestamp_seconds When the last run ended (Unix time).",
        "# TYPE scanner_run_timestamp_seconds gauge",
        f"scanner_run_timestamp_seconds {now:.3f}",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename it over `path`.

    A path that exists and is not a regular file (/dev/null, a FIFO) is written into
    directly: renaming over a device node would replace it for the whole machine.
    """
    folder = path.parent if str(path.parent) else Path(".")
    try:
        if path.exists() and not path.is_file():
            with path.open("wb") as handle:
                handle.write(data)
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def check_writable(path: str, flag: str) -> Path:
    """Fail before the run, not after it, when a report cannot be written."""
    if not path:
        raise UsageError(f"{flag} needs a file name")
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {flag} {path}: {folder} is not a writable folder")
    if target.is_dir():
        raise UsageError(f"cannot write {flag} {path}: it is a folder")
    return target


class ReportWriter:
    """Collects records; renders and writes its report when the run ends."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.records: list[Record] = []

    def record(self, record: Record) -> None:
        self.records.append(record)

    def summary(self, tally: Tally, elapsed_s: float, interrupted: bool) -> None:
        if self.kind == "junit":
            data = render_junit(self.records, tally, elapsed_s)
        elif self.kind == "html":
            data = render_html(self.records, tally, elapsed_s, time.time())
        else:
            data = render_prometheus(self.records, tally, elapsed_s, time.time()).encode()
        write_atomically(self.path, data)

    def event(self, name: str, fields: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
