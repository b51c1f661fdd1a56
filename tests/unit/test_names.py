"""Host names, IP literals and HOST:PORT text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.names import is_ip_literal, parse_port, split_host_port, validate_hostname


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host", ("host", None)),
        ("host:443", ("host", "443")),
        ("  host:443  ", ("host", "443")),
        ("host:", ("host", "")),
        ("host:abc", ("host", "abc")),
        ("host:80,443", ("host", "80,443")),
        ("1.2.3.4", ("1.2.3.4", None)),
        ("1.2.3.4:80", ("1.2.3.4", "80")),
        ("::1", ("::1", None)),
        ("2001:db8::1", ("2001:db8::1", None)),
        ("[::1]", ("::1", None)),
        ("[::1]:8080", ("::1", "8080")),
        ("[2001:db8::1]:", ("2001:db8::1", "")),
        ("[fe80::1%eth0]:53", ("fe80::1%eth0", "53")),
    ],
)
def test_split_host_port_good(text: str, expected: tuple[str, str | None]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (":443", "missing host"),
        ("[::1", "unclosed '[' in IPv6 address"),
        ("[::1]x", "expected ':PORT' after ']'"),
        ("[::1]8080", "expected ':PORT' after ']'"),
        ("[1.2.3.4]:80", "'1.2.3.4' is not an IPv6 address"),
        ("[host]:80", "'host' is not an IPv6 address"),
        ("[]:80", "'' is not an IPv6 address"),
        ("a:b:c", "'a:b:c' is not an IPv6 address (write [ADDR]:PORT)"),
        ("::1:xyz", "'::1:xyz' is not an IPv6 address (write [ADDR]:PORT)"),
    ],
)
def test_split_host_port_bad(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        split_host_port(text)
    assert str(info.value) == message


LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("example.com", None),
        ("EXAMPLE.Com", None),
        ("localhost", None),
        ("_dmarc.example.com", None),
        ("a-b.c-d.example", None),
        ("123.example", None),
        ("x" * 63 + ".com", None),
        (LONGEST, None),
        ("", "empty host name"),
        (LONGEST + "d", "host name longer than 253 characters"),
        ("a b.com", "host name contains white space"),
        ("a\tb.com", "host name contains white space"),
        ("a.com\n", "host name contains white space"),
        ("a..com", "host name has an empty label"),
        (".a.com", "host name has an empty label"),
        ("a.com.", "host name has an empty label"),
        ("-a.com", "invalid label '-a' in host name"),
        ("a-.com", "invalid label 'a-' in host name"),
        ("x" * 64 + ".com", f"invalid label {'x' * 64!r} in host name"),
        ("*.example.com", "invalid label '*' in host name"),
        ("exa$mple.com", "invalid label 'exa$mple' in host name"),
        ("b\u00fccher.de", "invalid label 'b\u00fccher' in host name"),
        ("host:443", "invalid label 'host:443' in host name"),
    ],
)
def test_validate_hostname(name: str, problem: str | None) -> None:
    assert validate_hostname(name) == problem


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("1.2.3.4", True),
        ("255.255.255.255", True),
        ("::1", True),
        ("2001:db8::1", True),
        ("fe80::1%eth0", True),
        ("::ffff:1.2.3.4", True),
        ("[::1]", False),
        ("1.2.3", False),
        ("256.1.1.1", False),
        ("01.2.3.4", False),
        ("example.com", False),
        ("1.2.3.4:80", False),
        ("", False),
    ],
)
def test_is_ip_literal(text: str, literal: bool) -> None:
    assert is_ip_literal(text) is literal


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("443", 443), ("65535", 65535), ("0080", 80)])
def test_parse_port_good(text: str, port: int) -> None:
    assert parse_port(text, "port") == port


@pytest.mark.parametrize("text", ["0", "65536", "-1", "+1", "", " 1", "abc", "\u00b2", "\u0664\u0664\u0663"])
def test_parse_port_bad(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_port(text, "DNS port")
    assert str(info.value) == f"DNS port {text!r} is not a port number (1-65535)"


@given(st.text(max_size=40))
def test_split_host_port_raises_only_value_error(text: str) -> None:
    try:
        host, port = split_host_port(text)
    except ValueError:
        return
    assert host
    assert port is None or isinstance(port, str)


@given(st.text(max_size=12))
def test_parse_port_raises_only_value_error(text: str) -> None:
    try:
        port = parse_port(text, "port")
    except ValueError:
        return
    assert 1 <= port <= 65535
    assert text.isascii()
