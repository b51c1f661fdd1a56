"""The lab's DNS wire format: queries in, responses out, garbage rejected."""

from __future__ import annotations

import contextlib
import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.lab.dnswire import (
    Answer,
    DnsWireError,
    Query,
    Rcode,
    Record,
    RRType,
    build_query,
    build_response,
    parse_query,
    parse_response,
)

QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080


def header(
    *, ident: int = 0x1234, flags: int = RD, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0
) -> bytes:
    return struct.pack("!HHHHHH", ident, flags, qd, an, ns, ar)


def wire_name(*labels: bytes) -> bytes:
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def question(*labels: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return wire_name(*labels) + struct.pack("!HH", qtype, qclass)


# An EDNS OPT pseudo-record, as c-ares appends to its queries.
OPT = b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


# --- parse_query ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            header() + question(b"www", b"example", b"com"),
            Query(0x1234, 0, True, "www.example.com", 1, 1, question(b"www", b"example", b"com")),
            id="plain A",
        ),
        pytest.param(
            header(ident=7, flags=0) + question(b"WwW", b"Example", b"COM", qtype=28),
            Query(
                7,
                0,
                False,
                "www.example.com",
                28,
                1,
                question(b"WwW", b"Example", b"COM", qtype=28),
            ),
            id="mixed case kept in question, lowercased in qname, RD off",
        ),
        pytest.param(
            header(ar=1) + question(b"a", b"test") + OPT,
            Query(0x1234, 0, True, "a.test", 1, 1, question(b"a", b"test")),
            id="EDNS OPT record ignored",
        ),
        pytest.param(
            header() + question(),
            Query(0x1234, 0, True, "", 1, 1, question()),
            id="root",
        ),
        pytest.param(
            header() + question(b"a.b", b"c\\d", b"\x00 \xff", qtype=255, qclass=3),
            Query(
                0x1234,
                0,
                True,
                "a\\.b.c\\\\d.\\000\\032\\255",
                255,
                3,
                question(b"a.b", b"c\\d", b"\x00 \xff", qtype=255, qclass=3),
            ),
            id="escaped label bytes, ANY, class CH",
        ),
        pytest.param(
            header(flags=RD | (2 << 11)) + question(b"x"),
            Query(0x1234, 2, True, "x", 1, 1, question(b"x")),
            id="opcode kept for the server to refuse",
        ),
        pytest.param(
            header() + question(b"x", b"test") + b"trailing junk",
            Query(0x1234, 0, True, "x.test", 1, 1, question(b"x", b"test")),
            id="trailing bytes ignored",
        ),
    ],
)
def test_parse_query(data: bytes, expected: Query) -> None:
    assert parse_query(data) == expected


def test_parse_query_follows_a_pointer_into_the_header() -> None:
    # Odd but legal: bytes 10-11 (ARCOUNT 0) read as the root label.
    data = header() + b"\x01a\xc0\x0b" + struct.pack("!HH", 1, 1)
    query = parse_query(data)
    assert query.qname == "a"
    assert query.question == question(b"a")


LONG_NAME = header() + wire_name(*[b"a" * 63] * 4) + struct.pack("!HH", 1, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "shorter than a DNS header", id="empty"),
        pytest.param(header()[:11], "shorter than a DNS header", id="short header"),
        pytest.param(header(flags=QR | RD) + question(b"a"), "response", id="a response"),
        pytest.param(header(qd=0), "one question", id="no question"),
        pytest.param(header(qd=2) + question(b"a") * 2, "one question", id="two questions"),
        pytest.param(header(), "truncated name", id="question missing"),
        pytest.param(header() + b"\x05ab", "truncated label", id="truncated label"),
        pytest.param(header() + b"\x01a", "truncated name", id="no root label"),
        pytest.param(
            header() + wire_name(b"a") + b"\x00\x01\x00", "truncated question", id="truncated class"
        ),
        pytest.param(header() + b"\x41a\x00" + b"\x00" * 4, "label type", id="label type 0x40"),
        pytest.param(header() + b"\x81a\x00" + b"\x00" * 4, "label type", id="label type 0x80"),
        pytest.param(header() + b"\xc0", "truncated compression", id="half a pointer"),
        pytest.param(header() + b"\xc0\x0c" + b"\x00" * 4, "backwards", id="pointer to itself"),
        pytest.param(header() + b"\xc0\x20" + b"\x00" * 40, "backwards", id="forward pointer"),
        pytest.param(
            header() + b"\x01a\xc0\x0c" + b"\x00" * 4,
            "backwards",
            id="pointer loop through a label",
        ),
        pytest.param(LONG_NAME, "longer than 255", id="name over 255 bytes"),
    ],
)
def test_parse_query_rejects(data: bytes, message: str) -> None:
    with pytest.raises(DnsWireError, match=message):
        parse_query(data)


def test_dns_wire_error_is_a_value_error() -> None:
    assert issubclass(DnsWireError, ValueError)


@given(st.binary(max_size=600))
def test_parse_query_fuzz_raises_only_dns_wire_error(data: bytes) -> None:
    with contextlib.suppress(DnsWireError):
        parse_query(data)


@given(
    st.integers(0, 0xFFFF),
    st.binary(max_size=300),
)
def test_parse_query_fuzz_behind_a_valid_header(flags: int, rest: bytes) -> None:
    # A plausible header gets random bytes past the first checks, into name parsing.
    data = header(flags=flags & ~QR) + rest
    try:
        query = parse_query(data)
    except DnsWireError:
        return
    assert parse_query(header(flags=flags & ~QR) + query.question).qname == query.qname


# --- build_query and names -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("example.com", (b"example", b"com")),
        ("Example.COM.", (b"Example", b"COM")),
        ("", ()),
        (".", ()),
        ("a\\.b.c", (b"a.b", b"c")),
        ("\\000\\255x", (b"\x00\xffx",)),
        ("a\\\\.", (b"a\\",)),
        ("*.example.com", (b"*", b"example", b"com")),
    ],
)
def test_build_query_encodes_names(text: str, labels: tuple[bytes, ...]) -> None:
    data = build_query(text, 28, ident=99)
    assert data == header(ident=99) + question(*labels, qtype=28)


@pytest.mark.parametrize(
    "text",
    ["a..b", ".a", "a" * 64, "x\\", "x\\256", "caf\u00e9.test", ".".join(["a" * 63] * 4)],
)
def test_build_query_rejects_bad_names(text: str) -> None:
    with pytest.raises(DnsWireError):
        build_query(text, 1)


labels_strategy = st.lists(st.binary(min_size=1, max_size=63), max_size=4)


@given(labels_strategy, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.booleans())
def test_query_round_trip(labels: list[bytes], ident: int, qtype: int, rd: bool) -> None:
    wire = header(ident=ident, flags=RD if rd else 0) + question(*labels, qtype=qtype)
    query = parse_query(wire)
    assert (query.id, query.qtype, query.recursion_desired) == (ident, qtype, rd)
    # The text form encodes back to the same name, up to letter case.
    rebuilt = build_query(query.qname, qtype, ident=ident, recursion_desired=rd)
    assert rebuilt == header(ident=ident, flags=RD if rd else 0) + question(
        *(label.lower() for label in labels), qtype=qtype
    )


# --- build_response ------------------------------------------------------------------


def query_for(name: str = "www.example.com", qtype: int = 1, rd: bool = True) -> Query:
    return parse_query(build_query(name, qtype, ident=0xBEEF, recursion_desired=rd))


@pytest.mark.parametrize(
    ("qtype", "answer", "records"),
    [
        pytest.param(
            1,
            Answer(Rcode.NOERROR, addresses=("192.0.2.1", "192.0.2.2")),
            [
                Record("www.example.com", 1, 1, 60, "192.0.2.1"),
                Record("www.example.com", 1, 1, 60, "192.0.2.2"),
            ],
            id="A",
        ),
        pytest.param(
            28,
            Answer(Rcode.NOERROR, addresses=("2001:db8::1",), ttl=5),
            [Record("www.example.com", 28, 1, 5, "2001:db8::1")],
            id="AAAA",
        ),
        pytest.param(
            1,
            Answer(
                Rcode.NOERROR,
                cnames=("edge.example.net", "a.cdn.example.org"),
                addresses=("198.51.100.7",),
            ),
            [
                Record("www.example.com", 5, 1, 60, "edge.example.net"),
                Record("edge.example.net", 5, 1, 60, "a.cdn.example.org"),
                Record("a.cdn.example.org", 1, 1, 60, "198.51.100.7"),
            ],
            id="CNAME chain then A",
        ),
        pytest.param(
            1,
            Answer(Rcode.NOERROR, cnames=("other.example.com",)),
            [Record("www.example.com", 5, 1, 60, "other.example.com")],
            id="CNAME to nodata",
        ),
        pytest.param(1, Answer(Rcode.NOERROR), [], id="nodata"),
        pytest.param(
            1,
            Answer(Rcode.NXDOMAIN, cnames=("gone.example.com",)),
            [Record("www.example.com", 5, 1, 60, "gone.example.com")],
            id="CNAME to NXDOMAIN",
        ),
        pytest.param(1, Answer(Rcode.SERVFAIL), [], id="SERVFAIL"),
        pytest.param(1, Answer(Rcode.REFUSED), [], id="REFUSED"),
    ],
)
def test_build_response_round_trip(qtype: int, answer: Answer, records: list[Record]) -> None:
    query = query_for(qtype=qtype)
    response = parse_response(build_response(query, answer))
    assert response.id == 0xBEEF
    assert response.rcode == answer.rcode
    assert (response.qname, response.qtype, response.qclass) == ("www.example.com", qtype, 1)
    assert list(response.answers) == records
    assert response.authoritative is (answer.rcode in (Rcode.NOERROR, Rcode.NXDOMAIN))
    assert response.recursion_available
    assert response.recursion_desired
    assert not response.truncated


def test_build_response_flags_and_echo() -> None:
    query = parse_query(build_query("WwW.ExAmPlE.cOm", 1, ident=5, recursion_desired=False))
    data = build_response(query, Answer(Rcode.NOERROR, addresses=("192.0.2.1",)))
    ident, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    assert (ident, qd, an, ns, ar) == (5, 1, 1, 0, 0)
    assert flags == QR | AA | RA  # opcode 0, RD not copied since not set, rcode 0
    # The question is echoed byte for byte, letter case included.
    assert data[12 : 12 + len(query.question)] == query.question


def test_build_response_compresses_against_the_question() -> None:
    query = query_for("www.example.com")
    answer = Answer(Rcode.NOERROR, cnames=("cdn.example.com",), addresses=("192.0.2.1",))
    data = build_response(query, answer)
    start = 12 + len(query.question)
    assert data[start : start + 2] == b"\xc0\x0c"  # first owner: pointer to the question
    # The CNAME target shares "example.com" with the question; its owner in the A
    # record then points at the target.
    assert b"\x03cdn\xc0\x10" in data
    assert parse_response(data).answers[1].name == "cdn.example.com"
    uncompressed = 12 + len(query.question) + (17 + 10 + 17) + (17 + 10 + 4)
    assert len(data) < uncompressed


def test_build_response_truncates_past_max_size() -> None:
    query = query_for()
    addresses = tuple(f"10.0.0.{i}" for i in range(40))
    full = build_response(query, Answer(Rcode.NOERROR, addresses=addresses))
    assert len(full) > 512
    assert parse_response(full).answers[-1].data == "10.0.0.39"
    cut = build_response(query, Answer(Rcode.NOERROR, addresses=addresses), max_size=512)
    assert cut == struct.pack("!HHHHHH", 0xBEEF, QR | AA | RD | RA | TC, 1, 0, 0, 0) + (
        query.question
    )
    small = build_response(query, Answer(Rcode.NOERROR, addresses=addresses[:2]), max_size=512)
    assert not parse_response(small).truncated


@pytest.mark.parametrize(
    "answer",
    [
        Answer(Rcode.NOERROR, addresses=("not-an-ip",)),
        Answer(Rcode.NOERROR, cnames=("bad..name",)),
        Answer(16),
        Answer(Rcode.NOERROR, ttl=-1),
    ],
)
def test_build_response_rejects_bad_answers(answer: Answer) -> None:
    with pytest.raises(DnsWireError):
        build_response(query_for(), answer)


def test_address_family_picks_the_record_type() -> None:
    answer = Answer(Rcode.NOERROR, addresses=("192.0.2.1", "2001:db8::2"))
    records = parse_response(build_response(query_for(qtype=RRType.ANY), answer)).answers
    assert [(r.rtype, r.data) for r in records] == [(1, "192.0.2.1"), (28, "2001:db8::2")]


names = st.lists(st.from_regex(r"[a-z0-9-]{1,20}", fullmatch=True), min_size=1, max_size=4).map(
    ".".join
)


@given(
    qname=names,
    cnames=st.lists(names, max_size=8),
    addresses=st.lists(st.ip_addresses().map(str), max_size=10),
    rcode=st.sampled_from(list(Rcode)),
    ttl=st.integers(0, 0x7FFFFFFF),
)
def test_response_round_trip(
    qname: str, cnames: list[str], addresses: list[str], rcode: Rcode, ttl: int
) -> None:
    query = query_for(qname, qtype=RRType.ANY)
    answer = Answer(rcode, tuple(cnames), tuple(addresses), ttl)
    response = parse_response(build_response(query, answer))
    owners = [qname, *cnames]
    assert [(r.name, r.rtype, r.data) for r in response.answers[: len(cnames)]] == [
        (owner, RRType.CNAME, target) for owner, target in zip(owners, cnames, strict=False)
    ]
    tail = response.answers[len(cnames) :]
    assert [r.data for r in tail] == [str(ipaddress.ip_address(a)) for a in addresses]
    assert all(r.name == owners[-1] and r.ttl == ttl for r in tail)
    assert response.rcode == rcode


@given(st.binary(max_size=600))
def test_parse_response_fuzz_raises_only_dns_wire_error(data: bytes) -> None:
    with contextlib.suppress(DnsWireError):
        parse_response(data)
