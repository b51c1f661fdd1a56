"""`scanner check --analyzer`, `--pac-timeout` and `--my-ip` end to end, against the lab on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from scanner.catalog import load_catalog
from scanner.lab.dnsserver import StaticZone, serve_dns
from scanner.lab.lab import RunningLab, running_lab
from scanner.lab.pacserver import serve_files

HOST = "us.vortex-win.data.microsoft.com"
WPAD_ADDRESS = "127.0.30.1"
NETSH = "Current WinHTTP proxy settings:\r\n\r\n    Proxy Server(s) :  {proxy}\r\n    Bypass List     :  (none)\r\n"


def scanner(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, timeout=60,
                          env=env, check=False)


def lines(stdout: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def paths(found: list[dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    return [(r["route_source"], r["route"], r["connect"]["status"], r["ok"])
            for r in found if r["event"] == "endpoint"]


class Lab:
    """The lab, plus a DNS server of our own that also answers wpad.contoso.com, whose
    wpad.dat sends everything through the lab's HTTP proxy."""

    def __init__(self, lab: RunningLab, dns_server: str) -> None:
        self.lab = lab
        self.dns_server = dns_server
        self.proxy = lab.http_proxy.removeprefix("http://")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with start_blocking_portal("asyncio", {"use_uvloop": True}) as portal, \
            portal.wrap_async_context_manager(
                running_lab(load_catalog("defender-atp"), proxy_connect_timeout=0.5, first_address=3000)
            ) as running:
        proxy = running.http_proxy.removeprefix("http://")
        zone = StaticZone({**{h.name: [h.address] for h in running.hosts}, "wpad.contoso.com": [WPAD_ADDRESS]})
        wpad_dat = f'function FindProxyForURL(url, host) {{ return "PROXY {proxy}"; }}'.encode()

        async def serve(task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
            async with anyio.create_task_group() as tg:
                await tg.start(partial(serve_files, {"/wpad.dat": wpad_dat}, host=WPAD_ADDRESS, port=80))
                port = await tg.start(partial(serve_dns, zone, host="127.0.0.1"))
                task_status.started(port)

        future, port = portal.start_task(serve)
        try:
            yield Lab(running, f"127.0.0.1:{port}")
        finally:
            future.cancel()


def test_analyzer_checks_each_path_as_its_own_route(tmp_path: Path, lab: Lab) -> None:
    netsh = tmp_path / "netsh.txt"
    netsh.write_text(NETSH.format(proxy=lab.proxy))
    done = scanner("check", "--endpoint", f"{HOST}:443", "--analyzer", "--winhttp", str(netsh),
                   "--wpad", "--dns-suffix", "corp.contoso.com", "--named-proxy", lab.proxy,
                   "--proxy", lab.lab.socks_proxy, "--proxy", lab.lab.socks_proxy, "--direct",
                   "--dns-server", lab.dns_server, "--ca-file", lab.lab.ca_file,
                   "--public-roots", lab.lab.public_roots, "--timeout", "2", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    found = lines(done.stdout)
    assert sorted(paths(found)) == [
        ("command_line", lab.lab.socks_proxy, "tunnel", True),  # given twice, probed once
        ("named_proxy", lab.lab.http_proxy, "tunnel", True),
        ("proxy_disabled", "direct", "listening", True),  # --direct is this path
        ("winhttp", lab.lab.http_proxy, "tunnel", True),
        ("wpad", lab.lab.http_proxy, "tunnel", True),
    ]
    by_source = {r["route_source"]: r for r in found if r["event"] == "endpoint"}
    assert by_source["winhttp"]["route_explanation"] == f"netsh.txt: proxy {lab.proxy}"
    assert by_source["wpad"]["route_explanation"] == (
        f"http://wpad.contoso.com/wpad.dat returned 'PROXY {lab.proxy}'")
    assert by_source["named_proxy"]["route_explanation"] == (
        f"named proxy {lab.proxy} (the TelemetryProxyServer value)")
    assert by_source["command_line"]["route_explanation"] == (
        f"command-line proxy {lab.lab.socks_proxy} (--proxy)")
    assert by_source["proxy_disabled"]["route_explanation"] == "proxy disabled: always direct"
    summary = found[-1]
    assert (summary["total"], summary["ok"], summary["failed"], summary["by_status"]) == (
        5, 5, 0, {"listening": 1, "tunnel": 4})


def test_analyzer_says_not_configured_where_a_path_does_not_exist(tmp_path: Path, lab: Lab) -> None:
    report = tmp_path / "report.xml"
    prom = tmp_path / "scanner.prom"
    done = scanner("check", "--endpoint", f"{HOST}:443", "--endpoint", f"{HOST}:8443", "--analyzer",
                   "--wpad", "--dns-suffix", "elsewhere.example.org", "--dns-server", lab.dns_server,
                   "--no-middlebox-check", "--timeout", "1", "--format", "jsonl",
                   "--junit", str(report), "--prometheus", str(prom))
    assert done.returncode == 1, done.stderr  # 8443: nothing listens on the direct path
    found = lines(done.stdout)
    records = [r for r in found if r["event"] == "endpoint"]
    assert sorted((r["port"], *p) for r, p in zip(records, paths(found), strict=True)) == [
        (443, "command_line", "none", "not_configured", None),
        (443, "named_proxy", "none", "not_configured", None),
        (443, "proxy_disabled", "direct", "listening", True),
        (443, "winhttp", "none", "not_configured", None),
        (443, "wpad", "none", "not_configured", None),
        (8443, "command_line", "none", "not_configured", None),
        (8443, "named_proxy", "none", "not_configured", None),
        (8443, "proxy_disabled", "direct", "not_listening", False),
        (8443, "winhttp", "none", "not_configured", None),
        (8443, "wpad", "none", "not_configured", None),
    ]
    details = {r["route_source"]: (r["connect"]["detail"], r["reason"], r["connect"]["ms"])
               for r in records if r["port"] == 443 and r["ok"] is None}
    assert details == {
        "winhttp": ("no static WinHTTP setting given (--winhttp)", None, 0.0),
        "wpad": ("WPAD found no wpad.dat (2 names tried)", None, 0.0),
        "named_proxy": ("no named proxy given (--named-proxy, the TelemetryProxyServer value)", None, 0.0),
        "command_line": ("no command-line proxy given (--proxy)", None, 0.0),
    }
    # a not_configured record still carries the (shared) DNS answer of its host
    assert {r["dns"]["status"] for r in records} == {"resolved"}
    summary = found[-1]
    assert (summary["total"], summary["ok"], summary["failed"], summary["by_status"]) == (
        10, 1, 1, {"listening": 1, "not_configured": 8, "not_listening": 1})
    xml = report.read_text()
    assert 'tests="10" failures="1" errors="0" skipped="8"' in xml
    assert xml.count("<skipped message=") == 8
    assert f'name="{HOST}:443 via none (named_proxy)"' in xml
    text = prom.read_text()
    assert text.count("scanner_endpoint_success{") == 2
    assert text.count('state="not_configured"') == 8
    assert 'scanner_run_probes{outcome="not_configured"} 8' in text


def test_analyzer_console_marks_paths_without_a_verdict(lab: Lab) -> None:
    done = scanner("check", "--endpoint", f"{HOST}:443", "--analyzer", "--dns-server", lab.dns_server,
                   "--timeout", "1", "--format", "console")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode().splitlines()
    rows = {line.split()[2]: line for line in out[1:] if line.strip() and HOST in line}
    assert set(rows) == {"none"} | {"direct"}  # first column: the route label's first word
    assert sum(1 for line in out if line.startswith(" -- ")) == 4
    assert any("direct (proxy_disabled)" in line and line.startswith(" ok ") for line in out)
    assert out[-1].startswith("5 checked in ") and out[-1].endswith(
        ": 1 ok, all ok [1 listening, 4 not_configured]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--named-proxy", "127.0.0.1:3128"],
         "scanner: error: --named-proxy is one of --analyzer's paths: add --analyzer\n"),
        (["--analyzer", "--named-proxy", "bad host:1"], "scanner: error: --named-proxy 'bad host:1': "),
        (["--pac-timeout", "0"], "scanner: error: argument --pac-timeout: '0' must be from 0.1 to 600 seconds"),
        (["--my-ip", "10.0.0.300"], "scanner: error: argument --my-ip: '10.0.0.300' is not an IP address"),
    ],
)
def test_bad_analyzer_and_pac_flags_are_one_line_errors(args: list[str], message: str, lab: Lab) -> None:
    done = scanner("check", "--endpoint", f"{HOST}:443", "--dns-server", lab.dns_server, *args)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith(message) and err.count("\n") == 1
    assert done.stdout == b""


def test_check_pac_timeout_bounds_a_stalling_script(tmp_path: Path, lab: Lab) -> None:
    pac = tmp_path / "stall.pac"
    pac.write_text("function FindProxyForURL(url, host) { while (true) {} }\n")
    start = time.monotonic()
    done = scanner("check", "--endpoint", f"{HOST}:443", "--pac", str(pac), "--pac-timeout", "1",
                   "--dns-server", lab.dns_server, "--timeout", "1", "--format", "jsonl")
    elapsed = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    (record,) = [r for r in lines(done.stdout) if r["event"] == "endpoint"]
    assert (record["route"], record["route_source"], record["connect"]["status"]) == ("direct", "pac", "listening")
    assert record["route_explanation"] == (
        f"{pac} failed: the script ran past its time limit of 1s and was stopped; "
        "the source failed, so WinHTTP goes direct")
    assert elapsed < 8  # the default limit alone is 10 s


@pytest.mark.parametrize(
    ("my_ip", "route"),
    [
        ([], "direct"),
        (["--my-ip", "fd00::5", "--my-ip", "10.1.2.3"], "http://10.1.2.3:8080"),
    ],
)
def test_my_ip_is_what_my_ip_address_returns(tmp_path: Path, my_ip: list[str], route: str, lab: Lab) -> None:
    pac = tmp_path / "my.pac"
    pac.write_text('function FindProxyForURL(url, host) {\n'
                   '  if (isInNet(myIpAddress(), "10.1.0.0", "255.255.0.0")) return "PROXY " + myIpAddress() + ":8080";\n'
                   '  return "DIRECT"; }\n'
                   'function FindProxyForURLEx(url, host) { return FindProxyForURL(url, host); }\n')
    done = scanner("proxy", HOST, "--pac", str(pac), "--dns-server", lab.dns_server, "--format", "jsonl",
                   *my_ip)
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in lines(done.stdout) if x["event"] == "proxy"]
    assert line["winhttp_route"] == route
