"""DNS wire format for the lab server: parse one query, build its response.

Pure functions over bytes, no I/O. Names are handled in presentation form:
lowercase, no trailing dot, bytes outside printable ASCII (and ``.`` or ``\\``
inside a label) escaped as ``\\DDD`` / ``\\.`` / ``\\\\`` (RFC 4343).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "Answer",
    "DnsWireError",
    "Query",
    "RRType",
    "Rcode",
    "Record",
    "Response",
    "build_query",
    "build_response",
    "parse_query",
    "parse_response",
]

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength

_QR = 0x8000
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080

_MAX_NAME_WIRE = 255
_MAX_LABEL = 63
_MAX_POINTER_OFFSET = 0x3FFF
# A name has at most 127 labels, so more jumps than that are abuse.
_MAX_POINTER_JUMPS = 127

CLASS_IN = 1


class DnsWireError(ValueError):
    """The bytes are not a well-formed DNS message of the expected kind."""


class Rcode(IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5


class RRType(IntEnum):
    A = 1
    CNAME = 5
    AAAA = 28
    ANY = 255


@dataclass(frozen=True, slots=True)
class Query:
    """One question: what the server needs to look up and to echo back."""

    id: int
    opcode: int
    recursion_desired: bool
    qname: str
    qtype: int
    qclass: int
    # The question section as received (decompressed, original letter case), so
    # the echo matches byte for byte even when the client randomises case.
    question: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    """What the zone says about a query.

    ``cnames`` is the CNAME chain from the query name onward; ``addresses`` are
    owned by the last name of the chain (or the query name when there is none).
    """

    rcode: int
    cnames: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    ttl: int = 60


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    rclass: int
    ttl: int
    # Text for A, AAAA and CNAME; lowercase hex of the raw RDATA otherwise.
    data: str


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    rcode: int
    authoritative: bool
    truncated: bool
    recursion_desired: bool
    recursion_available: bool
    qname: str
    qtype: int
    qclass: int
    answers: tuple[Record, ...]


# --- names ---------------------------------------------------------------------------


def _label_to_text(label: bytes) -> str:
    out: list[str] = []
    for byte in label.lower():
        if byte in (0x2E, 0x5C):  # "." and "\"
            out.append("\\" + chr(byte))
        elif 0x21 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _text_to_labels(name: str) -> list[bytes]:
    """Split a presentation-form name into wire labels (root: no labels)."""
    if name in ("", "."):
        return []
    labels: list[bytes] = []
    current = bytearray()
    i = 0
    while i < len(name):
        char = name[i]
        if char == "\\":
            digits = name[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit() and digits.isascii():
                value = int(digits)
                if value > 255:
                    raise DnsWireError(f"bad escape in name {name!r}")
                current.append(value)
                i += 4
                continue
            if i + 1 >= len(name):
                raise DnsWireError(f"dangling escape in name {name!r}")
            char = name[i + 1]
            i += 1
        elif char == ".":
            labels.append(bytes(current))
            current.clear()
            i += 1
            continue
        code = ord(char)
        if code > 0x7F:
            raise DnsWireError(f"non-ASCII character in name {name!r}")
        current.append(code)
        i += 1
    labels.append(bytes(current))
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # the trailing dot of an absolute name
    if any(not label for label in labels):
        raise DnsWireError(f"empty label in name {name!r}")
    if any(len(label) > _MAX_LABEL for label in labels):
        raise DnsWireError(f"label longer than {_MAX_LABEL} bytes in {name!r}")
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_NAME_WIRE:
        raise DnsWireError(f"name longer than {_MAX_NAME_WIRE} bytes: {name!r}")
    return labels


def _read_name(data: bytes, offset: int) -> tuple[list[bytes], int]:
    """Read a possibly compressed name; return its labels and the offset after it."""
    labels: list[bytes] = []
    wire_length = 1
    end: int | None = None
    jumps = 0
    position = offset
    # Each pointer must land before the start of the stretch being read: offsets
    # then strictly decrease, so no loop can form.
    stretch_start = offset
    while True:
        if position >= len(data):
            raise DnsWireError("truncated name")
        length = data[position]
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= len(data):
                raise DnsWireError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[position + 1]
            if target >= stretch_start:
                raise DnsWireError("compression pointer does not point backwards")
            stretch_start = target
            jumps += 1
            if jumps > _MAX_POINTER_JUMPS:
                raise DnsWireError("too many compression pointers")
            if end is None:
                end = position + 2
            position = target
            continue
        if kind != 0:
            raise DnsWireError(f"unsupported label type 0x{kind:02x}")
        position += 1
        if length == 0:
            break
        label = data[position : position + length]
        if len(label) != length:
            raise DnsWireError("truncated label")
        wire_length += length + 1
        if wire_length > _MAX_NAME_WIRE:
            raise DnsWireError(f"name longer than {_MAX_NAME_WIRE} bytes")
        labels.append(label)
        position += length
    return labels, position if end is None else end


def _labels_to_text(labels: list[bytes]) -> str:
    return ".".join(_label_to_text(label) for label in labels)


def _encode_uncompressed(labels: list[bytes]) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


class _NameWriter:
    """Appends names to a message, compressing against suffixes already written."""

    def __init__(self, message: bytearray) -> None:
        self._message = message
        self._offsets: dict[tuple[bytes, ...], int] = {}

    def remember(self, labels: list[bytes], offset: int) -> None:
        """Register a name already in the message (uncompressed) at ``offset``."""
        for i in range(len(labels)):
            key = tuple(label.lower() for label in labels[i:])
            self._offsets.setdefault(key, offset)
            offset += len(labels[i]) + 1

    def write(self, labels: list[bytes]) -> None:
        for i in range(len(labels)):
            key = tuple(label.lower() for label in labels[i:])
            pointer = self._offsets.get(key)
            if pointer is not None:
                self._message += struct.pack("!H", 0xC000 | pointer)
                return
            if len(self._message) <= _MAX_POINTER_OFFSET:
                self._offsets[key] = len(self._message)
            self._message.append(len(labels[i]))
            self._message += labels[i]
        self._message.append(0)


# --- queries -------------------------------------------------------------------------


def parse_query(data: bytes) -> Query:
    """Parse a DNS query carrying exactly one question.

    Records after the question (EDNS OPT and the like) are ignored.
    Raises DnsWireError on anything that is not such a query.
    """
    if len(data) < _HEADER.size:
        raise DnsWireError("message shorter than a DNS header")
    ident, flags, qdcount, _an, _ns, _ar = _HEADER.unpack_from(data)
    if flags & _QR:
        raise DnsWireError("message is a response, not a query")
    if qdcount != 1:
        raise DnsWireError(f"expected one question, got {qdcount}")
    labels, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise DnsWireError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return Query(
        id=ident,
        opcode=(flags >> 11) & 0xF,
        recursion_desired=bool(flags & _RD),
        qname=_labels_to_text(labels),
        qtype=qtype,
        qclass=qclass,
        question=_encode_uncompressed(labels) + struct.pack("!HH", qtype, qclass),
    )


def build_query(qname: str, qtype: int, *, ident: int = 0, recursion_desired: bool = True) -> bytes:
    """Build a plain query (no EDNS) for ``qname``; handy for tests and raw probes."""
    flags = _RD if recursion_desired else 0
    header = _HEADER.pack(ident, flags, 1, 0, 0, 0)
    labels = _text_to_labels(qname)
    return header + _encode_uncompressed(labels) + struct.pack("!HH", qtype, CLASS_IN)


# --- responses -----------------------------------------------------------------------


def _address_record(address: str) -> tuple[int, bytes]:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError as exc:
        raise DnsWireError(f"not an IP address: {address!r}") from exc
    rtype = RRType.A if parsed.version == 4 else RRType.AAAA
    return rtype, parsed.packed


def build_response(query: Query, answer: Answer, *, max_size: int | None = None) -> bytes:
    """Build the response to ``query``.

    The flags are those of an authoritative server standing in for a recursive
    resolver: QR, AA on NOERROR/NXDOMAIN, RA (clients treat the lab server as
    their resolver), RD copied. Each address record's type follows the
    address's family. When the full message exceeds ``max_size`` the answer is
    dropped and TC set, as a UDP server must (RFC 1035 4.2.1).
    Raises DnsWireError for a name or address that cannot be encoded.
    """
    if not 0 <= answer.rcode <= 0xF:
        raise DnsWireError(f"rcode out of range: {answer.rcode}")
    if not 0 <= answer.ttl <= 0x7FFFFFFF:
        raise DnsWireError(f"ttl out of range: {answer.ttl}")
    flags = _QR | (query.opcode << 11) | _RA | answer.rcode
    if answer.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN):
        flags |= _AA
    if query.recursion_desired:
        flags |= _RD

    # Compression offsets count from the start of the message: write after a
    # placeholder header and fill it in at the end.
    body = bytearray(_HEADER.size) + query.question
    qlabels, _ = _read_name(query.question, 0)
    writer = _NameWriter(body)
    writer.remember(qlabels, _HEADER.size)

    count = 0
    owner = qlabels
    for target in answer.cnames:
        target_labels = _text_to_labels(target)
        writer.write(owner)
        rdata_at = len(body) + _RR_FIXED.size
        body += _RR_FIXED.pack(RRType.CNAME, CLASS_IN, answer.ttl, 0)
        writer.write(target_labels)
        struct.pack_into("!H", body, rdata_at - 2, len(body) - rdata_at)
        owner = target_labels
        count += 1
    for address in answer.addresses:
        rtype, rdata = _address_record(address)
        writer.write(owner)
        body += _RR_FIXED.pack(rtype, CLASS_IN, answer.ttl, len(rdata)) + rdata
        count += 1

    if max_size is not None and len(body) > max_size:
        header = _HEADER.pack(query.id, flags | _TC, 1, 0, 0, 0)
        return header + query.question
    body[: _HEADER.size] = _HEADER.pack(query.id, flags, 1, count, 0, 0)
    return bytes(body)


def _rdata_text(data: bytes, rtype: int, start: int, length: int) -> str:
    rdata = data[start : start + length]
    if rtype == RRType.A and length == 4:
        return str(ipaddress.IPv4Address(rdata))
    if rtype == RRType.AAAA and length == 16:
        return str(ipaddress.IPv6Address(rdata))
    if rtype == RRType.CNAME:
        labels, end = _read_name(data, start)
        if end != start + length:
            raise DnsWireError("CNAME RDATA length does not match its name")
        return _labels_to_text(labels)
    if rtype in (RRType.A, RRType.AAAA):
        raise DnsWireError(f"bad RDATA length {length} for type {rtype}")
    return rdata.hex()


def parse_response(data: bytes) -> Response:
    """Parse a response with one question and its answer section.

    Authority and additional sections are not read.
    """
    if len(data) < _HEADER.size:
        raise DnsWireError("message shorter than a DNS header")
    ident, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(data)
    if not flags & _QR:
        raise DnsWireError("message is a query, not a response")
    if qdcount != 1:
        raise DnsWireError(f"expected one question, got {qdcount}")
    qlabels, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise DnsWireError("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    offset += 4
    records: list[Record] = []
    for _ in range(ancount):
        labels, offset = _read_name(data, offset)
        if offset + _RR_FIXED.size > len(data):
            raise DnsWireError("truncated record")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, offset)
        offset += _RR_FIXED.size
        if offset + rdlength > len(data):
            raise DnsWireError("truncated RDATA")
        text = _rdata_text(data, rtype, offset, rdlength)
        records.append(Record(_labels_to_text(labels), rtype, rclass, ttl, text))
        offset += rdlength
    return Response(
        id=ident,
        rcode=flags & 0xF,
        authoritative=bool(flags & _AA),
        truncated=bool(flags & _TC),
        recursion_desired=bool(flags & _RD),
        recursion_available=bool(flags & _RA),
        qname=_labels_to_text(qlabels),
        qtype=qtype,
        qclass=qclass,
        answers=tuple(records),
    )
