"""Certificate analysis on chains made by the lab's PKI: every TLS verdict, no network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from scanner.certs import Roots, Trust, analyse, hostname_matches, load_roots
from scanner.errors import UsageError
from scanner.lab.pki import LabPki, issue
from scanner.models import TlsStatus

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPki:
    return LabPki(tmp_path_factory.mktemp("pki"))


def der(pki: LabPki, names: list[str], *, inspection: bool = False, start: int = -1, end: int = 30) -> bytes:
    cert, _ = issue(pki.inspection if inspection else pki.root, names,
                    not_before=NOW + timedelta(days=start), not_after=NOW + timedelta(days=end))
    return cert.public_bytes(serialization.Encoding.DER)


def lab_trust(pki: LabPki) -> Trust:
    return Trust(load_roots(pki.trust_store), load_roots(pki.public_roots))


@pytest.mark.parametrize(("kwargs", "host", "status"), [
    ({}, "svc.test", TlsStatus.OK),
    ({"start": -60, "end": -1}, "svc.test", TlsStatus.EXPIRED),
    ({"start": 2, "end": 60}, "svc.test", TlsStatus.NOT_YET_VALID),
    ({}, "other.test", TlsStatus.HOSTNAME_MISMATCH),
    ({"inspection": True}, "svc.test", TlsStatus.INTERCEPTED),
])
def test_verdicts(pki: LabPki, kwargs: dict[str, int], host: str, status: TlsStatus) -> None:
    result = analyse(host, [der(pki, ["svc.test"], **kwargs)], lab_trust(pki), (), NOW)  # type: ignore[arg-type]
    assert result.status is status
    assert result.subject == "CN=svc.test"
    assert result.sans == ("svc.test",)


def test_intercepted_names_the_inspecting_root(pki: LabPki) -> None:
    result = analyse("svc.test", [der(pki, ["svc.test"], inspection=True)], lab_trust(pki), (), NOW)
    assert (result.root, result.trusted, result.public_root) == ("scanner lab inspection CA", True, False)
    assert result.detail == ("the chain verifies only against a private root, "
                             "'scanner lab inspection CA', not a public one")


def test_pins(pki: LabPki) -> None:
    good = der(pki, ["svc.test"])
    trust = lab_trust(pki)
    assert analyse("svc.test", [good], trust, ("scanner lab root CA",), NOW).status is TlsStatus.OK
    pinned_elsewhere = analyse("svc.test", [good], trust, ("Microsoft Root Certificate Authority 2011",), NOW)
    assert pinned_elsewhere.status is TlsStatus.INTERCEPTED
    assert pinned_elsewhere.detail == "the chain ends at 'scanner lab root CA', not at a pinned root"
    # an inspection CA the machine does not trust: still intercepted, because of the pin
    untrusted_store = Trust(load_roots(pki.public_roots), None)
    inspected = der(pki, ["svc.test"], inspection=True)
    assert analyse("svc.test", [inspected], untrusted_store, (), NOW).status is TlsStatus.UNTRUSTED
    assert analyse("svc.test", [inspected], untrusted_store, ("scanner lab root CA",),
                   NOW).status is TlsStatus.INTERCEPTED


def test_empty_store_and_garbage_chain(pki: LabPki) -> None:
    empty = Trust(Roots("nothing", ()), None)
    assert analyse("svc.test", [der(pki, ["svc.test"])], empty, (), NOW).status is TlsStatus.UNTRUSTED
    assert analyse("svc.test", [b"\x30\x03garbage"], empty, (), NOW).status is TlsStatus.HANDSHAKE_FAILED
    assert analyse("svc.test", [], empty, (), NOW).status is TlsStatus.HANDSHAKE_FAILED


@pytest.mark.parametrize(("host", "sans", "match"), [
    ("a.example.com", ["a.example.com"], True),
    ("A.Example.com.", ["a.example.com"], True),
    ("a.example.com", ["*.example.com"], True),
    ("a.b.example.com", ["*.example.com"], False),
    ("example.com", ["*.example.com"], False),
    ("a.example.com", ["b.example.com"], False),
    ("127.0.0.1", ["127.0.0.1"], True),
    ("127.0.0.1", ["*.0.0.1"], False),
    ("a.example.com", [], False),
])
def test_hostname_matches(host: str, sans: list[str], match: bool) -> None:
    assert hostname_matches(host, sans) is match


def test_load_roots_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read --ca-file"):
        load_roots(tmp_path / "missing.pem")
    (tmp_path / "empty.pem").write_text("not a certificate\n")
    with pytest.raises(UsageError, match="no PEM certificates"):
        load_roots(tmp_path / "empty.pem")
