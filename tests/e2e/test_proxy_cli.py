"""`scanner proxy` and `scanner check --winhttp/--pac` end to end, against the lab on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from scanner.catalog import load_catalog
from scanner.lab.lab import RunningLab, running_lab

NETSH = ("Current WinHTTP proxy settings:\r\n\r\n    Proxy Server(s) :  {proxy}\r\n"
         "    Bypass List     :  <local>;*.blob.core.windows.net\r\n")


def scanner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, timeout=60,
                          env={**base, **(env or {})}, check=False)


def lines(stdout: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def lab() -> Iterator[RunningLab]:
    with start_blocking_portal("asyncio", {"use_uvloop": True}) as portal, \
            portal.wrap_async_context_manager(
                running_lab(load_catalog("defender-atp"), proxy_connect_timeout=0.5, first_address=2000)
            ) as running:
        yield running


def test_proxy_explains_netsh_and_pac(tmp_path: Path, lab: RunningLab) -> None:
    proxy = lab.http_proxy.removeprefix("http://")
    netsh = tmp_path / "netsh.txt"
    netsh.write_text(NETSH.format(proxy=proxy))
    pac = tmp_path / "proxy.pac"
    pac.write_text('function FindProxyForURL(url, host) {\n'
                   '  if (isResolvable(host) && isInNet(host, "127.0.0.0", "255.0.0.0")) '
                   f'return "PROXY {proxy}; DIRECT";\n'
                   '  return "DIRECT"; }\n')
    done = scanner("proxy", "https://www.microsoft.com/", "x.blob.core.windows.net", "nowhere.invalid",
                   "--winhttp", str(netsh), "--pac", str(pac), "--dns-server", lab.dns_server,
                   "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    found = lines(done.stdout)
    assert found[0]["event"] == "pac"
    assert {d["name"] for d in found[0]["dns"]} >= {"www.microsoft.com", "nowhere.invalid"}
    by_url = {line["url"]: line for line in found if line["event"] == "proxy"}
    www = by_url["https://www.microsoft.com/"]
    assert (www["winhttp_route"], www["winhttp_source"]) == (lab.http_proxy, "pac")
    assert [d["source"] for d in www["decisions"]] == ["winhttp", "pac", "env"]
    assert www["decisions"][0]["reason"] == f"netsh.txt: proxy {proxy}, no bypass entry matches"
    assert www["decisions"][1]["entries"] == [f"PROXY {proxy}", "DIRECT"]
    assert www["decisions"][1]["note"] == (f"WinHTTP uses only the first entry (PROXY {proxy}) "
                                           "and never fails over")
    blob = by_url["https://x.blob.core.windows.net/"]
    assert blob["decisions"][0]["reason"] == ("netsh.txt: x.blob.core.windows.net matches bypass entry "
                                              "'*.blob.core.windows.net'")
    assert blob["decisions"][0]["winhttp"] == "DIRECT"
    nowhere = by_url["https://nowhere.invalid/"]
    assert (nowhere["winhttp_route"], nowhere["explanation"]) == (
        "direct", f"{pac} returned 'DIRECT'")


def test_check_adds_winhttps_route_next_to_explicit_ones(tmp_path: Path, lab: RunningLab) -> None:
    proxy = lab.http_proxy.removeprefix("http://")
    netsh = tmp_path / "netsh.txt"
    netsh.write_text(NETSH.format(proxy=proxy))
    done = scanner("check", "--endpoint", "us.vortex-win.data.microsoft.com:443",
                   "--endpoint", "crl.microsoft.com:80",
                   "--direct", "--winhttp", str(netsh), "--dns-server", lab.dns_server,
                   "--timeout", "2", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    records = [r for r in lines(done.stdout) if r["event"] == "endpoint"]
    got = sorted((r["host"], r["route"], r["route_source"], r["route_explanation"], r["connect"]["status"])
                 for r in records)
    assert got == [
        ("crl.microsoft.com", "direct", "explicit", None, "listening"),
        ("crl.microsoft.com", lab.http_proxy, "winhttp",
         f"netsh.txt: proxy {proxy}, no bypass entry matches", "tunnel"),
        ("us.vortex-win.data.microsoft.com", "direct", "explicit", None, "listening"),
        ("us.vortex-win.data.microsoft.com", lab.http_proxy, "winhttp",
         f"netsh.txt: proxy {proxy}, no bypass entry matches", "tunnel"),
    ]


@pytest.mark.parametrize(
    ("content", "flag", "message"),
    [
        ("Proxy Server(s) : b*d:80\n", "--winhttp",
         "scanner: error: f.txt: proxy 'b*d:80': invalid label 'b*d' in host name\n"),
        ("WinHttpSettings REG_BINARY 28000000", "--winhttp",
         "scanner: error: f.txt (registry value): registry value truncated: 4 bytes, ends inside the "
         "counter (at byte 4)\n"),
        ("function FindProxyForURL(u, h) { return 'DIRECT' ", "--pac", "SyntaxError"),
        ("while (true) {}", "--pac", "did not load within 10s (it was stopped)"),
    ],
)
def test_broken_sources_are_one_line_errors(tmp_path: Path, content: str, flag: str, message: str,
                                            lab: RunningLab) -> None:
    path = tmp_path / "f.txt"
    path.write_text(content)
    done = scanner("proxy", "www.microsoft.com", flag, str(path), "--dns-server", lab.dns_server)
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("scanner: error: ")
    assert message in err
    assert "Traceback" not in err
