"""The static WinHTTP setting: netsh text, registry values, proxy strings and bypass lists."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.discovery.decision import DIRECT_ENTRY, EntryKind, ProxyEntry
from scanner.discovery.registry import build_blob, load_settings, parse_blob, parse_reg_text
from scanner.discovery.winhttp import (
    WinHttpError,
    WinHttpSettings,
    bypass_match,
    decide,
    parse_netsh,
    parse_proxy_string,
    split_bypass,
)
from scanner.models import RouteKind, RouteSource

NETSH_DIRECT = """
Current WinHTTP proxy settings:

    Direct access (no proxy server).

"""
NETSH_PROXY = """
Current WinHTTP proxy settings:

    Proxy Server(s) :  proxy.contoso.com:8080
    Bypass List     :  <local>;*.contoso.com;10.0.0.1

"""
NETSH_SCHEMES = ("Current WinHTTP proxy settings:\r\n\r\n"
                 "    Proxy Server(s) :  http=proxy1:80;https=proxy2:88\r\n"
                 "    Bypass List     :  (none)\r\n")
NETSH_SPACES = "  Proxy Server(s)   :    proxy:3128   \n Bypass List :   a.example  b.example ;c.example  \n"


def px(host: str, port: int) -> ProxyEntry:
    return ProxyEntry(EntryKind.PROXY, host, port)


@pytest.mark.parametrize(
    ("text", "proxy", "bypass"),
    [
        (NETSH_DIRECT, None, ()),
        (NETSH_DIRECT.replace("\n", "\r\n"), None, ()),
        (NETSH_PROXY, "proxy.contoso.com:8080", ("<local>", "*.contoso.com", "10.0.0.1")),
        (NETSH_PROXY.replace("\n", "\r\n"), "proxy.contoso.com:8080",
         ("<local>", "*.contoso.com", "10.0.0.1")),
        (NETSH_SCHEMES, "http=proxy1:80;https=proxy2:88", ()),
        (NETSH_SPACES, "proxy:3128", ("a.example", "b.example", "c.example")),
        ("Proxy Server(s) : p:1\n", "p:1", ()),
        ("proxy server(s) : p:1\nbypass list : (NONE)\n", "p:1", ()),
    ],
)
def test_parse_netsh(text: str, proxy: str | None, bypass: tuple[str, ...]) -> None:
    settings = parse_netsh(text, "dump")
    assert settings == WinHttpSettings(proxy, bypass, "dump")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not the output of `netsh winhttp show proxy`"),
        ("Aktuelle WinHTTP-Proxyeinstellungen:\n  Direkter Zugriff (kein Proxyserver).",
         "only English output is understood"),
        ("Proxy Server(s) :   \n", "names no proxy"),
        ("Proxy Server(s) : b*d:80\n", "dump: proxy 'b*d:80': invalid label"),
        ("Proxy Server(s) : a:1 b:2\n", "dump: two proxies for every scheme"),
        ("Proxy Server(s) : p:99999\n", "'99999' is not a port number"),
        ("Proxy Server(s) : =p:80\n", "has '=' but no scheme"),
        ("Direct access (no proxy server).\nProxy Server(s) : p:1\n", "says both"),
    ],
)
def test_parse_netsh_errors(text: str, message: str) -> None:
    with pytest.raises(WinHttpError) as info:
        parse_netsh(text, "dump")
    assert message in info.value.message
    assert info.value.exit_status == 2


def test_bad_host_in_proxy_string_names_it() -> None:
    with pytest.raises(WinHttpError, match=r"proxy 'p_\*:80'"):
        parse_proxy_string("p_*:80", "dump")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("proxy:3128", {"": px("proxy", 3128)}),
        ("proxy", {"": px("proxy", 80)}),
        ("PROXY.Example:8080", {"": px("proxy.example", 8080)}),
        ("http=proxy1:80;https=proxy2:88", {"http": px("proxy1", 80), "https": px("proxy2", 88)}),
        ("http=proxy1:80 https=proxy2:88", {"http": px("proxy1", 80), "https": px("proxy2", 88)}),
        ("https=proxy2:88;fallback:3128", {"https": px("proxy2", 88), "": px("fallback", 3128)}),
        ("http://proxy:8080", {"": px("proxy", 8080)}),
        ("https=http://proxy:8080", {"https": px("proxy", 8080)}),
        ("[2001:db8::1]:8080", {"": px("2001:db8::1", 8080)}),
        ("10.1.2.3:3128", {"": px("10.1.2.3", 3128)}),
    ],
)
def test_parse_proxy_string(text: str, expected: dict[str, ProxyEntry]) -> None:
    assert parse_proxy_string(text) == expected


def test_two_proxies_for_one_scheme_is_an_error() -> None:
    with pytest.raises(WinHttpError, match="two proxies for https"):
        parse_proxy_string("https=a:1;https=b:2")


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("(none)", ()),
        (" (None) ", ()),
        ("", ()),
        ("<local>", ("<local>",)),
        ("a;b c\t d;;", ("a", "b", "c", "d")),
    ],
)
def test_split_bypass(text: str, entries: tuple[str, ...]) -> None:
    assert split_bypass(text) == entries


@pytest.mark.parametrize(
    ("entries", "host", "matched"),
    [
        (("<local>",), "intranet", "<local>"),
        (("<local>",), "INTRANET", "<local>"),
        (("<local>",), "intranet.contoso.com", None),
        (("<local>",), "10.0.0.1", None),
        (("<local>",), "::1", None),
        (("*.contoso.com",), "www.contoso.com", "*.contoso.com"),
        (("*.contoso.com",), "a.b.contoso.com", "*.contoso.com"),
        (("*.contoso.com",), "WWW.Contoso.COM", "*.contoso.com"),
        (("*.contoso.com",), "contoso.com", None),
        (("*.contoso.com",), "notcontoso.com", None),
        (("*contoso.com",), "notcontoso.com", "*contoso.com"),
        (("*",), "anything.example", "*"),
        (("contoso.com",), "contoso.com", "contoso.com"),
        (("contoso.com",), "www.contoso.com", None),
        (("Contoso.COM",), "contoso.com.", "Contoso.COM"),
        (("www.*.com",), "www.contoso.com", None),
        (("10.*",), "10.1.2.3", None),
        (("10.0.0.1",), "10.0.0.1", "10.0.0.1"),
        (("10.0.0.1",), "10.0.0.10", None),
        (("2001:db8::1",), "2001:db8:0::1", "2001:db8::1"),
        (("[2001:db8::1]",), "2001:db8::1", "[2001:db8::1]"),
        (("http://www.contoso.com",), "www.contoso.com", "http://www.contoso.com"),
        (("a.example", "<local>", "*.contoso.com"), "x.contoso.com", "*.contoso.com"),
        ((), "anything", None),
    ],
)
def test_bypass_match(entries: tuple[str, ...], host: str, matched: str | None) -> None:
    assert bypass_match(entries, host) == matched


SETTINGS = parse_netsh(NETSH_PROXY, "netsh")


@pytest.mark.parametrize(
    ("settings", "url", "entry", "reason"),
    [
        (SETTINGS, "https://vortex-win.data.microsoft.com/", px("proxy.contoso.com", 8080),
         "netsh: proxy proxy.contoso.com:8080, no bypass entry matches"),
        (SETTINGS, "https://intranet/", DIRECT_ENTRY, "netsh: intranet matches bypass entry '<local>'"),
        (SETTINGS, "http://www.contoso.com/", DIRECT_ENTRY,
         "netsh: www.contoso.com matches bypass entry '*.contoso.com'"),
        (SETTINGS, "https://10.0.0.1:8443/", DIRECT_ENTRY, "netsh: 10.0.0.1 matches bypass entry '10.0.0.1'"),
        (parse_netsh(NETSH_SCHEMES, "netsh"), "http://crl.microsoft.com/", px("proxy1", 80),
         "netsh: http= proxy for http:// URLs"),
        (parse_netsh(NETSH_SCHEMES, "netsh"), "https://crl.microsoft.com/", px("proxy2", 88),
         "netsh: https= proxy for https:// URLs"),
        (parse_netsh("Proxy Server(s) : https=p2:88\n", "netsh"), "http://crl.microsoft.com/",
         DIRECT_ENTRY, "netsh: no proxy for http:// (only for https)"),
        (parse_netsh("Proxy Server(s) : https=p2:88;all:3128\n", "netsh"), "http://a.example/",
         px("all", 3128), "netsh: proxy all:3128"),
        (parse_netsh(NETSH_DIRECT, "netsh"), "https://a.example/", DIRECT_ENTRY,
         "netsh: direct access (no proxy server)"),
    ],
)
def test_decide(settings: WinHttpSettings, url: str, entry: ProxyEntry, reason: str) -> None:
    decision = decide(settings, url)
    assert decision.source is RouteSource.WINHTTP
    assert decision.entries == (entry,)
    assert decision.winhttp == entry
    assert decision.reason == reason
    route = decision.route()
    assert route.source is RouteSource.WINHTTP
    assert route.explanation == reason
    assert route.kind is (RouteKind.DIRECT if entry == DIRECT_ENTRY else RouteKind.HTTP)


# ------------------------------------------------------------------ registry

DIRECT_HEX = "1800000000000000010000000000000000000000"
REG_QUERY = (
    "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Internet Settings\\Connections"
    "\r\n    WinHttpSettings    REG_BINARY    {hex}\r\n\r\n"
)


def test_direct_value_from_the_reference() -> None:
    assert build_blob(None, version=0x18, counter=0).hex() == DIRECT_HEX
    settings = parse_blob(bytes.fromhex(DIRECT_HEX), "reg")
    assert settings == WinHttpSettings(None, (), "reg (version 0x18)")


@pytest.mark.parametrize("version", [0x18, 0x28])
def test_proxy_value_both_versions(version: int) -> None:
    blob = build_blob("http=p1:80;https=p2:88", "<local>;*.contoso.com", version=version, counter=7)
    settings = parse_blob(blob, "reg")
    assert settings == WinHttpSettings("http=p1:80;https=p2:88", ("<local>", "*.contoso.com"),
                                       f"reg (version 0x{version:x})")


def test_reg_query_text_and_bare_hex() -> None:
    blob = build_blob("proxy.contoso.com:8080", "<local>")
    for text in (REG_QUERY.format(hex=blob.hex().upper()), blob.hex(), " ".join(blob.hex()[i:i + 8]
                 for i in range(0, len(blob.hex()), 8))):
        assert parse_reg_text(text) == blob
        settings = load_settings(text, "file")
        assert settings.proxy == "proxy.contoso.com:8080"
        assert settings.bypass == ("<local>",)
        assert settings.origin == "file (registry value) (version 0x28)"


def test_load_settings_tells_netsh_from_registry() -> None:
    assert load_settings(NETSH_PROXY, "f").proxy == "proxy.contoso.com:8080"
    assert load_settings(REG_QUERY.format(hex=DIRECT_HEX), "f").proxy is None


def test_stored_proxy_without_the_manual_flag_is_direct() -> None:
    blob = bytearray(build_blob("p:80"))
    blob[8] = 0x1
    assert parse_blob(bytes(blob)).proxy is None


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "truncated: 0 bytes, ends inside the version (at byte 0)"),
        (bytes.fromhex(DIRECT_HEX)[:10], "truncated: 10 bytes, ends inside the flags (at byte 8)"),
        (bytes.fromhex(DIRECT_HEX)[:16], "ends inside the bypass length (at byte 16)"),
        (build_blob("proxy:80")[:20], "the proxy string claims 8 bytes at byte 16, only 4 remain"),
        (build_blob("proxy:80", "<local>")[:-1], "the bypass list claims 7 bytes"),
        (bytes.fromhex("19" + DIRECT_HEX[2:]), "version 0x19 (known: 0x18, 0x28)"),
        (bytes.fromhex(DIRECT_HEX[:16] + "00" + DIRECT_HEX[18:]), "flags 0x0 lack bit 0x1"),
        (build_blob("proxy:80").replace(b"proxy", b"pr\xe9xy"), "the proxy string is not ASCII"),
        (bytes.fromhex("180000000000000003000000" + "00000000" * 2), "manual proxy flag set but no proxy"),
        (build_blob("b*d:80"), "proxy 'b*d:80'"),
        (b"\xff" * 4 + b"\x00" * 16, "version 0xffffffff"),
        (bytes.fromhex("180000000000000003000000ffffffff"), "claims 4294967295 bytes"),
    ],
)
def test_corrupt_blobs_are_clear_errors(blob: bytes, message: str) -> None:
    with pytest.raises(WinHttpError) as info:
        parse_blob(blob)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("WinHttpSettings    REG_BINARY    ", "no WinHttpSettings REG_BINARY data"),
        ("180", "hex digits in pairs"),
        ("zz", "not the output of `netsh"),
    ],
)
def test_bad_reg_text(text: str, message: str) -> None:
    with pytest.raises(WinHttpError) as info:
        load_settings(text, "f")
    assert message in info.value.message


@given(st.binary(max_size=80))
def test_any_blob_parses_or_raises_winhttp_error(blob: bytes) -> None:
    try:
        parse_blob(blob)
    except WinHttpError:
        pass


@given(st.text(max_size=200))
def test_any_text_parses_or_raises_winhttp_error(text: str) -> None:
    try:
        load_settings(text, "f")
    except WinHttpError:
        pass
