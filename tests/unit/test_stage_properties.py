"""Properties of the stages' pure parts: HTTP judging and requests, certificate analysis
helpers, the middlebox range verdict, and the lab's catalog copy (hypothesis)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from tempfile import mkdtemp

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.catalog import parse_catalog
from scanner.certs import Trust, analyse, fingerprint, hostname_matches, load_roots, pin_matches
from scanner.httphead import ResponseHead, find_head_end, parse_response_head
from scanner.lab.labcatalog import catalog_toml, with_pins
from scanner.lab.pki import LabPki, issue
from scanner.limits import RESERVED_FDS, fit_concurrency
from scanner.middlebox import CONTROL_PORTS, control_port, network_of, range_finding
from scanner.models import (
    Catalog,
    Checks,
    Endpoint,
    Expectation,
    HttpExpect,
    HttpStatus,
    MiddleboxResult,
    Stage,
    TlsStatus,
)
from scanner.probes.http import build_request, judge_response
from scanner.stages import fds_per_probe

LOWER, DIGITS = "abcdefghijklmnopqrstuvwxyz", "0123456789"
label = st.builds(str.__add__, st.sampled_from(LOWER), st.text(LOWER + DIGITS, max_size=8))
hostname = st.lists(label, min_size=2, max_size=4).map(".".join)
token = st.builds(str.__add__, st.sampled_from(LOWER.upper() + DIGITS),
                  st.text(LOWER + LOWER.upper() + DIGITS + "-", max_size=12))
value_text = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


# --- HTTP: judging an answer -------------------------------------------------------------------

def response(status: int, headers: list[tuple[str, str]]) -> ResponseHead:
    raw = f"HTTP/1.1 {status} Whatever\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return parse_response_head(raw.encode())


statuses = st.integers(100, 599)
header_lists = st.lists(st.tuples(token, value_text), max_size=5)


@given(statuses, header_lists, st.binary(max_size=64))
def test_without_an_expectation_only_refusals_and_errors_are_block_pages(
        status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    head = response(status, headers)
    got, detail = judge_response(head, body, HttpExpect())
    refusal = status >= 500 or status in (403, 407, 451) or bool(head.get("x-squid-error"))
    assert got is (HttpStatus.BLOCK_PAGE if refusal else HttpStatus.OK)
    assert (detail is None) == (got is HttpStatus.OK)


@given(statuses, header_lists, st.binary(max_size=64),
       st.lists(statuses, max_size=3).map(tuple),
       st.none() | st.tuples(token.map(str.lower), value_text),
       st.none() | st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=4))
def test_a_stated_expectation_passes_exactly_when_each_of_its_parts_does(
        status: int, headers: list[tuple[str, str]], body: bytes, codes: tuple[int, ...],
        header: tuple[str, str] | None, text: str | None) -> None:
    head = response(status, headers)
    whole = HttpExpect(status=codes, header=header, body=text)
    parts = [HttpExpect(status=codes)] if codes else []
    parts += [HttpExpect(header=header)] if header is not None else []
    parts += [HttpExpect(body=text)] if text is not None else []
    if not parts:
        return  # nothing stated: the test above
    got, detail = judge_response(head, body, whole)
    each = [judge_response(head, body, part)[0] is HttpStatus.OK for part in parts]
    assert (got is HttpStatus.OK) == all(each)
    assert got in (HttpStatus.OK, HttpStatus.BLOCK_PAGE)
    assert (detail is None) == (got is HttpStatus.OK)


@given(token, value_text, value_text, value_text, st.booleans())
def test_header_expectation_is_a_case_blind_substring(name: str, before: str, fragment: str,
                                                      after: str, upper: bool) -> None:
    value = before + (fragment.upper() if upper else fragment.lower()) + after
    head = response(200, [(name, value)])
    expect = HttpExpect(header=(name.lower(), fragment))
    assert judge_response(head, b"", expect)[0] is (
        HttpStatus.OK if fragment.lower() in value.lower().strip() else HttpStatus.BLOCK_PAGE)


# --- HTTP: the request -------------------------------------------------------------------------

paths = st.text(LOWER + LOWER.upper() + DIGITS + "._~/?=&%-", max_size=30).map(lambda rest: "/" + rest)
hosts = hostname | st.ip_addresses(v=4).map(str) | st.ip_addresses(v=6).map(str)


@given(hosts, st.integers(1, 65535), paths, st.sampled_from(["GET", "HEAD"]), st.booleans(), st.booleans())
def test_requests_are_one_well_formed_head(host: str, port: int, path: str, method: str,
                                           absolute: bool, tls: bool) -> None:
    request = build_request(HttpExpect(path=path, method=method), host, port, absolute=absolute, tls=tls)
    assert find_head_end(request, 1 << 16) == len(request)
    request_line, *fields = request[:-4].decode().split("\r\n")
    got_method, target, version = request_line.split(" ")
    assert (got_method, version) == (method, "HTTP/1.1")
    headers = dict(field.split(": ", 1) for field in fields)
    authority = f"[{host}]" if ":" in host else host
    if port != (443 if tls else 80):
        authority += f":{port}"
    assert headers["Host"] == authority
    assert headers["Connection"] == "close"
    scheme = "https" if tls else "http"
    assert target == (f"{scheme}://{authority}{path}" if absolute else path)


# --- certificates ------------------------------------------------------------------------------

@given(hostname, st.lists(hostname, max_size=4), st.randoms())
def test_a_host_matches_its_own_name_in_any_case_and_order(host: str, others: list[str],
                                                           rnd: object) -> None:
    sans = [*others, host.upper() + "."]
    rnd.shuffle(sans)  # type: ignore[attr-defined]
    assert hostname_matches(host, sans)
    assert hostname_matches(host + ".", [host])


@given(label, hostname, label)
def test_a_wildcard_stands_for_exactly_one_leftmost_label(first: str, rest: str, extra: str) -> None:
    assert hostname_matches(f"{first}.{rest}", [f"*.{rest}"])
    assert not hostname_matches(rest, [f"*.{rest}"])
    assert not hostname_matches(f"{extra}.{first}.{rest}", [f"*.{rest}"])


@given(st.ip_addresses(), st.lists(hostname, max_size=3))
def test_ip_literals_match_ip_sans_only(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                        names: list[str]) -> None:
    text = str(address)
    assert not hostname_matches(text, [*names, "*." + text])
    assert hostname_matches(text, [*names, address.exploded])


@cache
def lab() -> tuple[LabPki, x509.Certificate, Trust]:
    """One lab PKI and one leaf for svc.test, valid for the ten days after 2030-01-01."""
    pki = LabPki(Path(mkdtemp(prefix="scanner-props-")))
    start = datetime(2030, 1, 1, tzinfo=UTC)
    leaf, _ = issue(pki.root, ["svc.test"], not_before=start, not_after=start + timedelta(days=10))
    return pki, leaf, Trust(load_roots(pki.trust_store), load_roots(pki.public_roots))


@given(st.sampled_from(["scanner lab root CA", "svc.test", "scanner lab"]), st.booleans(),
       st.text(" \t", max_size=2))
def test_name_pins_are_case_blind_and_trimmed(name: str, upper: bool, pad: str) -> None:
    pki, leaf, _ = lab()
    pin = pad + (name.upper() if upper else name) + pad
    assert pin_matches(pin, [leaf, pki.root.cert])


@given(st.text(max_size=30))
def test_other_pins_do_not_match(pin: str) -> None:
    pki, leaf, _ = lab()
    names = {"scanner lab root ca", "svc.test", "scanner lab"}
    if pin.strip().lower() in names or pin.strip().lower().startswith("sha256:"):
        return
    assert not pin_matches(pin, [leaf, pki.root.cert])


@given(st.booleans())
def test_fingerprint_pins_with_or_without_colons(colons: bool) -> None:
    pki, leaf, _ = lab()
    digest = fingerprint(pki.root.cert).upper()
    text = ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)) if colons else digest
    assert pin_matches(f"sha256:{text}", [leaf, pki.root.cert])
    assert not pin_matches(f"sha256:{text}", [leaf])


@settings(max_examples=40, deadline=None)
@given(st.integers(-30 * 24, 40 * 24))
def test_dates_decide_expired_and_not_yet_valid(hours: int) -> None:
    _, leaf, trust = lab()
    now = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
    result = analyse("svc.test", [leaf.public_bytes(serialization.Encoding.DER)], trust, (), now)
    before, after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    want = (TlsStatus.EXPIRED if now > after else TlsStatus.NOT_YET_VALID if now < before
            else TlsStatus.OK)
    assert result.status is want
    assert result.trusted is True  # trust is judged apart from the dates
    assert result.days_left is not None and (result.days_left >= 0) == (now <= after)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=3))
def test_garbage_chains_end_in_handshake_failed(ders: list[bytes]) -> None:
    _, _, trust = lab()
    result = analyse("svc.test", ders, trust, ("pin",), datetime(2030, 1, 2, tzinfo=UTC))
    assert result.status is TlsStatus.HANDSHAKE_FAILED
    assert result.detail == "the server sent no parsable certificate"


# --- the middlebox -----------------------------------------------------------------------------

ipv4_in_few_ranges = st.builds(lambda third, fourth: f"10.0.{third}.{fourth}",
                               st.integers(0, 2), st.integers(1, 254))
checks = st.dictionaries(ipv4_in_few_ranges | st.ip_addresses(v=6).map(str), st.booleans(), max_size=8)


def results(suspects: dict[str, bool]) -> dict[str, MiddleboxResult]:
    return {a: MiddleboxResult(s, 50000, "") for a, s in suspects.items()}


@given(checks)
def test_range_finding(suspects: dict[str, bool]) -> None:
    finding = range_finding(results(suspects))
    groups: dict[str, list[bool]] = {}
    for address, suspect in suspects.items():
        groups.setdefault(network_of(address), []).append(suspect)
    flagged = sorted(n for n, seen in groups.items() if len(seen) >= 2 and all(seen))
    every = len(suspects) >= 2 and all(suspects.values())
    if not flagged and not every:
        assert finding is None
        return
    assert finding is not None
    assert finding.every_address is every
    assert list(finding.networks) == flagged
    assert finding.checked == len(suspects)
    assert finding.accepted == sum(suspects.values()) == len(finding.addresses)
    assert all(suspects[a] for a in finding.addresses)


@given(checks, ipv4_in_few_ranges)
def test_one_refusing_address_clears_its_range_and_the_run(suspects: dict[str, bool], address: str) -> None:
    finding = range_finding(results({**suspects, address: False}))
    assert finding is None or (not finding.every_address and network_of(address) not in finding.networks)


@given(st.sets(st.integers(CONTROL_PORTS.start, CONTROL_PORTS.stop - 1), max_size=50),
       st.integers(0, 1 << 20))
def test_control_port_is_in_range_and_never_avoided(avoid: set[int], draw: int) -> None:
    port = control_port(avoid, draw)
    assert port in CONTROL_PORTS
    assert port not in avoid


@given(st.integers(1, 100_000), st.integers(1, 1 << 20), st.booleans())
def test_concurrency_fits_two_descriptors_per_probe(requested: int, nofile: int, middlebox: bool) -> None:
    per_probe = fds_per_probe(middlebox)
    assert per_probe == (2 if middlebox else 1)
    fitted, warning = fit_concurrency(requested, nofile, per_probe)
    assert 1 <= fitted <= requested
    assert (warning is None) == (fitted == requested)
    if nofile > RESERVED_FDS + per_probe:
        assert fitted * per_probe <= nofile - RESERVED_FDS


# --- the lab's copy of a catalog ---------------------------------------------------------------

def text(min_size: int = 0) -> st.SearchStrategy[str]:
    return st.text(st.characters(exclude_categories=["Cs"]), min_size=min_size, max_size=20)


stripped = text(1).map(str.strip).filter(bool)
port_lists = st.lists(st.integers(1, 65535), min_size=1, max_size=3, unique=True).map(tuple)


@st.composite
def endpoint_checks(draw: st.DrawFn) -> Checks:
    tls_ports = draw(st.none() | st.just(()) | port_lists)
    require = draw(st.frozensets(st.sampled_from(list(Stage))))
    if tls_ports == ():
        require -= {Stage.TLS}
    header = draw(st.none() | st.tuples(token.map(str.lower), text().map(str.strip)))
    expect = HttpExpect(path=draw(paths), method=draw(st.sampled_from(["GET", "HEAD"])),
                        status=tuple(draw(st.lists(statuses, max_size=3))), header=header,
                        body=draw(st.none() | text(1)))
    return Checks(tls_ports, draw(st.none() | port_lists), expect,
                  tuple(draw(st.lists(stripped, max_size=3))), require)


@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    names = draw(st.lists(hostname, min_size=1, max_size=6, unique=True))
    endpoints: list[Endpoint] = []
    for index, name in enumerate(names):
        ports, checks_ = draw(port_lists), draw(endpoint_checks())
        expect = draw(st.sampled_from(list(Expectation)))
        note = draw(st.none() | text(1))
        if draw(st.booleans()):  # a wildcard whose concrete names are under it
            wildcard = f"*.w{index}.{name}"
            for concrete in draw(st.lists(label, min_size=1, max_size=3, unique=True)):
                endpoints.append(Endpoint(f"{concrete}.w{index}.{name}", ports, expect, wildcard,
                                          note, checks_))
        else:
            endpoints.append(Endpoint(name, ports, expect, None, note, checks_))
    return Catalog(draw(stripped), draw(text()), draw(text()), tuple(endpoints))


@settings(max_examples=60, deadline=None)
@given(catalogs())
def test_catalog_toml_reads_back_to_the_same_catalog(catalog: Catalog) -> None:
    parsed = parse_catalog(catalog_toml(catalog).encode(), "copy.toml")
    assert replace(parsed, path=None) == catalog


@settings(max_examples=30, deadline=None)
@given(catalogs(), stripped)
def test_the_lab_copy_pins_only_what_was_pinned(catalog: Catalog, root: str) -> None:
    copy = with_pins(catalog, root)
    assert [replace(e, checks=replace(e.checks, pins=())) for e in copy.endpoints] == [
        replace(e, checks=replace(e.checks, pins=())) for e in catalog.endpoints]
    for before, after in zip(catalog.endpoints, copy.endpoints, strict=True):
        assert after.checks.pins == ((root,) if before.checks.pins else ())
