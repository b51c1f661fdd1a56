"""The lab's copy of a catalog: the same endpoints, its pins pointed at the lab's root.

A catalog's pins name the roots the real service chains to (Microsoft's, DigiCert's);
the lab's certificates chain to its own root, so against the lab those pins would
rightly report every TLS endpoint as `intercepted`. The lab therefore hands out a copy
whose pinned endpoints pin the lab root instead: still pinned (an inspecting proxy is
still caught by the pin), never claiming to be Microsoft. The bundled catalog itself,
pins and all, stays what `scanner check` uses everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from scanner.models import Catalog, Checks, Endpoint


def with_pins(catalog: Catalog, root: str) -> Catalog:
    """`catalog` with every pinned endpoint pinning `root` alone (unpinned ones stay so)."""
    def repin(endpoint: Endpoint) -> Endpoint:
        if not endpoint.checks.pins:
            return endpoint
        return replace(endpoint, checks=replace(endpoint.checks, pins=(root,)))

    return replace(catalog, endpoints=tuple(repin(e) for e in catalog.endpoints), path=None)


def _string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _list(values: Iterable[object]) -> str:
    return "[" + ", ".join(_string(v) if isinstance(v, str) else str(v) for v in values) + "]"


def _checks(checks: Checks) -> list[str]:
    lines = []
    if checks.tls_ports is not None:
        lines.append(f"tls = {_list(checks.tls_ports)}" if checks.tls_ports else "tls = false")
    if checks.pins:
        lines.append(f"pins = {_list(checks.pins)}")
    if checks.require:
        lines.append(f"require = {_list(sorted(s.value for s in checks.require))}")
    http = checks.http
    table = [f"method = {_string(http.method)}", f"path = {_string(http.path)}"]
    if checks.http_ports is not None:
        table.insert(0, f"ports = {_list(checks.http_ports)}")
    if http.status:
        table.append(f"status = {_list(http.status)}")
    if http.header is not None:
        table.append(f"header = {_string(f'{http.header[0]}: {http.header[1]}')}")
    if http.body is not None:
        table.append(f"body = {_string(http.body)}")
    return [*lines, "[endpoints.http]", *table]


def catalog_toml(catalog: Catalog) -> str:
    """The catalog as TOML that `parse_catalog` reads back to an equal catalog (its path aside);
    the concrete names of a wildcard go back under one wildcard entry."""
    lines = [f"name = {_string(catalog.name)}", f"description = {_string(catalog.description)}",
             f"source = {_string(catalog.source)}"]
    done: set[str] = set()
    for endpoint in catalog.endpoints:
        if endpoint.wildcard is not None and endpoint.wildcard in done:
            continue
        lines += ["", "[[endpoints]]", f"host = {_string(endpoint.wildcard or endpoint.host)}",
                  f"ports = {_list(endpoint.ports)}", f"expect = {_string(endpoint.expect.value)}"]
        if endpoint.wildcard is not None:
            done.add(endpoint.wildcard)
            probe = [e.host for e in catalog.endpoints if e.wildcard == endpoint.wildcard]
            lines.append(f"probe = {_list(probe)}")
        if endpoint.note is not None:
            lines.append(f"note = {_string(endpoint.note)}")
        lines += _checks(endpoint.checks)
    return "\n".join(lines) + "\n"
