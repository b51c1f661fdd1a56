"""`scanner check defender-atp` against real squid, dnsmasq and dante, and plain listeners.

Nothing here comes from the lab: the DNS answers are dnsmasq's, the proxies are squid
(an allowlist with dstdomain, a second port requiring Basic auth) and dante (SOCKS5).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from scanner.catalog import load_catalog
from scanner.lab.labcatalog import catalog_toml, with_pins
from scanner.lab.pki import ROOT_NAME, LabPki
from tests.integration.servers import dante, dnsmasq, free_port, http_listener, squid

if os.environ.get("SCANNER_TEST_NETNS") != "1":
    pytest.fail("integration tests run only inside tests/run's private network namespace",
                pytrace=False)

HOSTS = {  # defender-atp's hosts at addresses of their own
    "us.vortex-win.data.microsoft.com": ("127.0.2.1", 443),
    "eu.vortex-win.data.microsoft.com": None,  # not in DNS at all: NXDOMAIN
    "sevillegwcus.microsoft.com": ("127.0.2.3", 443),
    "sevillegweus.microsoft.com": ("127.0.2.4", 443),
    "sevillegwweu.microsoft.com": ("127.0.2.5", 443),
    "sevillegwneu.microsoft.com": ("127.0.2.6", None),  # resolves, nothing listens
    "www.microsoft.com": ("127.0.2.7", 80),
    "crl.microsoft.com": ("127.0.2.8", 80),  # not in squid's allowlist
    "ussus1eastprod.blob.core.windows.net": ("127.0.2.9", 443),
    "ussus1westprod.blob.core.windows.net": ("127.0.2.10", 443),
    "usseu1northprod.blob.core.windows.net": ("127.0.2.11", 443),
    "usseu1westprod.blob.core.windows.net": ("127.0.2.12", 443),
}
ALLOWED = [h for h in HOSTS if "blob" not in h and h != "crl.microsoft.com"] + [".blob.core.windows.net"]
USER, PASSWORD = "svc-agent", "Corp-Pr0xy-Secret"


@dataclass(frozen=True)
class Setup:
    squid: int
    squid_auth: int
    dante: int


TRUST: list[str] = []  # --ca-file and --public-roots of the module's test CA
CATALOG: list[str] = []  # defender-atp, its pins naming that CA (the bundled ones name Microsoft's)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    records = {name: [where[0]] for name, where in HOSTS.items() if where is not None}
    pki = LabPki(tmp_path_factory.mktemp("pki"))
    TRUST[:] = ["--ca-file", str(pki.trust_store), "--public-roots", str(pki.public_roots)]
    copy = tmp_path_factory.mktemp("catalog") / "defender-atp.toml"
    copy.write_text(catalog_toml(with_pins(load_catalog("defender-atp"), ROOT_NAME)))
    CATALOG[:] = [str(copy)]
    with ExitStack() as stack:
        for name, where in HOSTS.items():
            if where is not None and where[1] is not None:  # HTTPS on 443, HTTP on 80
                context = pki.context(name) if where[1] == 443 else None
                stack.enter_context(http_listener(where[0], where[1], context))
        stack.enter_context(dnsmasq(records, port=53))
        squid_port, auth_port, dante_port = free_port(), free_port(), free_port()
        stack.enter_context(squid(port=squid_port, allow_domains=ALLOWED, auth_port=auth_port,
                                  users={USER: PASSWORD}, allow_plain_http=True))
        stack.enter_context(dante(port=dante_port))
        yield Setup(squid_port, auth_port, dante_port)


def check(*args: str) -> tuple[int, list[dict[str, Any]], dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run([sys.executable, "-m", "scanner", "check", *args, *TRUST, "--timeout", "3"],
                          capture_output=True, timeout=120, env=env, check=False)
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1]["event"] == "summary", done.stderr
    output = done.stdout.decode() + done.stderr.decode()
    return done.returncode, lines[:-1], lines[-1], output


def by_route(found: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["host"], r["route"].split("://")[0]): r for r in found}


def test_defender_atp_through_real_squid_dnsmasq_and_dante(setup: Setup) -> None:
    status, found, summary, _ = check(
        CATALOG[0], "--dns-server", "127.0.0.1", "--direct",
        "--proxy", f"http://127.0.0.1:{setup.squid}", "--proxy", f"socks5h://127.0.0.1:{setup.dante}")
    assert status == 1
    table = by_route(found)
    assert len(found) == len(table) == 36 == summary["total"]
    got = {key: r["connect"]["status"] for key, r in table.items()}
    expected: dict[tuple[str, str], str] = {}
    for host, where in HOSTS.items():
        if where is None:
            expected |= {(host, "direct"): "skipped", (host, "http"): "proxy_error",
                         (host, "socks5h"): "proxy_error"}
        elif where[1] is None:
            expected |= {(host, "direct"): "not_listening", (host, "http"): "proxy_error",
                         (host, "socks5h"): "proxy_error"}
        elif host == "crl.microsoft.com":
            expected |= {(host, "direct"): "listening", (host, "http"): "denied",
                         (host, "socks5h"): "tunnel"}
        else:
            expected |= {(host, "direct"): "listening", (host, "http"): "tunnel",
                         (host, "socks5h"): "tunnel"}
    assert got == expected
    nx = table[("eu.vortex-win.data.microsoft.com", "direct")]
    assert nx["dns"]["status"] == "nxdomain"
    squid_nx = table[("eu.vortex-win.data.microsoft.com", "http")]["connect"]
    # squid 5.7 answers 500 ERR_CANNOT_FORWARD here; other versions 503 ERR_DNS_FAIL
    assert (squid_nx["http_status"], squid_nx["proxy_error"].split()[0]) in {
        (500, "ERR_CANNOT_FORWARD"), (503, "ERR_DNS_FAIL")}
    refused = table[("sevillegwneu.microsoft.com", "http")]["connect"]
    assert (refused["http_status"], refused["proxy_error"].split()[0]) == (503, "ERR_CONNECT_FAIL")
    assert table[("sevillegwneu.microsoft.com", "socks5h")]["connect"]["reply_code"] == 5
    denied = table[("crl.microsoft.com", "http")]
    assert denied["connect"]["http_status"] == 403
    assert denied["connect"]["proxy_error"] == "ERR_ACCESS_DENIED 0"
    assert "allowlist" in denied["reason"]
    us = table[("us.vortex-win.data.microsoft.com", "direct")]
    assert us["dns"]["addresses"] == ["127.0.2.1"] and us["connect"]["address"] == "127.0.2.1"
    # every endpoint reached on 443 spoke TLS with a certificate for its own name
    reached_443 = [r for r in found if r["port"] == 443 and r["connect"]["status"] in ("listening", "tunnel")]
    assert len(reached_443) == 24
    assert {(r["tls"]["status"], r["tls"]["hostname_match"]) for r in reached_443} == {("ok", True)}
    reached_80 = [r for r in found if r["port"] == 80 and r["connect"]["status"] in ("listening", "tunnel")]
    assert {(r["http"]["status"], r["http"]["http_status"]) for r in reached_80} == {("ok", 200)}
    assert summary["ok"] == sum(1 for r in found if r["ok"]) == 36 - 7


def test_squid_basic_auth_port_and_no_password_anywhere(setup: Setup) -> None:
    anonymous = f"http://127.0.0.1:{setup.squid_auth}"
    with_login = f"http://{USER}:{PASSWORD}@127.0.0.1:{setup.squid_auth}"
    status, found, _, output = check(
        "--endpoint", "us.vortex-win.data.microsoft.com:443", "--endpoint", "crl.microsoft.com:80",
        "--dns-server", "127.0.0.1", "--proxy", anonymous, "--proxy", with_login)
    assert status == 1
    got = {(r["host"], r["route"]): (r["connect"]["status"], r["connect"]["http_status"]) for r in found}
    shown = f"http://***@127.0.0.1:{setup.squid_auth}"
    assert got == {
        ("us.vortex-win.data.microsoft.com", anonymous): ("auth_required", 407),
        ("crl.microsoft.com", anonymous): ("auth_required", 407),
        ("us.vortex-win.data.microsoft.com", shown): ("tunnel", 200),
        ("crl.microsoft.com", shown): ("denied", 403),
    }
    auth = next(r for r in found if r["route"] == anonymous)
    assert auth["connect"]["auth_schemes"] == ["Basic"]
    assert "LocalSystem" in auth["reason"]
    assert PASSWORD not in output and USER not in output


def test_socks5_with_local_resolution_through_dante(setup: Setup) -> None:
    status, found, _, _ = check(
        "--endpoint", "sevillegwcus.microsoft.com:443", "--endpoint", "eu.vortex-win.data.microsoft.com:443",
        "--dns-server", "127.0.0.1", "--proxy", f"socks5://127.0.0.1:{setup.dante}")
    assert status == 1
    got = {r["host"]: (r["connect"]["status"], r["dns"]["status"]) for r in found}
    assert got == {"sevillegwcus.microsoft.com": ("tunnel", "resolved"),
                   "eu.vortex-win.data.microsoft.com": ("skipped", "nxdomain")}


def test_blocked_expectation_proven_by_squid(setup: Setup, tmp_path: Any) -> None:
    catalog = tmp_path / "blocked.toml"
    catalog.write_text('name = "must-be-blocked"\n[[endpoints]]\nhost = "crl.microsoft.com"\n'
                       'ports = [80]\nexpect = "blocked"\n')
    status, found, summary, _ = check(str(catalog), "--dns-server", "127.0.0.1",
                                      "--proxy", f"http://127.0.0.1:{setup.squid}")
    assert status == 0
    assert [(r["connect"]["status"], r["ok"]) for r in found] == [("denied", True)]
    assert (summary["ok"], summary["failed"]) == (1, 0)
