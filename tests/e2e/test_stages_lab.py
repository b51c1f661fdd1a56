"""The TLS, HTTP and middlebox stages end to end: `scanner check` against lab faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from scanner.catalog import parse_catalog
from scanner.lab.lab import RunningLab, running_lab
from scanner.lab.zone import Fault
from tests.e2e.test_check_cli import records, scanner

HOSTS = {
    "good.lab.test": None,
    "expired.lab.test": Fault.EXPIRED,
    "wronghost.lab.test": Fault.WRONG_HOST,
    "inspected.lab.test": Fault.INTERCEPT,
    "blocked.lab.test": Fault.BLOCK_PAGE,
    "everyport.lab.test": Fault.ACCEPT_ALL,
    "garbage.lab.test": Fault.GARBAGE,
    "silent.lab.test": Fault.SILENT,
    "endless.lab.test": Fault.ENDLESS_HEADER,
}
CATALOG = "".join(
    f'[[endpoints]]\nhost = "{host}"\nports = [80, 443]\nrequire = ["tls", "http"]\n'
    '[endpoints.http]\nports = [80, 443]\nstatus = [200]\nheader = "Server: scanner-lab"\n'
    for host in HOSTS)
CATALOG = 'name = "stages"\n' + CATALOG
TIMEOUT = "1.5"


@pytest.fixture(scope="module")
def stage_lab() -> Iterator[tuple[RunningLab, str]]:
    from anyio.from_thread import start_blocking_portal

    catalog = parse_catalog(CATALOG.encode(), "stages.toml")
    faults = [(h, f, 0) for h, f in HOSTS.items() if f is not None]
    with start_blocking_portal("asyncio", {"use_uvloop": True}) as portal, \
            portal.wrap_async_context_manager(
                running_lab(catalog, faults, proxy_connect_timeout=0.5, first_address=2000)) as lab:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as handle:
            handle.write(CATALOG)
        yield lab, handle.name


@pytest.fixture(scope="module")
def found(stage_lab: tuple[RunningLab, str]) -> dict[tuple[str, int, str], dict[str, Any]]:
    lab, path = stage_lab
    done = scanner("check", path, *lab.check_flags(), "--timeout", TIMEOUT, timeout=120)
    assert done.returncode == 1, done.stderr
    lines, summary = records(done.stdout)
    assert summary["total"] == len(HOSTS) * 2 * 3
    return {(r["host"], r["port"], r["route"].split(":", 1)[0]): r for r in lines}


ROUTES = ("direct", "http", "socks5h")


def _tls(found: dict[tuple[str, int, str], dict[str, Any]], host: str, route: str) -> dict[str, Any]:
    tls = found[(host, 443, route)]["tls"]
    assert tls is not None
    return tls  # type: ignore[no-any-return]


def test_the_real_service_passes_every_stage_on_every_route(found: dict[Any, Any]) -> None:
    for route in ROUTES:
        for port in (80, 443):
            record = found[("good.lab.test", port, route)]
            assert record["ok"] is True, record
            assert record["http"]["status"] == "ok"
            assert record["http"]["server"] == "scanner-lab"
        tls = _tls(found, "good.lab.test", route)
        assert tls["status"] == "ok"
        assert tls["version"] in ("TLSv1.2", "TLSv1.3")
        assert tls["alpn"] == "http/1.1"
        assert tls["sans"] == ["good.lab.test"]
        assert tls["root"] == "scanner lab root CA"
        assert (tls["trusted"], tls["public_root"], tls["hostname_match"]) == (True, True, True)
        assert 88 <= tls["days_left"] <= 90
        assert [c["subject"] for c in tls["chain"]] == ["CN=good.lab.test"]
    direct = found[("good.lab.test", 443, "direct")]
    assert direct["middlebox"]["suspect"] is False
    assert found[("good.lab.test", 80, "http")]["http"]["request"].endswith("(absolute-form, via proxy)")


def test_intercepting_proxy_is_reported_with_its_issuer(found: dict[Any, Any]) -> None:
    assert _tls(found, "inspected.lab.test", "direct")["status"] == "ok"
    for route in ("http", "socks5h"):
        record = found[("inspected.lab.test", 443, route)]
        tls = record["tls"]
        assert tls["status"] == "intercepted"
        assert tls["root"] == "scanner lab inspection CA"
        assert tls["issuer"] == "CN=scanner lab inspection CA,O=scanner lab"
        assert (tls["trusted"], tls["public_root"]) == (True, False)
        assert record["connect"]["status"] == "tunnel"
        assert record["ok"] is False
        assert "intercepted by 'scanner lab inspection CA'" in record["reason"]


def test_expired_and_wrong_host_certificates(found: dict[Any, Any]) -> None:
    for route in ROUTES:
        expired = _tls(found, "expired.lab.test", route)
        assert expired["status"] == "expired"
        assert expired["days_left"] < 0
        wrong = _tls(found, "wronghost.lab.test", route)
        assert wrong["status"] == "hostname_mismatch"
        assert (wrong["hostname_match"], wrong["sans"]) == (False, ["wrong-host.scanner-lab.test"])
        assert found[("expired.lab.test", 443, route)]["ok"] is False
        assert "has expired" in found[("expired.lab.test", 443, route)]["reason"]


def test_block_page_is_told_apart_from_the_service(found: dict[Any, Any]) -> None:
    for route in ROUTES:
        for port in (80, 443):
            record = found[("blocked.lab.test", port, route)]
            assert record["http"]["status"] == "block_page"
            assert record["http"]["http_status"] == 200
            assert record["http"]["server"] == "lab-gateway"
            assert record["ok"] is False
            assert "block page" in record["reason"]


def test_address_that_accepts_every_port_is_flagged(stage_lab: tuple[RunningLab, str],
                                                    found: dict[Any, Any]) -> None:
    lab, _ = stage_lab
    # without an HTTP expectation nothing proves the service behind the middlebox
    done = scanner("check", "--endpoint", "everyport.lab.test:80", "--endpoint", "good.lab.test:80",
                   "--dns-server", lab.dns_server, "--direct", "--timeout", TIMEOUT)
    lines, _ = records(done.stdout)
    by_host = {r["host"]: r for r in lines}
    record = by_host["everyport.lab.test"]
    assert record["connect"]["status"] == "suspect_middlebox"
    assert record["middlebox"]["suspect"] is True
    assert 49152 <= record["middlebox"]["control_port"] <= 65535
    assert record["ok"] is False
    assert "closed by design" in record["reason"]
    assert by_host["good.lab.test"]["connect"]["status"] == "listening"
    assert by_host["good.lab.test"]["middlebox"]["suspect"] is False
    # the real certificate, or the service's stated HTTP answer, proves it despite the middlebox
    for port in (80, 443):
        proven = found[("everyport.lab.test", port, "direct")]
        assert proven["middlebox"]["suspect"] is True
        assert (proven["connect"]["status"], proven["ok"]) == ("listening", True)


def test_hostile_servers_end_in_clear_states_within_the_timeout(found: dict[Any, Any]) -> None:
    limit_ms = float(TIMEOUT) * 1000 + 500
    for route in ROUTES:
        garbage = _tls(found, "garbage.lab.test", route)
        assert garbage["status"] == "handshake_failed"
        assert garbage["ms"] < limit_ms
        assert found[("garbage.lab.test", 80, route)]["http"]["status"] == "protocol_error"
        silent = _tls(found, "silent.lab.test", route)
        assert silent["status"] == "timeout"
        assert silent["ms"] < limit_ms
        assert found[("silent.lab.test", 80, route)]["http"]["status"] == "timeout"
        for port in (80, 443):
            endless = found[("endless.lab.test", port, route)]["http"]
            assert endless["status"] == "protocol_error"
            assert endless["detail"] == "response head larger than 65536 bytes"
            assert endless["ms"] < limit_ms


def test_verify_requires_a_handshake_or_an_answer(stage_lab: tuple[RunningLab, str]) -> None:
    lab, _ = stage_lab
    done = scanner("check", "--endpoint", "silent.lab.test:443", "--endpoint", "good.lab.test:443",
                   "--dns-server", lab.dns_server, "--ca-file", lab.ca_file, "--public-roots",
                   lab.public_roots, "--direct", "--verify", "--timeout", "1")
    lines, _ = records(done.stdout)
    got = {r["host"]: (r["connect"]["status"], r["ok"]) for r in lines}
    assert got == {"silent.lab.test": ("unverified", False), "good.lab.test": ("listening", True)}
