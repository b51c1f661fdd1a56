"""`scanner check --config FILE`: a TOML file holding what a scheduled run needs. Pure, but loading.

A config looks like::

    catalogs = ["defender-atp", "./extra.toml"]   # several catalogs run in one run
    endpoints = ["intranet.example:443"]           # ad-hoc endpoints, as --endpoint
    timeout = 3.0
    concurrency = 256

    [dns]
    servers = ["10.0.0.53"]

    [routes]
    direct = true
    proxies = [
        "socks5h://10.0.0.2:1080",
        { url = "http://proxy.corp:3128", username = "svc", password_env = "PROXY_PASSWORD" },
    ]

    [proxy_sources]             # WinHTTP's own route, as --winhttp, --pac, --wpad
    winhttp = "system"
    pac = "http://wpad.corp/proxy.pac"
    wpad = false
    dns_suffixes = ["corp.example"]

    [checks]
    verify = false
    middlebox = true
    ca_file = "corp-roots.pem"
    public_roots = "public.pem"

    [output]
    format = "jsonl"
    file = "/var/log/scanner/check.jsonl"
    append = true
    max_bytes = "10M"
    keep = 5
    junit = "report.xml"
    prometheus = "/var/lib/node_exporter/scanner.prom"
    baseline = "/var/lib/scanner/last.jsonl"
    progress = true

Relative paths are taken from the config file's folder. A flag on the command line
overrides the file's value for the same setting; `--direct` or `--proxy` replace the
file's whole [routes] table. Errors name the file and the key (`routes.proxies[1]`,
indexes from 0, as in catalogs) and never repeat a credential.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from scanner.catalog import parse_endpoint_flag
from scanner.errors import ScannerError
from scanner.files import TooLarge, read_limited
from scanner.probes.dns import parse_dns_server
from scanner.routes import parse_proxy_url, redact_url

MAX_CONFIG_BYTES = 1024 * 1024
FORMATS = ("jsonl", "console")
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}

_TOP_KEYS = {"catalogs", "endpoints", "timeout", "concurrency", "dns", "routes", "proxy_sources",
             "checks", "output"}
_TABLE_KEYS = {
    "dns": {"servers"},
    "routes": {"direct", "proxies"},
    "proxy_sources": {"winhttp", "pac", "wpad", "dns_suffixes"},
    "checks": {"verify", "middlebox", "ca_file", "public_roots"},
    "output": {"format", "file", "append", "max_bytes", "keep", "junit", "prometheus", "baseline",
               "progress"},
}
_PROXY_KEYS = {"url", "username", "password_env"}

T = TypeVar("T")


class ConfigError(ScannerError):
    """The config file cannot be read, or a key in it is wrong."""


@dataclass(frozen=True, slots=True)
class Config:
    """What the file sets; None where it says nothing (the flag's default then applies)."""

    path: str
    catalogs: tuple[str, ...] | None = None
    endpoints: tuple[str, ...] | None = None
    timeout: float | None = None
    concurrency: int | None = None
    dns_servers: tuple[str, ...] | None = None
    direct: bool | None = None
    proxies: tuple[str, ...] | None = field(default=None, repr=False)  # may hold credentials
    winhttp: str | None = None
    pac: str | None = None
    wpad: bool | None = None
    dns_suffixes: tuple[str, ...] | None = None
    verify: bool | None = None
    middlebox: bool | None = None
    ca_file: str | None = None
    public_roots: str | None = None
    format: str | None = None
    output: str | None = None
    output_append: bool | None = None
    output_max_bytes: int | None = None
    output_keep: int | None = None
    junit: str | None = None
    prometheus: str | None = None
    baseline: str | None = None
    progress: bool | None = None


def load_config(path: str, environ: Mapping[str, str]) -> Config:
    """Read and parse `path`; `environ` supplies `password_env` references."""
    try:
        data = read_limited(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"config {path}: cannot read it: {exc.strerror or exc}") from None
    except TooLarge:
        raise ConfigError(f"config {path}: larger than {MAX_CONFIG_BYTES // 1024} KiB") from None
    return parse_config(data, path, environ)


def parse_config(data: bytes, path: str, environ: Mapping[str, str]) -> Config:
    """Parse and validate config TOML; relative paths are taken from `path`'s folder."""
    try:
        doc = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"config {path}: invalid TOML: nested too deeply") from None
    return _Reader(path, environ).config(doc)


def parse_size(text: str | int) -> int:
    """`1048576`, `512K`, `10M`, `1G` (powers of 1024) -> bytes; ValueError when malformed."""
    if isinstance(text, int):
        number, unit = text, ""
    else:
        raw = text.strip().upper().removesuffix("B").removesuffix("I")
        unit = raw[-1:] if raw[-1:] in _SIZE_UNITS else ""
        digits = raw[: len(raw) - len(unit)].strip()
        if not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"{text!r} is not a size (e.g. 1048576, 512K, 10M, 1G)")
        number = int(digits)
    size = number * _SIZE_UNITS[unit]
    if not 1 <= size <= 1 << 50:
        raise ValueError(f"{text!r} must be at least 1 byte")
    return size


class _Reader:
    """Walks the parsed document; every error names the file and the key."""

    def __init__(self, path: str, environ: Mapping[str, str]) -> None:
        self.path = path
        self.base = os.path.dirname(path)
        self.environ = environ

    def fail(self, key: str, what: str) -> ConfigError:
        return ConfigError(f"config {self.path}: {key}: {what}")

    def table(self, doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table ([{key}]), got {_kind(value)}")
        self.known(value, _TABLE_KEYS[key], key + ".")
        return value

    def known(self, doc: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        unknown = sorted(set(doc) - allowed)
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise self.fail(prefix + unknown[0], f"unknown key (expected one of {expected})")

    def typed(self, doc: Mapping[str, Any], key: str, where: str, kind: type[T], name: str) -> T | None:
        value = doc.get(key)
        if value is None:
            return None
        # bool is an int in Python, but not in TOML
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.fail(where, f"expected {name}, got {_kind(value)}")
        return value

    def text(self, doc: Mapping[str, Any], key: str, where: str) -> str | None:
        value = self.typed(doc, key, where, str, "a string")
        if value is not None and not value.strip():
            raise self.fail(where, "must not be empty")
        return value.strip() if value is not None else None

    def flag(self, doc: Mapping[str, Any], key: str, where: str) -> bool | None:
        return self.typed(doc, key, where, bool, "true or false")

    def texts(self, doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(where, f"expected a list of strings, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item.strip():
                raise self.fail(f"{where}[{index}]", f"expected a non-empty string, got {_kind(item)}")
        return tuple(item.strip() for item in value)

    def file(self, doc: Mapping[str, Any], key: str, where: str) -> str | None:
        value = self.text(doc, key, where)
        return None if value is None else self.relative(value)

    def relative(self, value: str) -> str:
        return value if os.path.isabs(value) else os.path.join(self.base, value)

    def each(self, items: tuple[str, ...] | None, where: str, check: Callable[[str], object],
             prefix: str) -> None:
        for index, item in enumerate(items or ()):
            try:
                check(item)
            except ScannerError as exc:
                raise self.fail(f"{where}[{index}]", exc.message.removeprefix(prefix)) from None

    def number(self, doc: Mapping[str, Any], where: str, low: float, high: float, *,
               whole: bool) -> float | None:
        value = doc.get(where.rpartition(".")[2])
        if value is None:
            return None
        name = "a whole number" if whole else "a number of seconds"
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                whole and not isinstance(value, int)):
            raise self.fail(where, f"expected {name}, got {_kind(value)}")
        if not low <= value <= high:
            raise self.fail(where, f"{value} is out of range ({low:g} to {high:g})")
        return value

    def proxy(self, raw: object, where: str) -> str:
        """One proxy entry as a URL for --proxy; `password_env` is looked up here."""
        if isinstance(raw, str):
            url, username, password_env = raw.strip(), None, None
        elif isinstance(raw, dict):
            self.known(raw, _PROXY_KEYS, where + ".")
            url = self.text(raw, "url", where + ".url") or ""
            if not url:
                raise self.fail(where + ".url", "missing (the proxy's URL is required)")
            username = self.text(raw, "username", where + ".username")
            password_env = self.text(raw, "password_env", where + ".password_env")
        else:
            raise self.fail(where, f"expected a proxy URL or a table with url, got {_kind(raw)}")
        try:
            route = parse_proxy_url(url)
        except ScannerError as exc:
            raise self.fail(where, exc.message) from None
        if username is not None and route.username is not None:
            raise self.fail(where + ".username",
                            f"the URL {redact_url(url)!r} already names a user; give it once")
        if password_env is not None:
            if route.password:
                raise self.fail(where + ".password_env",
                                f"the URL {redact_url(url)!r} already holds a password; give it once")
            user = username if username is not None else route.username
            if not user:
                raise self.fail(where + ".password_env", "needs a user name (username, or user@ in the URL)")
            secret = self.environ.get(password_env)
            if secret is None:
                raise self.fail(where + ".password_env", f"environment variable {password_env} is not set")
            if not secret:
                raise self.fail(where + ".password_env", f"environment variable {password_env} is empty")
            url = _with_userinfo(url, user, secret)
        elif username is not None:
            url = _with_userinfo(url, username, None)
        return url

    def config(self, doc: Mapping[str, Any]) -> Config:
        self.known(doc, _TOP_KEYS, "")
        dns, routes = self.table(doc, "dns"), self.table(doc, "routes")
        sources, checks, out = self.table(doc, "proxy_sources"), self.table(doc, "checks"), self.table(
            doc, "output")

        catalogs = self.texts(doc, "catalogs", "catalogs")
        if catalogs is not None:
            catalogs = tuple(self.relative(c) if _looks_like_path(c) else c for c in catalogs)
        endpoints = self.texts(doc, "endpoints", "endpoints")
        self.each(endpoints, "endpoints", parse_endpoint_flag, "--endpoint ")
        dns_servers = self.texts(dns, "servers", "dns.servers")
        self.each(dns_servers, "dns.servers", parse_dns_server, "--dns-server ")

        proxies: tuple[str, ...] | None = None
        raw_proxies = routes.get("proxies")
        if raw_proxies is not None:
            if not isinstance(raw_proxies, list):
                raise self.fail("routes.proxies", f"expected a list of proxies, got {_kind(raw_proxies)}")
            proxies = tuple(self.proxy(raw, f"routes.proxies[{i}]") for i, raw in enumerate(raw_proxies))

        winhttp = self.text(sources, "winhttp", "proxy_sources.winhttp")
        if winhttp is not None and winhttp.lower() != "system":
            winhttp = self.relative(winhttp)
        pac = self.text(sources, "pac", "proxy_sources.pac")
        if pac is not None and not pac.lower().startswith(("http://", "https://")):
            pac = self.relative(pac)

        fmt = self.text(out, "format", "output.format")
        if fmt is not None and fmt not in FORMATS:
            raise self.fail("output.format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        max_bytes = None
        raw_size = out.get("max_bytes")
        if raw_size is not None:
            if isinstance(raw_size, bool) or not isinstance(raw_size, int | str):
                raise self.fail("output.max_bytes",
                                f"expected a size (10485760 or \"10M\"), got {_kind(raw_size)}")
            try:
                max_bytes = parse_size(raw_size)
            except ValueError as exc:
                raise self.fail("output.max_bytes", str(exc)) from None
        keep = self.number(out, "output.keep", 0, 1000, whole=True)
        timeout = self.number(doc, "timeout", 0.001, 3600, whole=False)
        concurrency = self.number(doc, "concurrency", 1, 100_000, whole=True)
        return Config(
            path=self.path,
            catalogs=catalogs,
            endpoints=endpoints,
            timeout=float(timeout) if timeout is not None else None,
            concurrency=int(concurrency) if concurrency is not None else None,
            dns_servers=dns_servers,
            direct=self.flag(routes, "direct", "routes.direct"),
            proxies=proxies,
            winhttp=winhttp,
            pac=pac,
            wpad=self.flag(sources, "wpad", "proxy_sources.wpad"),
            dns_suffixes=self.texts(sources, "dns_suffixes", "proxy_sources.dns_suffixes"),
            verify=self.flag(checks, "verify", "checks.verify"),
            middlebox=self.flag(checks, "middlebox", "checks.middlebox"),
            ca_file=self.file(checks, "ca_file", "checks.ca_file"),
            public_roots=self.file(checks, "public_roots", "checks.public_roots"),
            format=fmt,
            output=self.file(out, "file", "output.file"),
            output_append=self.flag(out, "append", "output.append"),
            output_max_bytes=max_bytes,
            output_keep=int(keep) if keep is not None else None,
            junit=self.file(out, "junit", "output.junit"),
            prometheus=self.file(out, "prometheus", "output.prometheus"),
            baseline=self.file(out, "baseline", "output.baseline"),
            progress=self.flag(out, "progress", "output.progress"),
        )


def _kind(value: object) -> str:
    """A value's TOML type for an error message: never the value itself, which may be a secret."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array",
             dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".toml") or "/" in spec or "\\" in spec


def _with_userinfo(url: str, username: str, password: str | None) -> str:
    scheme, _, rest = url.partition("://")
    userinfo = quote(username, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    return f"{scheme}://{userinfo}@{rest.rpartition('@')[2]}"


# ------------------------------------------------------------------ onto the flags

ROUTE_DESTS = frozenset({"direct", "proxy"})


def settings(config: Config) -> dict[str, Any]:
    """The config as argparse destinations of `scanner check`, only what the file sets."""
    values: dict[str, Any] = {
        "endpoint": list(config.endpoints) if config.endpoints is not None else None,
        "direct": config.direct,
        "proxy": list(config.proxies) if config.proxies is not None else None,
        "dns_server": list(config.dns_servers) if config.dns_servers is not None else None,
        "timeout": config.timeout,
        "concurrency": config.concurrency,
        "format": config.format,
        "output": config.output,
        "output_append": config.output_append,
        "output_max_bytes": config.output_max_bytes,
        "output_keep": config.output_keep,
        "junit": config.junit,
        "prometheus": config.prometheus,
        "baseline": config.baseline,
        "ca_file": config.ca_file,
        "public_roots": config.public_roots,
        "verify": config.verify,
        "no_middlebox_check": None if config.middlebox is None else not config.middlebox,
        "winhttp": config.winhttp,
        "pac": config.pac,
        "wpad": config.wpad,
        "dns_suffix": list(config.dns_suffixes) if config.dns_suffixes is not None else None,
        "no_progress": None if config.progress is None else not config.progress,
    }
    found = {key: value for key, value in values.items() if value is not None}
    if config.catalogs is not None:
        found["catalog"] = config.catalogs[0] if config.catalogs else None
        found["more_catalogs"] = list(config.catalogs[1:])
    return found


def overlay(args: argparse.Namespace, config: Config, given: frozenset[str]) -> argparse.Namespace:
    """`args` with the file's settings, except where a flag in `given` (destinations) was used.

    `--direct` or `--proxy` replace the file's whole [routes]; the catalog argument replaces
    the file's `catalogs`; every other flag replaces its own key.
    """
    merged = argparse.Namespace(**vars(args))
    for key, value in settings(config).items():
        if key in given or (key in ROUTE_DESTS and given & ROUTE_DESTS):
            continue
        if key == "more_catalogs" and "catalog" in given:
            continue
        setattr(merged, key, value)
    return merged

