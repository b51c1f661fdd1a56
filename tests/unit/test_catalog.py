"""Catalog loading and validation: the bundled catalog, every error path, and --endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.catalog import bundled_names, load_catalog, parse_catalog, parse_endpoint_flag
from scanner.errors import CatalogError, UsageError
from scanner.models import Endpoint, Expectation

BLOB = "*.blob.core.windows.net"


def write(tmp_path: Path, text: str | bytes, name: str = "cat.toml") -> str:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return str(path)


def load_error(tmp_path: Path, text: str | bytes) -> tuple[str, str]:
    """(the error message, the catalog path) for a catalog that must not load."""
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    return info.value.message, path


# --- the bundled catalog -----------------------------------------------------------------------


def test_bundled_defender_atp_hosts_and_ports() -> None:
    catalog = load_catalog("defender-atp")
    assert catalog.name == "defender-atp"
    assert catalog.path is not None
    assert Path(catalog.path).name == "defender-atp.toml"
    assert [(e.host, e.ports, e.wildcard) for e in catalog.endpoints] == [
        ("us.vortex-win.data.microsoft.com", (443,), None),
        ("eu.vortex-win.data.microsoft.com", (443,), None),
        ("sevillegwcus.microsoft.com", (443,), None),
        ("sevillegweus.microsoft.com", (443,), None),
        ("sevillegwweu.microsoft.com", (443,), None),
        ("sevillegwneu.microsoft.com", (443,), None),
        ("www.microsoft.com", (80,), None),
        ("crl.microsoft.com", (80,), None),
        ("ussus1eastprod.blob.core.windows.net", (443,), BLOB),
        ("ussus1westprod.blob.core.windows.net", (443,), BLOB),
        ("usseu1northprod.blob.core.windows.net", (443,), BLOB),
        ("usseu1westprod.blob.core.windows.net", (443,), BLOB),
    ]
    assert {e.expect for e in catalog.endpoints} == {Expectation.REACHABLE}


def test_bundled_names_lists_defender_atp() -> None:
    assert "defender-atp" in bundled_names()


# --- a good catalog of our own -----------------------------------------------------------------


def test_own_catalog_normalises_hosts_ports_and_fields(tmp_path: Path) -> None:
    path = write(tmp_path, (
        'name = "  mine  "\n'
        'description = "d"\n'
        'source = "s"\n'
        '[[endpoints]]\nhost = "  A.Example.COM.  "\nports = [443, 80, 443]\nnote = "n"\n'
        '[[endpoints]]\nhost = "10.0.0.1"\nports = 8080\nexpect = "blocked"\n'
        '[[endpoints]]\nhost = "*.Example.ORG"\nports = [443]\n'
        'probe = ["X.example.org.", "y.z.example.org"]\nnote = ""\n'
    ))
    catalog = load_catalog(path)
    assert (catalog.name, catalog.description, catalog.source, catalog.path) == ("mine", "d", "s", path)
    assert catalog.endpoints == (
        Endpoint("a.example.com", (443, 80), Expectation.REACHABLE, None, "n"),
        Endpoint("10.0.0.1", (8080,), Expectation.BLOCKED, None, None),
        Endpoint("x.example.org", (443,), Expectation.REACHABLE, "*.example.org", None),
        Endpoint("y.z.example.org", (443,), Expectation.REACHABLE, "*.example.org", None),
    )


def test_parse_catalog_uses_origin_in_messages() -> None:
    with pytest.raises(CatalogError) as info:
        parse_catalog(b'name = "x"\n', "<stdin>")
    assert info.value.message == "catalog <stdin>: endpoints: missing or empty (add [[endpoints]] tables)"


# --- errors: every message names the file and the field ----------------------------------------

GOOD_HEAD = 'name = "mine"\n'
GOOD_ENDPOINT = '[[endpoints]]\nhost = "a.example.com"\nports = [443]\n'


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, 'name = "mine"\n[[endpoints]\n')
    assert message.startswith(f"catalog {path}: invalid TOML: ")
    assert "line 2" in message


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        (GOOD_HEAD + 'colour = "red"\n' + GOOD_ENDPOINT, "colour",
         "unknown key (expected one of ['description', 'endpoints', 'name', 'source'])"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nport = 443\n',
         "endpoints[1].port", "unknown key (expected ['expect', 'host', 'http', 'note', 'pins', "
                              "'ports', 'probe', 'require', 'tags', 'tls'])"),
        (GOOD_ENDPOINT, "name", "missing (a string is required)"),
        ('name = "  "\n' + GOOD_ENDPOINT, "name", "must not be empty"),
        ("name = 3\n" + GOOD_ENDPOINT, "name", "expected a string, got int"),
        (GOOD_HEAD + "endpoints = []\n", "endpoints", "missing or empty (add [[endpoints]] tables)"),
        (GOOD_HEAD, "endpoints", "missing or empty (add [[endpoints]] tables)"),
        (GOOD_HEAD + "endpoints = [1]\n", "endpoints[0]", "expected a table"),
        (GOOD_HEAD + '[[endpoints]]\nports = [443]\n', "endpoints[0].host",
         "missing (a string is required)"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = [0]\n',
         "endpoints[1].ports", "0 is not a port number (1-65535)"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = [443, 70000]\n',
         "endpoints[1].ports", "70000 is not a port number (1-65535)"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = ["443"]\n',
         "endpoints[1].ports", "'443' is not a port number (1-65535)"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = "443"\n',
         "endpoints[1].ports", "expected a non-empty list of port numbers"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = [true]\n',
         "endpoints[1].ports", "True is not a port number (1-65535)"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "b.example.com"\nports = true\n',
         "endpoints[1].ports", "expected a non-empty list of port numbers"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "b.example.com"\nports = []\n',
         "endpoints[0].ports", "expected a non-empty list of port numbers"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "b.example.com"\n',
         "endpoints[0].ports", "expected a non-empty list of port numbers"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\n', "endpoints[0].probe",
         "wildcard '*.example.com' needs a list of concrete host names to probe in its place"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\nprobe = []\n',
         "endpoints[0].probe",
         "wildcard '*.example.com' needs a list of concrete host names to probe in its place"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\nprobe = ["a.example.com", 1]\n',
         "endpoints[0].probe",
         "wildcard '*.example.com' needs a list of concrete host names to probe in its place"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\n'
         'probe = ["a.example.com", "a.example.org"]\n',
         "endpoints[0].probe[1]", "'a.example.org' is not under '*.example.com'"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\nprobe = ["example.com"]\n',
         "endpoints[0].probe[0]", "'example.com' is not under '*.example.com'"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.example.com"\nports = [443]\nprobe = ["bad-.example.com"]\n',
         "endpoints[0].probe[0]", "'bad-.example.com': invalid label 'bad-' in host name"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "*.*.example.com"\nports = [443]\nprobe = ["a.b.example.com"]\n',
         "endpoints[0].host", "'*.*.example.com': invalid label '*' in host name"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "a.example.com"\nports = [443]\nprobe = ["b.example.com"]\n',
         "endpoints[0].probe", "only a wildcard host takes a probe list"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "A.Example.com."\nports = [80]\n',
         "endpoints[1].host", "'a.example.com' is listed twice"),
        (GOOD_HEAD + GOOD_ENDPOINT + '[[endpoints]]\nhost = "*.example.com"\nports = [80]\n'
         'probe = ["a.example.com"]\n',
         "endpoints[1].host", "'a.example.com' is listed twice"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "a.example.com"\nports = [443]\nexpect = "open"\n',
         "endpoints[0].expect", "'open' is not 'reachable' or 'blocked'"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "a.example.com"\nports = [443]\nexpect = 1\n',
         "endpoints[0].expect", "expected a string, got int"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "-bad.example.com"\nports = [443]\n',
         "endpoints[0].host", "'-bad.example.com': invalid label '-bad' in host name"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "a..example.com"\nports = [443]\n',
         "endpoints[0].host", "'a..example.com': host name has an empty label"),
        (GOOD_HEAD + '[[endpoints]]\nhost = "a b.example.com"\nports = [443]\n',
         "endpoints[0].host", "'a b.example.com': host name contains white space"),
        (GOOD_HEAD + '[[endpoints]]\nhost = ""\nports = [443]\n',
         "endpoints[0].host", "'': empty host name"),
    ],
)
def test_invalid_catalog_names_file_and_field(tmp_path: Path, text: str, where: str, what: str) -> None:
    message, path = load_error(tmp_path, text)
    assert message == f"catalog {path}: {where}: {what}"


def test_non_utf8_catalog(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, b'name = "caf\xe9"\n')
    assert message == f"catalog {path}: not UTF-8 text (byte 11)"


def test_unknown_catalog_name_lists_bundled_catalogs() -> None:
    with pytest.raises(CatalogError) as info:
        load_catalog("no-such-catalog")
    assert info.value.message == (
        "unknown catalog 'no-such-catalog': not a file, and not a bundled catalog (azure-arc, defender-atp, github-actions-runner, intune, mde-standard, mde-streamlined, windows-update)"
    )


def test_missing_catalog_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CatalogError) as info:
        load_catalog("./missing.toml")
    assert info.value.message == "cannot read catalog missing.toml: No such file or directory"


def test_catalog_path_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(CatalogError) as info:
        load_catalog(str(folder))
    assert info.value.message == f"cannot read catalog {folder}: not a regular file"


def test_catalog_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, GOOD_HEAD + GOOD_ENDPOINT)

    import os

    real_open = os.open

    def denied(target: object, *args: object, **kwargs: object) -> int:
        if str(target) == str(path):  # as for a file root cannot read either (root reads all)
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert info.value.message == f"cannot read catalog {path}: Permission denied"


# --- --endpoint HOST:PORT[,PORT...] ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host:443", Endpoint("host", (443,))),
        ("host:80,443", Endpoint("host", (80, 443))),
        ("host:443,80,443", Endpoint("host", (443, 80))),
        ("Host.Example.COM.:443", Endpoint("host.example.com", (443,))),
        ("[::1]:8080", Endpoint("::1", (8080,))),
        ("1.2.3.4:80", Endpoint("1.2.3.4", (80,))),
        ("a.example.com:65535", Endpoint("a.example.com", (65535,))),
    ],
)
def test_parse_endpoint_flag_good(text: str, expected: Endpoint) -> None:
    assert parse_endpoint_flag(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("host", "--endpoint 'host': expected HOST:PORT (e.g. example.org:443)"),
        ("[::1]", "--endpoint '[::1]': expected HOST:PORT (e.g. example.org:443)"),
        ("host:0", "--endpoint 'host:0': '0' is not a port number (1-65535)"),
        ("host:65536", "--endpoint 'host:65536': '65536' is not a port number (1-65535)"),
        ("host:abc", "--endpoint 'host:abc': 'abc' is not a port number (1-65535)"),
        ("host:", "--endpoint 'host:': '' is not a port number (1-65535)"),
        ("host:80,", "--endpoint 'host:80,': '' is not a port number (1-65535)"),
        ("host:\u00b2", "--endpoint 'host:\u00b2': '\u00b2' is not a port number (1-65535)"),
        (":443", "--endpoint ':443': missing host"),
        ("", "--endpoint '': empty"),
        ("bad host:1", "--endpoint 'bad host:1': host name contains white space"),
        ("-bad:1", "--endpoint '-bad:1': invalid label '-bad' in host name"),
        ("a:b:c", "--endpoint 'a:b:c': 'a:b:c' is not an IPv6 address (write [ADDR]:PORT)"),
    ],
)
def test_parse_endpoint_flag_bad(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_endpoint_flag(text)
    assert info.value.message == message


def test_catalog_nested_too_deeply(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(str(path))
    assert info.value.message == f"catalog {path}: invalid TOML: nested too deeply"


def test_catalog_too_large_and_not_regular(tmp_path: Path) -> None:
    import os

    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (16 * 1024 * 1024 + 1))
    with pytest.raises(CatalogError) as info:
        load_catalog(str(big))
    assert info.value.message == f"catalog {big}: larger than 16 MiB"
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(CatalogError) as info:
        load_catalog(str(fifo))
    assert info.value.message == f"cannot read catalog {fifo}: not a regular file"


def test_catalog_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD_HEAD + GOOD_ENDPOINT).encode())
    assert load_catalog(str(path)).name
