"""A minimal DNS stub codec for bulk A/AAAA lookups: one query out, addresses back.

Pure functions over bytes. Only what resolving many sweep targets needs: a
recursion-desired query for one name, and from a response its id, rcode,
truncation bit, question and the A/AAAA addresses of the answer section (the
CNAME chain's owner names are skipped, as c-ares does when it returns addresses).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

QTYPE_A, QTYPE_AAAA = 1, 28
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_RD, _QR, _TC = 0x0100, 0x8000, 0x0200


class StubWireError(ValueError):
    """Bytes that are not a DNS response we can read."""


@dataclass(frozen=True, slots=True)
class StubAnswer:
    ident: int
    rcode: int
    truncated: bool
    qname: str
    qtype: int
    addresses: tuple[str, ...]


def encode_query(ident: int, name: str, qtype: int) -> bytes:
    """A query for `name` (a validated ASCII host name, no trailing dot)."""
    labels = b"".join(bytes((len(label),)) + label for label in name.encode("ascii").split(b"."))
    return _HEADER.pack(ident, _RD, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(data: bytes, offset: int) -> int:
    while True:
        if offset >= len(data):
            raise StubWireError("name runs past the end")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        if length & 0xC0:
            raise StubWireError("bad label type")
        if length == 0:
            return offset + 1
        offset += 1 + length


def _question_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    while True:
        if offset >= len(data):
            raise StubWireError("question runs past the end")
        length = data[offset]
        if length == 0:
            return ".".join(labels).lower(), offset + 1
        if length & 0xC0:
            raise StubWireError("compressed question name")
        labels.append(data[offset + 1: offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length


def decode_answer(data: bytes) -> StubAnswer:
    """The parts of a response that a bulk lookup needs; StubWireError when unreadable."""
    if len(data) < _HEADER.size:
        raise StubWireError("shorter than a DNS header")
    ident, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data)
    if not flags & _QR or qdcount != 1:
        raise StubWireError("not a response to one question")
    qname, offset = _question_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise StubWireError("truncated question")
    qtype = struct.unpack_from("!H", data, offset)[0]
    offset += 4
    addresses: list[str] = []
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        if offset + _RR.size > len(data):
            raise StubWireError("truncated record")
        rtype, _rclass, _ttl, length = _RR.unpack_from(data, offset)
        offset += _RR.size
        rdata = data[offset: offset + length]
        if len(rdata) != length:
            raise StubWireError("truncated record data")
        offset += length
        if rtype == QTYPE_A and length == 4:
            addresses.append(socket.inet_ntop(socket.AF_INET, rdata))
        elif rtype == QTYPE_AAAA and length == 16:
            addresses.append(str(ipaddress.IPv6Address(rdata)))  # canonical, unlike inet_ntop
    return StubAnswer(ident, flags & 0xF, bool(flags & _TC), qname, qtype, tuple(addresses))
