"""The HTTP/1.x head parser: framing, parsing, limits, Proxy-Authenticate, arbitrary bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import ProtocolError
from scanner.httphead import (
    MAX_HEAD,
    MAX_HEADERS,
    RequestHead,
    ResponseHead,
    auth_schemes,
    find_head_end,
    parse_request_head,
    parse_response_head,
)

CRLF_HEAD = (b"HTTP/1.1 200 Connection established\r\n"
             b"Via: 1.1 squid\r\n"
             b"X-Cache: MISS from proxy\r\n\r\n")
CRLF_PARSED = ResponseHead("1.1", 200, "Connection established",
                           (("via", "1.1 squid"), ("x-cache", "MISS from proxy")))
LF_HEAD = (b"HTTP/1.0 407 Proxy Authentication Required\n"
           b'Proxy-Authenticate: Basic realm="proxy"\n\n')
LF_PARSED = ResponseHead("1.0", 407, "Proxy Authentication Required",
                         (("proxy-authenticate", 'Basic realm="proxy"'),))
MIXED_HEAD = b"HTTP/1.1 403 Forbidden\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\n\r\n"
MIXED_PARSED = ResponseHead("1.1", 403, "Forbidden", (("x-squid-error", "ERR_ACCESS_DENIED 0"),))
# what a server that speaks first sends through a fresh tunnel: it holds a blank line of its own
TUNNEL = b"SSH-2.0-OpenSSH_9.6\r\n\r\nHTTP/1.1 500 x\r\n\r\n"

HEADS = [(CRLF_HEAD, CRLF_PARSED), (LF_HEAD, LF_PARSED), (MIXED_HEAD, MIXED_PARSED)]
HEAD_IDS = ["crlf", "bare-lf", "mixed"]


def test_complete_head() -> None:
    assert find_head_end(CRLF_HEAD) == len(CRLF_HEAD)
    assert parse_response_head(CRLF_HEAD) == CRLF_PARSED


def test_status_line_without_reason() -> None:
    assert parse_response_head(b"HTTP/1.1 200\r\n\r\n") == ResponseHead("1.1", 200, "", ())
    assert parse_response_head(b"HTTP/1.1 200 \r\n\r\n") == ResponseHead("1.1", 200, "", ())


def test_head_parse_tolerates_missing_blank_line() -> None:
    assert parse_response_head(b"HTTP/1.1 204 No Content") == ResponseHead("1.1", 204, "No Content", ())


def test_bare_lf_head() -> None:
    assert find_head_end(LF_HEAD) == len(LF_HEAD)
    assert parse_response_head(LF_HEAD) == LF_PARSED


@pytest.mark.parametrize(("head", "parsed"), HEADS, ids=HEAD_IDS)
def test_head_fed_one_byte_at_a_time(head: bytes, parsed: ResponseHead) -> None:
    data = head + TUNNEL
    buffer = bytearray()
    ends: list[int | None] = []
    for byte in data:
        buffer.append(byte)
        ends.append(find_head_end(buffer))
    # None until the head's last byte; from then on always the same index
    assert ends == [None] * (len(head) - 1) + [len(head)] * (len(TUNNEL) + 1)
    assert bytes(buffer[: len(head)]) == head
    assert parse_response_head(bytes(buffer[: len(head)])) == parsed


@pytest.mark.parametrize(("head", "parsed"), HEADS, ids=HEAD_IDS)
def test_head_split_anywhere_into_two_segments(head: bytes, parsed: ResponseHead) -> None:
    data = head + TUNNEL
    for cut in range(len(data) + 1):
        buffer = bytearray()
        end = None
        for segment in (data[:cut], data[cut:]):
            buffer += segment
            end = find_head_end(buffer)
            if end is not None:
                break
        assert end == len(head), cut
        assert parse_response_head(bytes(buffer[:end])) == parsed, cut
        assert bytes(buffer[end:]) == data[len(head):len(buffer)], cut


def test_tunnel_bytes_after_a_bare_lf_head_are_not_part_of_it() -> None:
    # the earliest blank line ends the head, even if a CRLF CRLF follows in the tunnel bytes
    data = LF_HEAD + TUNNEL
    assert find_head_end(data) == len(LF_HEAD)


def test_incomplete_head_returns_none() -> None:
    assert find_head_end(b"") is None
    assert find_head_end(b"HTTP/1.1 200 OK\r\n") is None
    assert find_head_end(b"HTTP/1.1 200 OK\r\nVia: x\r\n\r") is None
    assert find_head_end(bytearray(b"HTTP/1.1 200 OK\r\n\r\n")) == 19


def test_oversized_head_without_end() -> None:
    assert find_head_end(b"x" * 100, limit=100) is None
    with pytest.raises(ProtocolError) as info:
        find_head_end(b"x" * 101, limit=100)
    assert info.value.message == "response head larger than 100 bytes"
    with pytest.raises(ProtocolError) as info:
        find_head_end(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * MAX_HEAD)
    assert info.value.message == f"response head larger than {MAX_HEAD} bytes"


@pytest.mark.parametrize("blank", [b"\r\n\r\n", b"\n\n"], ids=["crlf", "bare-lf"])
def test_head_ending_after_the_limit(blank: bytes) -> None:
    head = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 60 + blank
    assert find_head_end(head, limit=len(head)) == len(head)
    with pytest.raises(ProtocolError) as info:
        find_head_end(head, limit=len(head) - 1)
    assert info.value.message == f"response head larger than {len(head) - 1} bytes"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 abc\r\n\r\n", "not an HTTP status line: b'HTTP/1.1 abc'"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "not an HTTP status line: b'SSH-2.0-OpenSSH_9.6'"),
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n",
         "not an HTTP status line: b'\\x16\\x03\\x01\\x00\\xa5\\x01\\x00\\x00\\xa1\\x03\\x03'"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP status line: b'HTTP/1.1 2000 OK'"),
        (b"HTTP/1.1  200 OK\r\n\r\n", "not an HTTP status line: b'HTTP/1.1  200 OK'"),
        (b"HTTP/11 200 OK\r\n\r\n", "not an HTTP status line: b'HTTP/11 200 OK'"),
        (b"http/1.1 200 OK\r\n\r\n", "not an HTTP status line: b'http/1.1 200 OK'"),
        (b" HTTP/1.1 200 OK\r\n\r\n", "not an HTTP status line: b' HTTP/1.1 200 OK'"),
        (b"HTTP/1.1 200OK\r\n\r\n", "not an HTTP status line: b'HTTP/1.1 200OK'"),
        (b"HTTP/1.1 " + b"x" * 100 + b"\r\n\r\n",
         "not an HTTP status line: b'HTTP/1.1 " + "x" * 51 + "'"),
        (b"", "empty response"),
        (b"\r\n\r\n", "empty response"),
        (b"\n\n\n", "empty response"),
    ],
)
def test_garbage_status_lines(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_response_head(data)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"NoColon", "malformed header line b'NoColon'"),
        (b"Bad Name: x", "malformed header line b'Bad Name: x'"),
        (b": no name", "malformed header line b': no name'"),
        (b"Bad\x00Name: x", "malformed header line b'Bad\\x00Name: x'"),
        (b"Caf\xe9: x", "malformed header line b'Caf\\xe9: x'"),
        (b" folded", "obsolete line folding in header"),
        (b"\tfolded", "obsolete line folding in header"),
    ],
)
def test_malformed_header_lines(line: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_response_head(b"HTTP/1.1 200 OK\r\nVia: x\r\n" + line + b"\r\n\r\n")
    assert info.value.message == message


def test_blank_line_inside_the_head_is_malformed() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_response_head(b"HTTP/1.1 200 OK\r\n\r\nVia: x\r\n\r\n")
    assert info.value.message == "malformed header line b''"


def test_header_values_trimmed_and_latin1() -> None:
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nX-A: \t caf\xe9 \t\r\nX-Empty:\r\nX-Colon: a:b\r\n\r\n")
    assert head.headers == (("x-a", "caf\u00e9"), ("x-empty", ""), ("x-colon", "a:b"))


def test_too_many_headers() -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS))
    assert len(parse_response_head(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n").headers) == MAX_HEADERS
    with pytest.raises(ProtocolError) as info:
        parse_response_head(b"HTTP/1.1 200 OK\r\n" + fields + b"X-One: more\r\n\r\n")
    assert info.value.message == "more than 100 header fields"


def test_header_lookup_is_case_insensitive() -> None:
    head = parse_response_head(b"HTTP/1.1 407 Auth\r\nProxy-Authenticate: NTLM\r\n"
                               b"proxy-authenticate: Negotiate\r\nVIA: 1.1 a\r\n\r\n")
    assert head.get("Via") == "1.1 a"
    assert head.get("VIA") == "1.1 a"
    assert head.get("PROXY-AUTHENTICATE") == "NTLM"
    assert head.get_all("Proxy-Authenticate") == ["NTLM", "Negotiate"]
    assert head.get("x-missing") is None
    assert head.get_all("x-missing") == []


def challenge(*values: str) -> ResponseHead:
    lines = b"".join(b"Proxy-Authenticate: " + v.encode("latin-1") + b"\r\n" for v in values)
    return parse_response_head(b"HTTP/1.1 407 Proxy Authentication Required\r\n" + lines + b"\r\n")


@pytest.mark.parametrize(
    ("values", "schemes"),
    [
        ((), ()),
        (('Basic realm="a, b"',), ("Basic",)),
        (('Basic realm="a, b", charset="UTF-8"',), ("Basic",)),
        (("NTLM",), ("NTLM",)),
        (("Negotiate",), ("Negotiate",)),
        (("Negotiate", "NTLM", 'Basic realm="squid proxy"'), ("Negotiate", "NTLM", "Basic")),
        (("Negotiate, NTLM",), ("Negotiate", "NTLM")),
        (("NTLM", "NTLM"), ("NTLM",)),
        (('Digest realm="x", qop="auth,auth-int", nonce="abc", algorithm=MD5, Basic realm="y"',),
         ("Digest", "Basic")),
        (('Basic realm="quote \\" and, comma", NTLM',), ("Basic", "NTLM")),
        (("Negotiate YIIFzQYGKwYBBQUCoIIFwTCCBb2gMDAu==",), ("Negotiate",)),
        ((", ,",), ()),
    ],
)
def test_auth_schemes(values: tuple[str, ...], schemes: tuple[str, ...]) -> None:
    assert auth_schemes(challenge(*values)) == schemes


def test_parse_request_head_connect() -> None:
    head = parse_request_head(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"
                              b"Proxy-Authorization: Basic c3ZjOnB3\r\n\r\n")
    assert head == RequestHead("CONNECT", "example.com:443", "1.1",
                               (("host", "example.com:443"), ("proxy-authorization", "Basic c3ZjOnB3")))
    assert head.get("HOST") == "example.com:443"
    assert head.get("user-agent") is None


def test_parse_request_head_ipv6_target_and_bare_lf() -> None:
    head = parse_request_head(b"CONNECT [::1]:8443 HTTP/1.0\n\n")
    assert head == RequestHead("CONNECT", "[::1]:8443", "1.0", ())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty request"),
        (b"\r\n\r\n", "empty request"),
        (b"connect example.com:443 HTTP/1.1\r\n\r\n",
         "not an HTTP request line: b'connect example.com:443 HTTP/1.1'"),
        (b"CONNECT example.com:443\r\n\r\n", "not an HTTP request line: b'CONNECT example.com:443'"),
        (b"CONNECT  example.com:443 HTTP/1.1\r\n\r\n",
         "not an HTTP request line: b'CONNECT  example.com:443 HTTP/1.1'"),
        (b"CONNECT a b HTTP/1.1\r\n\r\n", "not an HTTP request line: b'CONNECT a b HTTP/1.1'"),
        (b"CONNECT a:1 HTTP/1.1\r\nNoColon\r\n\r\n", "malformed header line b'NoColon'"),
    ],
)
def test_parse_request_head_errors(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request_head(data)
    assert info.value.message == message


# --- properties --------------------------------------------------------------------------------

HEADISH = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda rest: b"HTTP/1.1 200 OK\r\n" + rest, st.binary(max_size=300)),
    st.builds(
        lambda lines: b"HTTP/1.1 407 x\r\n" + b"\r\n".join(lines) + b"\r\n\r\n",
        st.lists(st.binary(max_size=40), max_size=8),
    ),
)


@given(HEADISH)
def test_parse_response_head_raises_only_protocol_error(data: bytes) -> None:
    try:
        head = parse_response_head(data)
    except ProtocolError:
        return
    assert 100 <= head.status <= 999
    assert all(name == name.lower() for name, _ in head.headers)
    auth_schemes(head)  # must not raise either


@given(HEADISH)
def test_parse_request_head_raises_only_protocol_error(data: bytes) -> None:
    try:
        parse_request_head(data)
    except ProtocolError:
        pass


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=400))
def test_find_head_end_is_bounded_and_consistent(data: bytes, limit: int) -> None:
    try:
        end = find_head_end(data, limit)
    except ProtocolError:
        return
    if end is None:
        assert len(data) <= limit
        assert b"\n\n" not in data
        assert b"\n\r\n" not in data
    else:
        assert end <= limit
        assert data[:end].endswith((b"\n\n", b"\n\r\n"))
        # no earlier blank line: the head ends at the first one
        assert find_head_end(data[: end - 1], limit) is None


@given(
    st.lists(
        st.tuples(
            st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12),
            st.text("abc xyz,=\"", max_size=20),
        ),
        max_size=10,
    ),
    st.binary(max_size=40),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_built_heads_round_trip(fields: list[tuple[str, str]], tunnel: bytes, eol: bytes) -> None:
    head = b"HTTP/1.1 407 Denied" + eol
    head += b"".join(f"{n}: {v}".encode() + eol for n, v in fields) + eol
    assert find_head_end(head + tunnel) == len(head)
    parsed = parse_response_head(head)
    assert parsed.status == 407
    assert parsed.headers == tuple((n, v.strip(" ")) for n, v in fields)
