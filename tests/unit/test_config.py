"""The --config file: parsing, validation errors that name the key, and the overlay onto the flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.cli import build_parser, given_dests, with_config
from scanner.config import Config, ConfigError, overlay, parse_config, parse_size, settings
from scanner.routes import parse_proxy_url

SECRET = "p@ss:w/rd Ünïcode"
ENV = {"PROXY_PASSWORD": SECRET, "EMPTY": ""}
PATH = "/etc/scanner/check.toml"

FULL = b"""
catalogs = ["defender-atp", "./extra.toml", "/abs/other.toml"]
endpoints = ["intranet.example:443", "10.0.0.1:80,443"]
timeout = 2
concurrency = 64

[dns]
servers = ["127.0.0.1:5353", "::1"]

[routes]
direct = true
proxies = [
    "socks5h://127.0.0.1:1080",
    { url = "http://proxy.corp:3128", username = "svc", password_env = "PROXY_PASSWORD" },
]

[proxy_sources]
winhttp = "netsh.txt"
pac = "http://wpad.corp/proxy.pac"
wpad = true
dns_suffixes = ["corp.example"]

[checks]
verify = true
middlebox = false
ca_file = "roots.pem"
public_roots = "/etc/ssl/public.pem"

[output]
format = "console"
file = "/var/log/scanner/check.jsonl"
append = true
max_bytes = "10M"
keep = 3
junit = "report.xml"
prometheus = "/var/lib/node_exporter/scanner.prom"
baseline = "last.jsonl"
progress = false
"""


def parse(text: str, environ: dict[str, str] | None = None) -> Config:
    return parse_config(text.encode(), PATH, ENV if environ is None else environ)


def test_every_key_is_read() -> None:
    config = parse_config(FULL, PATH, ENV)
    assert config == Config(
        path=PATH,
        catalogs=("defender-atp", "/etc/scanner/./extra.toml", "/abs/other.toml"),
        endpoints=("intranet.example:443", "10.0.0.1:80,443"),
        timeout=2.0,
        concurrency=64,
        dns_servers=("127.0.0.1:5353", "::1"),
        direct=True,
        proxies=("socks5h://127.0.0.1:1080",
                 "http://svc:p%40ss%3Aw%2Frd%20%C3%9Cn%C3%AFcode@proxy.corp:3128"),
        winhttp="/etc/scanner/netsh.txt",
        pac="http://wpad.corp/proxy.pac",
        wpad=True,
        dns_suffixes=("corp.example",),
        verify=True,
        middlebox=False,
        ca_file="/etc/scanner/roots.pem",
        public_roots="/etc/ssl/public.pem",
        format="console",
        output="/var/log/scanner/check.jsonl",
        output_append=True,
        output_max_bytes=10 * 1024 * 1024,
        output_keep=3,
        junit="/etc/scanner/report.xml",
        prometheus="/var/lib/node_exporter/scanner.prom",
        baseline="/etc/scanner/last.jsonl",
        progress=False,
    )
    # the password from the environment reaches the route intact, and is not in the repr
    route = parse_proxy_url(config.proxies[1] if config.proxies else "")
    assert (route.username, route.password, route.host, route.port) == ("svc", SECRET, "proxy.corp", 3128)
    assert SECRET not in repr(config) and "p%40ss" not in repr(config)


def test_an_empty_file_sets_nothing() -> None:
    assert parse("") == Config(PATH)
    assert settings(Config(PATH)) == {}


def test_array_of_tables_for_proxies_and_user_in_url() -> None:
    config = parse('[[routes.proxies]]\nurl = "http://svc@127.0.0.1:3128"\npassword_env = "PROXY_PASSWORD"\n'
                   '[[routes.proxies]]\nurl = "socks5://127.0.0.1:1080"\nusername = "bob"\n')
    assert config.proxies == ("http://svc:p%40ss%3Aw%2Frd%20%C3%9Cn%C3%AFcode@127.0.0.1:3128",
                              "socks5://bob@127.0.0.1:1080")


@pytest.mark.parametrize(("text", "message"), [
    ('colour = "red"', "colour: unknown key (expected one of catalogs, checks, concurrency, dns, endpoints, "
                       "output, proxy_sources, routes, timeout)"),
    ('[output]\nfiles = "x"', "output.files: unknown key (expected one of append, baseline, file, format, "
                              "junit, keep, max_bytes, progress, prometheus)"),
    ("routes = 3", "routes: expected a table ([routes]), got an integer"),
    ('catalogs = "defender-atp"', "catalogs: expected a list of strings, got a string"),
    ('catalogs = ["a", 1]', "catalogs[1]: expected a non-empty string, got an integer"),
    ('endpoints = ["ok.example:443", "bad"]',
     "endpoints[1]: 'bad': expected HOST:PORT (e.g. example.org:443)"),
    ('[dns]\nservers = ["dns.example"]', "dns.servers[0]: 'dns.example': expected an IP address, not a name"),
    ("timeout = 0", "timeout: 0 is out of range (0.001 to 3600)"),
    ('timeout = "3"', "timeout: expected a number of seconds, got a string"),
    ("concurrency = 2.5", "concurrency: expected a whole number, got a float"),
    ("concurrency = true", "concurrency: expected a whole number, got a boolean"),
    ('[routes]\ndirect = "yes"', "routes.direct: expected true or false, got a string"),
    ('[routes]\nproxies = "http://p:1"', "routes.proxies: expected a list of proxies, got a string"),
    ('[routes]\nproxies = ["http://127.0.0.1:3128", "ftp://p:21"]',
     "routes.proxies[1]: proxy URL 'ftp://p:21': unsupported scheme 'ftp' "
     "(use http://, socks4://, socks4a://, socks5://, socks5h://)"),
    ('[routes]\nproxies = [{ url = "http://p:1", password = "x" }]',
     "routes.proxies[0].password: unknown key (expected one of password_env, url, username)"),
    ('[routes]\nproxies = [{ username = "svc" }]', "routes.proxies[0].url: missing (the proxy's URL is required)"),
    ('[routes]\nproxies = [{ url = "http://p:1", password_env = "PROXY_PASSWORD" }]',
     "routes.proxies[0].password_env: needs a user name (username, or user@ in the URL)"),
    ('[routes]\nproxies = [{ url = "http://svc@p:1", password_env = "MISSING" }]',
     "routes.proxies[0].password_env: environment variable MISSING is not set"),
    ('[routes]\nproxies = [{ url = "http://svc@p:1", password_env = "EMPTY" }]',
     "routes.proxies[0].password_env: environment variable EMPTY is empty"),
    ('[routes]\nproxies = [{ url = "http://svc:inline@p:1", password_env = "PROXY_PASSWORD" }]',
     "routes.proxies[0].password_env: the URL 'http://***@p:1' already holds a password; give it once"),
    ('[routes]\nproxies = [{ url = "http://svc@p:1", username = "other" }]',
     "routes.proxies[0].username: the URL 'http://***@p:1' already names a user; give it once"),
    ('[routes]\nproxies = [7]', "routes.proxies[0]: expected a proxy URL or a table with url, got an integer"),
    ('[output]\nformat = "xml"', "output.format: 'xml' is not one of jsonl, console"),
    ('[output]\nmax_bytes = "lots"', "output.max_bytes: 'lots' is not a size (e.g. 1048576, 512K, 10M, 1G)"),
    ("[output]\nmax_bytes = 0", "output.max_bytes: 0 must be at least 1 byte"),
    ("[output]\nmax_bytes = 1.5", 'output.max_bytes: expected a size (10485760 or "10M"), got a float'),
    ("[output]\nkeep = -1", "output.keep: -1 is out of range (0 to 1000)"),
    ('[output]\nfile = ""', "output.file: must not be empty"),
    ('[checks]\nmiddlebox = 1', "checks.middlebox: expected true or false, got an integer"),
    ("timeout = ", "invalid TOML: Invalid value (at end of document)"),
])
def test_errors_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert caught.value.message == f"config {PATH}: {message}"
    assert caught.value.exit_status == 2


def test_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(b"timeout = 3\n\xff", PATH, {})
    assert caught.value.message == f"config {PATH}: not UTF-8 text (byte 12)"


@pytest.mark.parametrize("text", [
    # a secret typed where it does not belong is never repeated
    f'[routes]\nproxies = [{{ url = "http://svc:{SECRET}@p:1/path" }}]',
    f'[routes]\nproxies = [{{ url = "http://svc:{SECRET}@p:notaport" }}]',
    f'[routes]\nproxies = [{{ url = "http://svc@p:1", password_env = "PROXY_PASSWORD", username = "{SECRET}" }}]',
    f'[routes]\npassword = "{SECRET}"',
    f'[routes]\ndirect = "{SECRET}"',
    '[routes]\nproxies = [{ url = "http://svc@p:notaport", password_env = "PROXY_PASSWORD" }]',
    f'[routes]\nproxies = [{{ url = "http://svc@p:1", password_env = "PROXY_PASSWORD" }}, "ftp://x:{SECRET}@h"]',
])
def test_no_error_repeats_a_secret(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert SECRET not in caught.value.message
    assert "w/rd" not in caught.value.message and "p%40ss" not in caught.value.message


@pytest.mark.parametrize(("text", "size"), [
    ("1", 1), ("1048576", 1048576), ("512K", 512 * 1024), ("10M", 10 * 1024**2), ("10mb", 10 * 1024**2),
    ("1G", 1024**3), ("2KiB", 2048), (4096, 4096),
])
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "K", "1.5M", "-1", "0", "10T", "ten"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match=r"size|at least"):
        parse_size(text)


def check_args(*words: str) -> list[str]:
    return ["check", *words]


def test_flags_override_the_file_key_by_key() -> None:
    argv = check_args("--config", PATH, "--timeout", "9", "--format", "jsonl", "--endpoint", "a.example:1")
    args = build_parser().parse_args(argv)
    merged = overlay(args, parse_config(FULL, PATH, ENV), given_dests(argv))
    assert (merged.timeout, merged.format, merged.endpoint) == (9.0, "jsonl", ["a.example:1"])
    # the rest comes from the file
    assert (merged.catalog, merged.more_catalogs) == ("defender-atp", ["/etc/scanner/./extra.toml",
                                                                       "/abs/other.toml"])
    assert (merged.concurrency, merged.dns_server) == (64, ["127.0.0.1:5353", "::1"])
    assert merged.direct is True and len(merged.proxy) == 2
    assert (merged.winhttp, merged.pac, merged.wpad, merged.dns_suffix) == (
        "/etc/scanner/netsh.txt", "http://wpad.corp/proxy.pac", True, ["corp.example"])
    assert (merged.verify, merged.no_middlebox_check, merged.ca_file, merged.public_roots) == (
        True, True, "/etc/scanner/roots.pem", "/etc/ssl/public.pem")
    assert (merged.output, merged.output_append, merged.output_max_bytes, merged.output_keep) == (
        "/var/log/scanner/check.jsonl", True, 10 * 1024**2, 3)
    assert (merged.junit, merged.prometheus, merged.baseline, merged.no_progress) == (
        "/etc/scanner/report.xml", "/var/lib/node_exporter/scanner.prom", "/etc/scanner/last.jsonl", True)
    assert (args.catalog, args.concurrency) == (None, 256)  # the parsed flags are left as they were


def test_a_route_flag_replaces_the_whole_routes_table() -> None:
    config = parse_config(FULL, PATH, ENV)
    for words in (["--proxy", "http://127.0.0.1:9"], ["--direct"]):
        argv = check_args(*words)
        merged = overlay(build_parser().parse_args(argv), config, given_dests(argv))
        assert (merged.direct, merged.proxy) == (
            ("--direct" in words), [w for w in words if w.startswith("http")])


def test_a_catalog_argument_replaces_the_files_catalogs() -> None:
    argv = check_args("mine.toml")
    merged = overlay(build_parser().parse_args(argv), parse_config(FULL, PATH, ENV), given_dests(argv))
    assert (merged.catalog, merged.more_catalogs) == ("mine.toml", [])


def test_given_dests_ignores_defaults() -> None:
    assert given_dests(["check"]) == frozenset()
    assert given_dests(["check", "defender-atp", "--direct", "--dns-server", "::1", "--no-progress"]) == {
        "catalog", "direct", "dns_server", "no_progress"}
    assert given_dests(["check", "--endpoint", "check:443", "--output-max-bytes", "1M"]) == {
        "endpoint", "output_max_bytes"}


def test_with_config_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('catalogs = ["a.toml", "defender-atp"]\n[output]\nfile = "out.jsonl"\n')
    argv = ["check", "--config", str(path)]
    merged = with_config(build_parser().parse_args(argv), argv, {})
    assert (merged.catalog, merged.more_catalogs, merged.output) == (
        str(tmp_path / "a.toml"), ["defender-atp"], str(tmp_path / "out.jsonl"))
    missing = str(tmp_path / "nope.toml")
    argv = ["check", "--config", missing]
    with pytest.raises(ConfigError) as caught:
        with_config(build_parser().parse_args(argv), argv, {})
    assert caught.value.message == f"config {missing}: cannot read it: No such file or directory"


def test_the_readme_example_parses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### A config file", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    config = parse_config(example.encode(), PATH, {"PROXY_PASSWORD": SECRET})
    assert config.catalogs == ("defender-atp", "/etc/scanner/./extra.toml")
    assert config.output_max_bytes == 10 * 1024**2 and config.winhttp == "system"
    assert parse_proxy_url((config.proxies or ("",))[1]).password == SECRET
