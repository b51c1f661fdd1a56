"""The bulk stub's DNS codec, checked against the lab's full wire-format implementation."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.lab.dnswire import Answer, Rcode, build_response, parse_query
from scanner.stubdns import QTYPE_A, QTYPE_AAAA, StubWireError, decode_answer, encode_query

labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20)
names = st.lists(labels, min_size=1, max_size=5).map(".".join)
v4 = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
v6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


@given(st.integers(0, 0xFFFF), names, st.sampled_from([QTYPE_A, QTYPE_AAAA]))
def test_queries_parse_as_the_lab_server_reads_them(ident: int, name: str, qtype: int) -> None:
    query = parse_query(encode_query(ident, name, qtype))
    assert (query.id, query.qname, query.qtype, query.recursion_desired) == (ident, name, qtype, True)


@given(st.integers(0, 0xFFFF), names, st.lists(names, max_size=3), st.lists(v4 | v6, max_size=6),
       st.sampled_from([Rcode.NOERROR, Rcode.NXDOMAIN, Rcode.SERVFAIL]))
def test_answers_decode_to_the_addresses_sent(ident: int, name: str, cnames: list[str],
                                              addresses: list[str], rcode: Rcode) -> None:
    query = parse_query(encode_query(ident, name, QTYPE_A))
    sent = tuple(addresses) if rcode is Rcode.NOERROR else ()
    answer = decode_answer(build_response(query, Answer(rcode, tuple(cnames), sent)))
    assert (answer.ident, answer.rcode, answer.qname, answer.qtype) == (ident, rcode, name, QTYPE_A)
    assert answer.addresses == sent
    assert not answer.truncated


def test_truncated_answers_say_so() -> None:
    query = parse_query(encode_query(9, "big.example", QTYPE_A))
    many = tuple(f"10.0.{i // 256}.{i % 256}" for i in range(100))
    answer = decode_answer(build_response(query, Answer(Rcode.NOERROR, (), many), max_size=512))
    assert answer.truncated and answer.addresses == ()


@pytest.mark.parametrize("data", [b"", b"\x00" * 11, encode_query(1, "a.b", QTYPE_A),
                                  b"\x00\x01\x80\x00\x00\x01\x00\x01\x00\x00\x00\x00\x01a"])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(StubWireError):
        decode_answer(data)


@given(st.binary(max_size=80))
def test_random_bytes_never_crash(data: bytes) -> None:
    try:
        decode_answer(b"\x00\x01\x81\x80\x00\x01" + data)
    except StubWireError:
        pass
