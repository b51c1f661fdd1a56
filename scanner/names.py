"""Pure helpers for host names, IP literals and HOST:PORT text."""

from __future__ import annotations

import ipaddress
import re

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


def is_ip_literal(text: str) -> bool:
    # fast path for the common case, a host name: ipaddress raises twice to say no
    if ":" not in text and not text[-1:].isdigit():
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def to_ascii(name: str) -> str:
    """An internationalised name in its ASCII (punycode) form; ASCII names unchanged."""
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name  # validate_hostname will say what is wrong


def validate_hostname(name: str) -> str | None:
    """None when `name` is a usable DNS name, else what is wrong with it."""
    if not name:
        return "empty host name"
    if len(name) > 253:
        return "host name longer than 253 characters"
    if any(ch.isspace() for ch in name):
        return "host name contains white space"
    for label in name.lower().split("."):
        if not label:
            return "host name has an empty label"
        if not _LABEL.match(label):
            return f"invalid label {label!r} in host name"
    return None


def split_host_port(text: str) -> tuple[str, str | None]:
    """`host`, `host:port`, `1.2.3.4:port`, `::1`, `[::1]:port` -> (host, port text or None)."""
    text = text.strip()
    if not text:
        raise ValueError("empty")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unclosed '[' in IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if not is_ip_literal(host) or ":" not in host:
            raise ValueError(f"{host!r} is not an IPv6 address")
        if not rest:
            return host, None
        if not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        return host, rest[1:]
    if text.count(":") > 1:  # a bare IPv6 literal has no port
        if not is_ip_literal(text):
            raise ValueError(f"{text!r} is not an IPv6 address (write [ADDR]:PORT)")
        return text, None
    host, sep, port = text.partition(":")
    if not host:
        raise ValueError("missing host")
    return host, (port if sep else None)


def parse_port(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"{what} {text!r} is not a port number (1-65535)")
    return int(text)
