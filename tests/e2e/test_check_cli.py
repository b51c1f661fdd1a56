"""`scanner check` end to end: the real CLI in a subprocess against the lab on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from scanner.catalog import load_catalog
from scanner.lab.lab import RunningLab, running_lab
from scanner.lab.zone import Fault

FAULTS = [
    ("eu.vortex-win.data.microsoft.com", Fault.NXDOMAIN, 0),
    ("sevillegwneu.microsoft.com", Fault.CLOSED, 0),
    ("sevillegwweu.microsoft.com", Fault.FILTERED, 0),
    ("crl.microsoft.com", Fault.DENIED, 0),
    ("www.microsoft.com", Fault.AUTH, 0),
]
PASSWORD = "Sup3r-s3cret-pw"


@contextmanager
def lab(faults: list[tuple[str, Fault, int]], credentials: tuple[str, str] | None = None,
        first_address: int = 1000) -> Iterator[RunningLab]:
    """A lab in a background thread; the module's shared lab uses the first addresses."""
    catalog = load_catalog("defender-atp")
    with start_blocking_portal("asyncio", {"use_uvloop": True}) as portal, \
            portal.wrap_async_context_manager(
                running_lab(catalog, faults, credentials=credentials, proxy_connect_timeout=0.5,
                            first_address=first_address)
            ) as running:
        yield running


def scanner(*args: str, env: dict[str, str] | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          timeout=timeout, env={**base, **(env or {})}, check=False)


def records(stdout: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    assert lines[-1]["event"] == "summary"
    assert all(line["event"] == "endpoint" for line in lines[:-1])
    return lines[:-1], lines[-1]


def states(found: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    table = {}
    for record in found:
        kind = record["route"].split(":", 1)[0]
        key = (record["host"], kind)
        assert key not in table, f"two records for {key}"
        table[key] = record["connect"]["status"]
    return table


@pytest.fixture(scope="module")
def faulty_lab() -> Iterator[RunningLab]:
    with lab(FAULTS, first_address=0) as running:
        yield running


def test_every_endpoint_and_route_has_its_exact_state(faulty_lab: RunningLab) -> None:
    # the lab's copy of defender-atp: its pins name the lab root (see test_bundled_pins_...)
    done = scanner("check", faulty_lab.catalog_file, *faulty_lab.check_flags(), "--timeout", "1.5")
    assert done.returncode == 1, done.stderr
    found, summary = records(done.stdout)
    ok_hosts = ["us.vortex-win.data.microsoft.com", "sevillegwcus.microsoft.com",
                "sevillegweus.microsoft.com", "ussus1eastprod.blob.core.windows.net",
                "ussus1westprod.blob.core.windows.net", "usseu1northprod.blob.core.windows.net",
                "usseu1westprod.blob.core.windows.net"]
    expected: dict[tuple[str, str], str] = {}
    for host in ok_hosts:
        expected |= {(host, "direct"): "listening", (host, "http"): "tunnel", (host, "socks5h"): "tunnel"}
    expected |= {
        ("eu.vortex-win.data.microsoft.com", "direct"): "skipped",
        ("eu.vortex-win.data.microsoft.com", "http"): "proxy_error",
        ("eu.vortex-win.data.microsoft.com", "socks5h"): "proxy_error",
        ("sevillegwneu.microsoft.com", "direct"): "not_listening",
        ("sevillegwneu.microsoft.com", "http"): "proxy_error",
        ("sevillegwneu.microsoft.com", "socks5h"): "proxy_error",
        ("sevillegwweu.microsoft.com", "direct"): "filtered",
        ("sevillegwweu.microsoft.com", "http"): "proxy_error",
        ("sevillegwweu.microsoft.com", "socks5h"): "proxy_error",
        ("crl.microsoft.com", "direct"): "listening",
        ("crl.microsoft.com", "http"): "denied",
        ("crl.microsoft.com", "socks5h"): "denied",
        ("www.microsoft.com", "direct"): "listening",
        ("www.microsoft.com", "http"): "auth_required",
        ("www.microsoft.com", "socks5h"): "tunnel",
    }
    assert states(found) == expected
    assert summary["total"] == 36
    assert summary["ok"] == sum(1 for r in found if r["ok"])
    assert summary["failed"] == 36 - summary["ok"]
    assert summary["interrupted"] is False
    by_key = {(r["host"], r["route"].split(":", 1)[0]): r for r in found}
    nx = by_key[("eu.vortex-win.data.microsoft.com", "direct")]
    assert nx["dns"]["status"] == "nxdomain" and nx["ok"] is False
    assert by_key[("eu.vortex-win.data.microsoft.com", "http")]["connect"]["proxy_error"] == "ERR_DNS_FAIL 0"
    auth = by_key[("www.microsoft.com", "http")]
    assert auth["connect"]["http_status"] == 407
    assert auth["connect"]["auth_schemes"] == ["Basic"]
    assert "LocalSystem" in auth["reason"]
    denied = by_key[("crl.microsoft.com", "http")]
    assert denied["connect"]["http_status"] == 403
    assert denied["connect"]["proxy_error"] == "ERR_ACCESS_DENIED 0"
    assert by_key[("crl.microsoft.com", "socks5h")]["connect"]["reply_code"] == 2
    blob = by_key[("ussus1eastprod.blob.core.windows.net", "direct")]
    assert blob["wildcard"] == "*.blob.core.windows.net"
    assert blob["catalog"] == "defender-atp"
    assert blob["dns"]["addresses"] == [blob["connect"]["address"]]


def test_bundled_pins_report_the_lab_itself_as_intercepted(faulty_lab: RunningLab) -> None:
    """The bundled catalog pins Microsoft's and DigiCert's roots; the lab is neither, and
    says so: every TLS endpoint it serves is `intercepted` against those pins."""
    done = scanner("check", "defender-atp", "--dns-server", faulty_lab.dns_server, "--ca-file",
                   faulty_lab.ca_file, "--public-roots", faulty_lab.public_roots, "--direct",
                   "--timeout", "1.5")
    assert done.returncode == 1, done.stderr
    found, _ = records(done.stdout)
    handshaken = [r for r in found if r["tls"] is not None and r["tls"]["root"] is not None]
    assert len(handshaken) == 7  # the 443 endpoints the lab serves directly
    for record in handshaken:
        assert (record["tls"]["status"], record["tls"]["root"]) == ("intercepted", "scanner lab root CA")
        assert record["tls"]["detail"] == "the chain ends at 'scanner lab root CA', not at a pinned root"
        assert record["ok"] is False
    lab_copy = scanner("check", faulty_lab.catalog_file, "--dns-server", faulty_lab.dns_server,
                       "--ca-file", faulty_lab.ca_file, "--public-roots", faulty_lab.public_roots,
                       "--direct", "--timeout", "1.5")
    tls = {r["host"]: r["tls"]["status"] for r in records(lab_copy.stdout)[0]
           if r["tls"] is not None and r["tls"]["root"] is not None}
    assert set(tls) == {r["host"] for r in handshaken}
    assert set(tls.values()) == {"ok"}


def test_all_ok_exits_0_and_blocked_expectation(faulty_lab: RunningLab, tmp_path: Any) -> None:
    catalog = tmp_path / "allow.toml"
    catalog.write_text(
        'name = "mine"\n'
        '[[endpoints]]\nhost = "us.vortex-win.data.microsoft.com"\nports = [443]\n'
        '[[endpoints]]\nhost = "sevillegwneu.microsoft.com"\nports = [443]\nexpect = "blocked"\n'
    )
    out = tmp_path / "run.jsonl"
    done = scanner("check", str(catalog), "--dns-server", faulty_lab.dns_server, "--direct",
                   "--output", str(out))
    assert done.returncode == 0, done.stderr
    found, summary = records(done.stdout)
    assert [(r["host"], r["expect"], r["connect"]["status"], r["ok"]) for r in
            sorted(found, key=lambda r: r["host"])] == [
        ("sevillegwneu.microsoft.com", "blocked", "not_listening", True),
        ("us.vortex-win.data.microsoft.com", "reachable", "listening", True),
    ]
    assert (summary["total"], summary["ok"], summary["failed"]) == (2, 2, 0)
    assert out.read_bytes() == done.stdout


def test_env_proxy_is_the_default_route_and_no_proxy_bypasses_it(faulty_lab: RunningLab) -> None:
    done = scanner("check", "--endpoint", "crl.microsoft.com:80",
                   "--endpoint", "us.vortex-win.data.microsoft.com:443",
                   "--dns-server", faulty_lab.dns_server,
                   env={"HTTPS_PROXY": faulty_lab.http_proxy, "http_proxy": faulty_lab.http_proxy,
                        "NO_PROXY": ".data.microsoft.com"})
    found, _ = records(done.stdout)
    got = {(r["host"], r["route"], r["route_source"], r["connect"]["status"]) for r in found}
    assert got == {("crl.microsoft.com", faulty_lab.http_proxy, "env", "denied"),
                   ("us.vortex-win.data.microsoft.com", "direct", "env", "listening")}
    assert all(r["catalog"] is None for r in found)


def test_proxy_password_never_printed() -> None:
    with lab([], credentials=("svc", PASSWORD)) as running:
        port = running.http_proxy.rsplit(":", 1)[1]
        good = f"http://svc:{PASSWORD}@127.0.0.1:{port}"
        bad = f"http://svc:wrong-{PASSWORD}@127.0.0.1:{port}"
        args = ["check", "--endpoint", "us.vortex-win.data.microsoft.com:443", "--dns-server",
                running.dns_server, "--proxy", good, "--proxy", bad, "--format", "console"]
        done = scanner(*args, env={"NO_COLOR": "1"})
        jsonl = scanner(*args[:-2])
        malformed = scanner("check", "--endpoint", "a.test:1", "--proxy",
                            f"http://svc:{PASSWORD}@127.0.0.1:notaport")
    for output in (done.stdout, done.stderr, jsonl.stdout, jsonl.stderr, malformed.stdout,
                   malformed.stderr):
        assert PASSWORD.encode() not in output
    found, _ = records(jsonl.stdout)
    assert {(r["route"], r["connect"]["status"]) for r in found} == {
        (f"http://***@127.0.0.1:{port}", "tunnel"), (f"http://***@127.0.0.1:{port}", "auth_required")}
    assert malformed.returncode == 2
    assert malformed.stderr.decode().count("\n") == 1


@pytest.mark.parametrize(("args", "message"), [
    (["check", "no-such-catalog"], "scanner: error: unknown catalog 'no-such-catalog'"),
    (["check", "./missing.toml"], "scanner: error: cannot read catalog missing.toml"),
    (["check", "--endpoint", "bad host:443"], "scanner: error: --endpoint 'bad host:443'"),
    (["check", "--endpoint", "host.test"], "scanner: error: --endpoint 'host.test': expected HOST:PORT"),
    (["check", "--endpoint", "a.test:1", "--proxy", "ftp://p:1"], "scanner: error: proxy URL 'ftp://p:1'"),
    (["check", "--endpoint", "a.test:1", "--dns-server", "dns.test"], "scanner: error: --dns-server"),
    (["check", "--endpoint", "a.test:1", "--timeout", "-1"], "scanner: error: argument --timeout"),
    (["check", "--endpoint", "a.test:1", "--proxy", "http://u:pw@::1:8080"],
     "scanner: error: proxy URL 'http://***@::1:8080': write an IPv6 address as [ADDR]:PORT"),
    (["check", "--endpoint", "a.test:1", "--dns-server", "[fe80::1%lo]:53"],
     "scanner: error: --dns-server '[fe80::1%lo]:53': scoped IPv6"),
    (["check", "--endpoint", "a.test:1", "--output", ""], "scanner: error: --output needs a file name"),
    (["check"], "scanner: error: name a catalog or give at least one --endpoint"),
    (["bogus"], "scanner: error: argument command"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = scanner(*args)
    stderr = done.stderr.decode()
    assert done.returncode == 2
    assert stderr.startswith(message), stderr
    assert stderr.count("\n") == 1
    assert "Traceback" not in stderr
    assert done.stdout == b""


def test_broken_and_unreadable_catalogs(tmp_path: Any) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "x"\n[[endpoints]]\nhost = "a.test"\nports = [443,,]\n')
    done = scanner("check", str(broken))
    assert done.returncode == 2
    assert done.stderr.decode().startswith(f"scanner: error: catalog {broken}: invalid TOML:")
    assert "(at line 4, column" in done.stderr.decode()
    unreadable = tmp_path / "dir.toml"
    unreadable.mkdir()
    done = scanner("check", str(unreadable))
    assert (done.returncode, done.stderr.count(b"\n")) == (2, 1)
    assert done.stderr.decode().startswith(f"scanner: error: cannot read catalog {unreadable}")


def test_ctrl_c_writes_finished_results_and_an_interrupted_summary() -> None:
    with lab([("sevillegwweu.microsoft.com", Fault.FILTERED, 0)]) as running:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scanner", "check", "--endpoint", "us.vortex-win.data.microsoft.com:443",
             "--endpoint", "sevillegwweu.microsoft.com:443", "--dns-server", running.dns_server,
             "--direct", "--timeout", "30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the listening endpoint answers at once
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130, stderr
    found, summary = records(first + rest)
    assert [(r["host"], r["connect"]["status"]) for r in found] == [
        ("us.vortex-win.data.microsoft.com", "listening")]
    assert summary["interrupted"] is True
    assert summary["total"] == 1


def _hostile_socks_server() -> tuple[Any, int]:
    """A SOCKS5 'proxy' that accepts the greeting, then closes in the middle of its reply."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)

    def serve() -> None:
        for _ in range(200):  # bounded: long enough for the test
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(16)
                    conn.sendall(b"\x05\x00")
                    conn.recv(300)
                    conn.sendall(b"\x05")  # and close: a truncated reply
                except OSError:
                    pass

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


def test_hostile_socks_proxy_costs_one_error_record_per_probe(faulty_lab: RunningLab) -> None:
    server, port = _hostile_socks_server()
    try:
        done = scanner("check", "--endpoint", "www.microsoft.com:443,80", "--endpoint",
                       "crl.microsoft.com:80", "--dns-server", faulty_lab.dns_server, "--direct",
                       "--proxy", f"socks5h://127.0.0.1:{port}", "--timeout", "2")
    finally:
        server.close()
    found, summary = records(done.stdout)
    assert done.returncode == 1, done.stderr
    got = sorted((r["host"], r["port"], r["route"].split(":")[0], r["connect"]["status"]) for r in found)
    assert got == [
        ("crl.microsoft.com", 80, "direct", "listening"),
        ("crl.microsoft.com", 80, "socks5h", "error"),
        ("www.microsoft.com", 80, "direct", "listening"),
        ("www.microsoft.com", 80, "socks5h", "error"),
        ("www.microsoft.com", 443, "direct", "not_listening"),
        ("www.microsoft.com", 443, "socks5h", "error"),
    ]
    assert summary["total"] == 6


def test_closed_stdout_is_quiet_and_output_file_complete(faulty_lab: RunningLab, tmp_path: Any) -> None:
    out = tmp_path / "all.jsonl"
    proc = subprocess.run(
        f"{sys.executable} -m scanner check {faulty_lab.catalog_file} {' '.join(faulty_lab.check_flags())} "
        f"--timeout 1 --format jsonl --output {out} | head -1",
        shell=True, capture_output=True, timeout=60, check=False)
    assert proc.stderr == b""
    assert len(proc.stdout.splitlines()) == 1
    found, summary = records(out.read_bytes())
    assert len(found) == summary["total"] == 36


def test_unwritable_output_is_a_clear_error(faulty_lab: RunningLab) -> None:
    done = scanner("check", "--endpoint", "us.vortex-win.data.microsoft.com:443", "--dns-server",
                   faulty_lab.dns_server, "--direct", "--output", "/dev/full")
    assert done.returncode == 2
    assert done.stderr == b"scanner: error: cannot write results: No space left on device\n"


def test_console_escapes_what_a_proxy_sends(faulty_lab: RunningLab) -> None:
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 403 \x1b[2J\x1b]0;pwned\x07 gone\r\nX-Squid-Error: a\x1bb\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    try:
        done = scanner("check", "--endpoint", "us.vortex-win.data.microsoft.com:443", "--dns-server",
                       faulty_lab.dns_server, "--proxy", f"http://127.0.0.1:{server.getsockname()[1]}",
                       "--format", "console", env={"NO_COLOR": "1"})
    finally:
        server.close()
    assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout
    assert "\\x1b[2J\\x1b]0;pwned\\x07 gone" in done.stdout.decode()
