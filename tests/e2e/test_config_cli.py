"""`scanner check --config`, --output-append and rotation, and the progress line, end to end."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import orjson

from scanner.lab.zone import Fault
from tests.e2e.test_check_cli import PASSWORD, lab, scanner

DEFENDER_HOSTS = [
    "us.vortex-win.data.microsoft.com", "eu.vortex-win.data.microsoft.com", "sevillegwcus.microsoft.com",
    "sevillegweus.microsoft.com", "sevillegwweu.microsoft.com", "sevillegwneu.microsoft.com",
    "www.microsoft.com", "crl.microsoft.com", "ussus1eastprod.blob.core.windows.net",
    "ussus1westprod.blob.core.windows.net", "usseu1northprod.blob.core.windows.net",
    "usseu1westprod.blob.core.windows.net",
]
EXTRA = """name = "extra"
[[endpoints]]
host = "crl.microsoft.com"   # in defender-atp too: probed once, under defender-atp
ports = [80]
[[endpoints]]
host = "missing.example.test"
ports = [443]
"""


def lines(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines()]


def test_a_config_file_drives_the_run(tmp_path: Path) -> None:
    (tmp_path / "extra.toml").write_text(EXTRA)
    config = tmp_path / "scanner.toml"
    with lab([], credentials=("svc", PASSWORD), first_address=5000) as running:
        proxy = running.http_proxy
        config.write_text(f"""
catalogs = ["{running.catalog_file}", "extra.toml"]  # defender-atp, pinned to the lab root
timeout = 1.5
concurrency = 16
[dns]
servers = ["{running.dns_server}"]
[routes]
direct = true
proxies = [{{ url = "{proxy}", username = "svc", password_env = "LAB_PROXY_PASSWORD" }}]
[checks]
ca_file = "{running.ca_file}"
public_roots = "{running.public_roots}"
[output]
format = "console"
file = "runs.jsonl"
append = true
junit = "report.xml"
""")
        env = {"LAB_PROXY_PASSWORD": PASSWORD}
        # --format on the command line wins over output.format in the file
        first = scanner("check", "--config", str(config), "--format", "jsonl", env=env)
        again = scanner("check", "--config", str(config), "--format", "jsonl", env=env)
    for done in (first, again):
        assert done.returncode == 1, done.stderr
        assert done.stderr == b""  # stderr is not a terminal: no progress line
        assert PASSWORD.encode() not in done.stdout
    found = lines(first.stdout)
    assert [r["event"] for r in found] == ["endpoint"] * 26 + ["summary"]
    table = {(r["host"], r["route"]): (r["catalog"], r["connect"]["status"]) for r in found[:-1]}
    shown = proxy.replace("http://", "http://***@")  # a route with credentials, as records show it
    expected = {}
    for host in DEFENDER_HOSTS:
        expected[(host, "direct")] = ("defender-atp", "listening")
        expected[(host, shown)] = ("defender-atp", "tunnel")  # the password came from the environment
    expected[("missing.example.test", "direct")] = ("extra", "skipped")
    expected[("missing.example.test", shown)] = ("extra", "denied")  # the lab proxy refuses unknown names
    assert table == expected
    assert (found[-1]["total"], found[-1]["failed"]) == (26, 2)
    # output.file is appended to: both runs are there, whole
    kept = lines((tmp_path / "runs.jsonl").read_bytes())
    assert [r["event"] for r in kept] == (["endpoint"] * 26 + ["summary"]) * 2
    assert PASSWORD.encode() not in (tmp_path / "runs.jsonl").read_bytes()
    suites = ET.parse(tmp_path / "report.xml").getroot()
    assert (suites.get("tests"), suites.get("failures")) == ("26", "2")
    assert sorted((s.get("name"), s.get("tests")) for s in suites.iter("testsuite")) == [
        ("defender-atp", "24"), ("extra", "2")]


def test_config_errors_name_the_key_and_hide_the_secret(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(f"""[routes]
proxies = ["socks5h://127.0.0.1:1080", "http://svc:{PASSWORD}@127.0.0.1:notaport"]
""")
    done = scanner("check", "--config", str(config), "--dns-server", "127.0.0.1:9")
    assert done.returncode == 2
    assert done.stderr.decode() == (
        f"scanner: error: config {config}: routes.proxies[1]: proxy URL 'http://***@127.0.0.1:notaport': "
        "'notaport' is not a port number (1-65535)\n")
    assert done.stdout == b""
    config.write_text('[routes]\nproxies = [{ url = "http://svc@127.0.0.1:3128", password_env = "NOT_SET_HERE" }]\n'
                      "[output]\nrotate = true\n")
    done = scanner("check", "--config", str(config))
    assert (done.returncode, done.stderr.decode()) == (
        2, f"scanner: error: config {config}: output.rotate: unknown key (expected one of append, baseline, "
           "file, format, junit, keep, max_bytes, progress, prometheus)\n")
    done = scanner("check", "--output-append", "--endpoint", "a.test:1", "--dns-server", "127.0.0.1:9")
    assert (done.returncode, done.stderr.decode()) == (
        2, "scanner: error: --output-append needs --output FILE (or output.file in the config)\n")


def test_output_rotates_by_size_without_splitting_records(tmp_path: Path) -> None:
    out = tmp_path / "check.jsonl"
    words = ["--endpoint", "us.vortex-win.data.microsoft.com:443", "--endpoint", "crl.microsoft.com:80",
             "--direct", "--output", str(out), "--output-append", "--output-max-bytes", "2K", "--output-keep", "2"]
    with lab([], first_address=5100) as running:
        runs = [scanner("check", *words, "--dns-server", running.dns_server) for _ in range(4)]
    assert [done.returncode for done in runs] == [0, 0, 0, 0]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["check.jsonl", "check.jsonl.1", "check.jsonl.2"]
    events: list[str] = []
    for name in ["check.jsonl.2", "check.jsonl.1", "check.jsonl"]:
        data = (tmp_path / name).read_bytes()
        assert data.endswith(b"\n")
        assert len(data) <= 2048 or data.count(b"\n") == 1
        events += [r["event"] for r in lines(data)]  # every line is one whole record
    assert events == (["endpoint", "endpoint", "summary"] * 4)[-len(events):]
    # the newest file ends with the last run, exactly as it went to stdout
    assert (tmp_path / "check.jsonl").read_bytes().endswith(runs[-1].stdout.splitlines()[-1] + b"\n")


def test_progress_goes_to_a_terminal_on_stderr_never_to_stdout(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    with lab([], first_address=5200) as running:
        child = subprocess.Popen(
            [sys.executable, "-m", "scanner", "check", "--endpoint", "us.vortex-win.data.microsoft.com:443",
             "--endpoint", "crl.microsoft.com:80", "--direct", "--dns-server", running.dns_server],
            stdout=subprocess.PIPE, stderr=follower, stdin=subprocess.DEVNULL,
            env={**{k: v for k, v in os.environ.items() if "proxy" not in k.lower()}, "TERM": "xterm"})
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            elif child.poll() is not None:
                break
        stdout, _ = child.communicate(timeout=30)
    os.close(leader)
    assert child.returncode == 0
    assert [r["event"] for r in lines(stdout)] == ["endpoint", "endpoint", "summary"]
    assert b"\x1b" not in stdout and b"0 failed" not in stdout
    assert b"2/2 100%" in seen and b"0 failed" in seen
    assert seen.endswith(b"\x1b[2K")  # the line is erased at the end


def test_a_scheduled_run_from_a_config_reports_drift_against_its_baseline(tmp_path: Path) -> None:
    """The issue's goal: a config file and a baseline, drift records and exit status 4."""
    config = tmp_path / "job.toml"

    def write_config(dns_server: str, baseline: bool) -> None:
        config.write_text(f"""
endpoints = ["us.vortex-win.data.microsoft.com:443", "crl.microsoft.com:80"]
[dns]
servers = ["{dns_server}"]
[routes]
direct = true
[output]
file = "{'today' if baseline else 'yesterday'}.jsonl"
{'baseline = "yesterday.jsonl"' if baseline else ''}
prometheus = "scanner.prom"
""")

    with lab([], first_address=5300) as running:
        write_config(running.dns_server, baseline=False)
        first = scanner("check", "--config", str(config))
    with lab([("crl.microsoft.com", Fault.CLOSED, 0)], first_address=5300) as running:
        write_config(running.dns_server, baseline=True)
        second = scanner("check", "--config", str(config))
    assert (first.returncode, second.returncode) == (0, 4), second.stderr
    drift = [r for r in lines(second.stdout) if r["event"] == "drift"]
    assert [(d["kind"], d["host"], d["before"]["status"], d["after"]["status"]) for d in drift] == [
        ("newly_failing", "crl.microsoft.com", "listening", "not_listening")]
    assert lines((tmp_path / "today.jsonl").read_bytes()) == lines(second.stdout)
    assert ('scanner_endpoint_success{catalog="",host="crl.microsoft.com",port="80",route="direct",route_source="explicit",'
            'expect="reachable"} 0\n') in (tmp_path / "scanner.prom").read_text()
