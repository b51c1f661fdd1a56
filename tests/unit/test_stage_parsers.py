"""The pure parts of the HTTP stage, the catalog's stage keys and the control-port choice."""

from __future__ import annotations

import pytest

from scanner.catalog import parse_catalog
from scanner.errors import CatalogError
from scanner.httphead import parse_response_head
from scanner.middlebox import CONTROL_PORTS, control_port
from scanner.models import HttpExpect, HttpStatus, Stage
from scanner.probes.http import build_request, judge_response


def test_build_request_origin_and_absolute_form() -> None:
    expect = HttpExpect(path="/pki/crl", method="HEAD")
    assert build_request(expect, "crl.example.com", 80, absolute=False, tls=False) == (
        b"HEAD /pki/crl HTTP/1.1\r\nHost: crl.example.com\r\nUser-Agent: scanner/0.1\r\n"
        b"Accept: */*\r\nConnection: close\r\n\r\n")
    assert build_request(expect, "crl.example.com", 8080, absolute=True, tls=False).startswith(
        b"HEAD http://crl.example.com:8080/pki/crl HTTP/1.1\r\nHost: crl.example.com:8080\r\n")


def head(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode() + b"\r\n"


@pytest.mark.parametrize(("response", "expect", "status"), [
    ("HTTP/1.1 200 OK\n", HttpExpect(), HttpStatus.OK),
    ("HTTP/1.1 404 Not Found\n", HttpExpect(), HttpStatus.OK),
    ("HTTP/1.1 403 Forbidden\n", HttpExpect(), HttpStatus.BLOCK_PAGE),
    ("HTTP/1.1 200 OK\nX-Squid-Error: ERR_ACCESS_DENIED 0\n", HttpExpect(), HttpStatus.BLOCK_PAGE),
    ("HTTP/1.1 502 Bad Gateway\n", HttpExpect(), HttpStatus.BLOCK_PAGE),
    ("HTTP/1.1 200 OK\n", HttpExpect(status=(200,)), HttpStatus.OK),
    ("HTTP/1.1 302 Found\n", HttpExpect(status=(200,)), HttpStatus.BLOCK_PAGE),
    ("HTTP/1.1 200 OK\nServer: Microsoft-IIS/10.0\n", HttpExpect(header=("server", "iis")), HttpStatus.OK),
    ("HTTP/1.1 200 OK\nServer: gateway\n", HttpExpect(header=("server", "iis")), HttpStatus.BLOCK_PAGE),
    ("HTTP/1.1 200 OK\n", HttpExpect(header=("server", "iis")), HttpStatus.BLOCK_PAGE),
])
def test_judge_response(response: str, expect: HttpExpect, status: HttpStatus) -> None:
    assert judge_response(parse_response_head(head(response)), b"", expect)[0] is status


def test_judge_response_body() -> None:
    parsed = parse_response_head(head("HTTP/1.1 200 OK\n"))
    expect = HttpExpect(body="this is the service")
    assert judge_response(parsed, b"scanner lab: this is the service\n", expect) == (HttpStatus.OK, None)
    assert judge_response(parsed, b"<html>Access denied</html>", expect) == (
        HttpStatus.BLOCK_PAGE, "HTTP 200 OK, but the body is not the service's")


CATALOG = 'name = "x"\n[[endpoints]]\nhost = "a.example.com"\nports = [80, 443, 8443]\n'


def test_catalog_stage_keys() -> None:
    text = CATALOG + ('tls = [443, 8443]\npins = ["My Root", "sha256:ab"]\nrequire = ["tls", "http"]\n'
                      '[endpoints.http]\nports = [80]\nmethod = "head"\npath = "/x"\nstatus = 200\n'
                      'header = "Server: IIS"\nbody = "hello"\n')
    checks = parse_catalog(text.encode(), "c.toml").endpoints[0].checks
    assert checks.tls_ports == (443, 8443)
    assert checks.http_ports == (80,)
    assert checks.pins == ("My Root", "sha256:ab")
    assert checks.require == frozenset({Stage.TLS, Stage.HTTP})
    assert checks.http == HttpExpect("/x", "HEAD", (200,), ("server", "IIS"), "hello")
    assert (checks.tls_on(8443), checks.tls_on(80), checks.http_on(80), checks.http_on(443)) == (
        True, False, True, False)


def test_catalog_stage_defaults() -> None:
    checks = parse_catalog(CATALOG.encode(), "c.toml").endpoints[0].checks
    assert (checks.tls_on(443), checks.tls_on(8443), checks.http_on(80)) == (True, False, True)
    assert checks.require == frozenset()
    everything = parse_catalog((CATALOG + "tls = true\n").encode(), "c.toml").endpoints[0].checks
    assert everything.tls_ports == (443, 8443)


@pytest.mark.parametrize(("extra", "message"), [
    ('require = ["ssh"]\n', "endpoints[0].require: 'ssh' is not 'tls' or 'http'"),
    ('tls = false\nrequire = ["tls"]\n', "endpoints[0].require: requires tls, but tls = false"),
    ('pins = "x"\n', "endpoints[0].pins: expected a list of non-empty strings"),
    ('[endpoints.http]\nmethod = "POST"\n', "endpoints[0].http.method: 'POST' is not GET or HEAD"),
    ('[endpoints.http]\npath = "x"\n', "endpoints[0].http.path: 'x' is not an absolute path"),
    ('[endpoints.http]\nstatus = [99]\n', "endpoints[0].http.status: expected HTTP status codes"),
    ('[endpoints.http]\nheader = "nocolon"\n', "endpoints[0].http.header: 'nocolon': expected"),
    ('[endpoints.http]\nverb = "GET"\n', "endpoints[0].http.verb: unknown key"),
])
def test_catalog_stage_errors(extra: str, message: str) -> None:
    with pytest.raises(CatalogError, match="^catalog c.toml: " + message.replace("[", r"\[")
                       .replace("]", r"\]").replace("(", r"\(")):
        parse_catalog((CATALOG + extra).encode(), "c.toml")


def test_control_port_avoids_the_endpoint_ports() -> None:
    assert control_port((), draw=0) == 49152
    assert control_port({49152, 49153}, draw=0) == 49154
    assert control_port((), draw=len(CONTROL_PORTS) - 1) == 65535
    assert all(49152 <= control_port(()) <= 65535 for _ in range(100))
