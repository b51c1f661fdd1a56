"""Catalogs: TOML files listing a service's endpoints, bundled or the user's own.

A catalog looks like::

    name = "defender-atp"
    description = "..."
    source = "the document the list was taken from"

    [[endpoints]]
    host = "crl.microsoft.com"
    ports = [80]

    [[endpoints]]
    host = "*.blob.core.windows.net"   # a wildcard is not probed as such:
    ports = [443]
    probe = ["ussus1eastprod.blob.core.windows.net"]   # these names stand in for it
    expect = "reachable"               # or "blocked"

Stages beyond the connect (all optional)::

    tls = true                  # TLS on every port but 80; false: none; a list: those ports
                                # (default: 443)
    pins = ["DigiCert Global Root G2", "sha256:AB12..."]   # roots/issuers expected in the chain
    require = ["tls", "http"]   # stages that must pass for `ok`
    [endpoints.http]            # the HTTP stage (default: GET / on port 80, any non-refusal)
    ports = [80]
    method = "GET"              # or "HEAD"
    path = "/"
    status = [200]              # what the real service answers, so a block page is told apart
    header = "Server: Microsoft-IIS"   # a header whose value contains this text
    body = "some text"          # text in the first 16 KiB of the body
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from scanner.errors import CatalogError, UsageError
from scanner.files import TooLarge, read_limited
from scanner.models import Catalog, Checks, Endpoint, Expectation, HttpExpect, Stage
from scanner.names import is_ip_literal, split_host_port, to_ascii, validate_hostname

_CATALOG_KEYS = {"name", "description", "source", "endpoints"}
_ENDPOINT_KEYS = {"host", "ports", "expect", "probe", "note", "tls", "pins", "require", "http", "tags"}
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_HTTP_KEYS = {"ports", "method", "path", "status", "header", "body"}


def bundled_dir() -> Path:
    """The folder holding the bundled catalogs, in a wheel or in the source tree."""
    installed = resources.files("scanner") / "_catalogs"
    if installed.is_dir():
        return Path(str(installed))
    return Path(__file__).resolve().parent.parent / "catalog"


def bundled_names() -> list[str]:
    folder = bundled_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.toml"))


def resolve_catalog(spec: str) -> Path:
    """Turn `defender-atp` or `./file.toml` into a path, or fail with a clear message."""
    path = Path(spec)
    looks_like_path = spec.endswith(".toml") or "/" in spec or "\\" in spec
    if path.is_file() or looks_like_path:
        return path
    candidate = bundled_dir() / f"{spec}.toml"
    if candidate.is_file():
        return candidate
    known = ", ".join(bundled_names()) or "none"
    raise CatalogError(f"unknown catalog {spec!r}: not a file, and not a bundled catalog ({known})")


MAX_CATALOG_BYTES = 16 * 1024 * 1024


def load_catalog(spec: str) -> Catalog:
    path = resolve_catalog(spec)
    try:
        data = read_limited(path, MAX_CATALOG_BYTES)
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror or exc}") from None
    except TooLarge:
        raise CatalogError(f"catalog {path}: larger than {MAX_CATALOG_BYTES // 2**20} MiB") from None
    return parse_catalog(data, str(path))


def parse_catalog(data: bytes, origin: str) -> Catalog:
    """Parse and validate catalog TOML; errors name `origin` and the offending field."""
    try:
        text = data.decode("utf-8-sig")  # Windows editors write a BOM
    except UnicodeDecodeError as exc:
        raise CatalogError(f"catalog {origin}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"catalog {origin}: invalid TOML: {exc}") from None
    except RecursionError:
        raise CatalogError(f"catalog {origin}: invalid TOML: nested too deeply") from None
    return _build(doc, origin)


def _fail(origin: str, where: str, what: str) -> CatalogError:
    return CatalogError(f"catalog {origin}: {where}: {what}")


def _string(doc: Mapping[str, Any], key: str, origin: str, where: str, required: bool) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise _fail(origin, where + key, "missing (a string is required)")
        return ""
    if not isinstance(value, str):
        raise _fail(origin, where + key, f"expected a string, got {type(value).__name__}")
    return value


def _build(doc: Mapping[str, Any], origin: str) -> Catalog:
    unknown = sorted(set(doc) - _CATALOG_KEYS)
    if unknown:
        raise _fail(origin, unknown[0], f"unknown key (expected one of {sorted(_CATALOG_KEYS)})")
    name = _string(doc, "name", origin, "", required=True).strip()
    if not name:
        raise _fail(origin, "name", "must not be empty")
    description = _string(doc, "description", origin, "", required=False)
    source = _string(doc, "source", origin, "", required=False)
    raw_endpoints = doc.get("endpoints")
    if not isinstance(raw_endpoints, list) or not raw_endpoints:
        raise _fail(origin, "endpoints", "missing or empty (add [[endpoints]] tables)")
    endpoints: list[Endpoint] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_endpoints):
        where = f"endpoints[{index}]"
        if not isinstance(raw, dict):
            raise _fail(origin, where, "expected a table")
        for endpoint in _endpoints(raw, origin, where):
            if endpoint.host in seen:
                raise _fail(origin, f"{where}.host", f"{endpoint.host!r} is listed twice")
            seen.add(endpoint.host)
            endpoints.append(endpoint)
    return Catalog(name, description, source, tuple(endpoints), origin)


def _endpoints(raw: Mapping[str, Any], origin: str, where: str) -> Iterator[Endpoint]:
    unknown = sorted(set(raw) - _ENDPOINT_KEYS)
    if unknown:
        raise _fail(origin, f"{where}.{unknown[0]}", f"unknown key (expected {sorted(_ENDPOINT_KEYS)})")
    host = to_ascii(_string(raw, "host", origin, where + ".", required=True).strip().lower().rstrip("."))
    ports = _ports(raw.get("ports"), origin, f"{where}.ports")
    expect_text = _string(raw, "expect", origin, where + ".", required=False) or "reachable"
    try:
        expect = Expectation(expect_text)
    except ValueError:
        raise _fail(origin, f"{where}.expect", f"{expect_text!r} is not 'reachable' or 'blocked'") from None
    note = _string(raw, "note", origin, where + ".", required=False) or None
    tags = _strings(raw.get("tags"), origin, f"{where}.tags")
    for tag in tags:
        if not _TAG.match(tag):
            raise _fail(origin, f"{where}.tags", f"{tag!r} is not a tag (lower-case letters, digits, - _ .)")
    checks = _checks(raw, ports, origin, where)
    probe = raw.get("probe")
    if host.startswith("*."):
        suffix = host[2:]
        problem = validate_hostname(suffix)
        if problem or "*" in suffix:
            raise _fail(origin, f"{where}.host", f"{host!r}: {problem or 'only a leftmost * is allowed'}")
        if not isinstance(probe, list) or not probe or not all(isinstance(p, str) for p in probe):
            raise _fail(origin, f"{where}.probe",
                        f"wildcard {host!r} needs a list of concrete host names to probe in its place")
        for i, concrete in enumerate(probe):
            name = to_ascii(concrete.strip().lower().rstrip("."))
            problem = validate_hostname(name)
            if problem:
                raise _fail(origin, f"{where}.probe[{i}]", f"{concrete!r}: {problem}")
            if not name.endswith("." + suffix):
                raise _fail(origin, f"{where}.probe[{i}]", f"{concrete!r} is not under {host!r}")
            yield Endpoint(name, ports, expect, wildcard=host, note=note, checks=checks, tags=tags)
        return
    if probe is not None:
        raise _fail(origin, f"{where}.probe", "only a wildcard host takes a probe list")
    problem = None if is_ip_literal(host) else validate_hostname(host)
    if problem:
        raise _fail(origin, f"{where}.host", f"{host!r}: {problem}")
    yield Endpoint(host, ports, expect, note=note, checks=checks, tags=tags)


def _strings(value: object, origin: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(origin, where, "expected a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _checks(raw: Mapping[str, Any], ports: tuple[int, ...], origin: str, where: str) -> Checks:
    tls = raw.get("tls")
    tls_ports: tuple[int, ...] | None
    if tls is None:
        tls_ports = None
    elif isinstance(tls, bool):
        tls_ports = tuple(p for p in ports if p != 80) if tls else ()
    else:
        tls_ports = _ports(tls, origin, f"{where}.tls")
    pins = _strings(raw.get("pins"), origin, f"{where}.pins")
    require: set[Stage] = set()
    for name in _strings(raw.get("require"), origin, f"{where}.require"):
        try:
            require.add(Stage(name))
        except ValueError:
            raise _fail(origin, f"{where}.require", f"{name!r} is not 'tls' or 'http'") from None
    http_raw = raw.get("http", {})
    if not isinstance(http_raw, dict):
        raise _fail(origin, f"{where}.http", "expected a table")
    unknown = sorted(set(http_raw) - _HTTP_KEYS)
    if unknown:
        raise _fail(origin, f"{where}.http.{unknown[0]}", f"unknown key (expected {sorted(_HTTP_KEYS)})")
    here = f"{where}.http."
    http_ports = _ports(http_raw["ports"], origin, here + "ports") if "ports" in http_raw else None
    method = (_string(http_raw, "method", origin, here, required=False) or "GET").upper()
    if method not in ("GET", "HEAD"):
        raise _fail(origin, here + "method", f"{method!r} is not GET or HEAD")
    path = _string(http_raw, "path", origin, here, required=False) or "/"
    if not path.startswith("/") or any(c in path for c in " \r\n\t"):
        raise _fail(origin, here + "path", f"{path!r} is not an absolute path without spaces")
    status_raw = http_raw.get("status", [])
    if isinstance(status_raw, int) and not isinstance(status_raw, bool):
        status_raw = [status_raw]
    if not isinstance(status_raw, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in status_raw):
        raise _fail(origin, here + "status", "expected HTTP status codes (100-599)")
    header_text = _string(http_raw, "header", origin, here, required=False)
    header = None
    if header_text:
        name, colon, value = header_text.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise _fail(origin, here + "header", f"{header_text!r}: expected 'Name: text'")
        header = (name.strip().lower(), value.strip())
    body = _string(http_raw, "body", origin, here, required=False) or None
    if Stage.TLS in require and tls_ports == ():
        raise _fail(origin, f"{where}.require", "requires tls, but tls = false")
    return Checks(tls_ports, http_ports, HttpExpect(path, method, tuple(status_raw), header, body),
                  pins, frozenset(require))


def _ports(value: object, origin: str, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(origin, where, "expected a non-empty list of port numbers")
    ports: list[int] = []
    for port in value:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _fail(origin, where, f"{port!r} is not a port number (1-65535)")
        if port not in ports:
            ports.append(port)
    return tuple(ports)


def parse_endpoint_flag(text: str) -> Endpoint:
    """`--endpoint HOST:PORT[,PORT...]`: an ad-hoc endpoint."""
    try:
        host, port_text = split_host_port(text)
    except ValueError as exc:
        raise UsageError(f"--endpoint {text!r}: {exc}") from None
    if port_text is None:
        raise UsageError(f"--endpoint {text!r}: expected HOST:PORT (e.g. example.org:443)")
    ports: list[int] = []
    for part in port_text.split(","):
        if not (part.isascii() and part.isdigit()) or not 1 <= int(part) <= 65535:
            raise UsageError(f"--endpoint {text!r}: {part!r} is not a port number (1-65535)")
        ports.append(int(part))
    host = to_ascii(host.lower().rstrip("."))
    problem = None if is_ip_literal(host) else validate_hostname(host)
    if problem:
        raise UsageError(f"--endpoint {text!r}: {problem}")
    return Endpoint(host, tuple(dict.fromkeys(ports)))



def select_tags(catalog: Catalog, tags: tuple[str, ...], required: bool = True) -> Catalog:
    """The endpoints carrying at least one of `tags` (all of them when `tags` is empty);
    with `required`, a selection that keeps nothing is an error."""
    if not tags:
        return catalog
    wanted = {t.lower() for t in tags}
    kept = tuple(e for e in catalog.endpoints if wanted & set(e.tags))
    if not kept and required:
        known = sorted({t for e in catalog.endpoints for t in e.tags})
        raise UsageError(f"no endpoint of catalog {catalog.name!r} has tag {', '.join(sorted(wanted))} "
                         f"(its tags: {', '.join(known) or 'none'})")
    return Catalog(catalog.name, catalog.description, catalog.source, kept, catalog.path)


def lint_problems(catalog: Catalog) -> list[str]:
    """What a valid catalog still lacks to be useful in a library (empty: nothing)."""
    problems = []
    if not catalog.description.strip():
        problems.append("description: missing")
    if not catalog.source.strip():
        problems.append("source: missing (name the document the list was taken from)")
    untagged = [e.host for e in catalog.endpoints if not e.tags]
    if untagged and len(untagged) < len(catalog.endpoints):
        problems.append(f"tags: {len(untagged)} endpoints have none (e.g. {untagged[0]})")
    return problems
