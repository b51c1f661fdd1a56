"""The `WinHttpSettings` registry value, as `reg query` prints it or as raw bytes.

Layout (little-endian u32 fields): version (0x18 or 0x28), counter, flags (0x1
always set, 0x2 manual proxy), proxy length + ASCII, bypass length + ASCII.
"""

from __future__ import annotations

import re
import struct
import sys

from scanner.discovery.winhttp import (
    WinHttpError,
    WinHttpSettings,
    parse_netsh,
    parse_proxy_string,
    split_bypass,
)

KEY = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Internet Settings\Connections"
VALUE = "WinHttpSettings"
VERSIONS = (0x18, 0x28)
FLAG_ALWAYS, FLAG_PROXY = 0x1, 0x2
MAX_BLOB = 64 * 1024

_REG_LINE = re.compile(r"^\s*WinHttpSettings\s+REG_BINARY\s+([0-9A-Fa-f]*)\s*$", re.IGNORECASE | re.MULTILINE)


def parse_reg_text(text: str) -> bytes:
    """`reg query ... /v WinHttpSettings` output, or bare hex -> the value's bytes."""
    match = _REG_LINE.search(text)
    hex_text = match.group(1) if match else re.sub(r"\s+", "", text)
    if not hex_text:
        raise WinHttpError("registry value: no WinHttpSettings REG_BINARY data found")
    if len(hex_text) > 2 * MAX_BLOB:
        raise WinHttpError("registry value: larger than 64 KB")
    if len(hex_text) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", hex_text):
        raise WinHttpError("registry value: expected hex digits in pairs "
                           "(the REG_BINARY data as `reg query` prints it)")
    return bytes.fromhex(hex_text)


def _u32(blob: bytes, offset: int, what: str) -> int:
    if offset + 4 > len(blob):
        raise WinHttpError(f"registry value truncated: {len(blob)} bytes, ends inside {what} "
                           f"(at byte {offset})")
    value: int = struct.unpack_from("<I", blob, offset)[0]
    return value


def _ascii(blob: bytes, offset: int, length: int, what: str) -> str:
    if offset + length > len(blob):
        raise WinHttpError(f"registry value truncated: {what} claims {length} bytes at byte {offset}, "
                           f"only {len(blob) - offset} remain")
    raw = blob[offset:offset + length]
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise WinHttpError(f"registry value corrupt: {what} is not ASCII") from None


def parse_blob(blob: bytes, origin: str = "registry WinHttpSettings") -> WinHttpSettings:
    """The value's bytes -> settings; WinHttpError naming `origin` when truncated or corrupt."""
    try:
        return _parse_blob(blob, origin)
    except WinHttpError as exc:
        if exc.message.startswith(origin):
            raise
        raise WinHttpError(f"{origin}: {exc.message}") from None


def _parse_blob(blob: bytes, origin: str) -> WinHttpSettings:
    version = _u32(blob, 0, "the version")
    if version not in VERSIONS:
        raise WinHttpError(f"registry value corrupt: version 0x{version:x} (known: 0x18, 0x28)")
    _u32(blob, 4, "the counter")
    flags = _u32(blob, 8, "the flags")
    if not flags & FLAG_ALWAYS:
        raise WinHttpError(f"registry value corrupt: flags 0x{flags:x} lack bit 0x1")
    proxy_len = _u32(blob, 12, "the proxy length")
    proxy = _ascii(blob, 16, proxy_len, "the proxy string")
    bypass_at = 16 + proxy_len
    bypass_len = _u32(blob, bypass_at, "the bypass length")
    bypass = _ascii(blob, bypass_at + 4, bypass_len, "the bypass list")
    origin = f"{origin} (version 0x{version:x})"
    if not flags & FLAG_PROXY:
        return WinHttpSettings(None, (), origin)  # a stored string is not in use without 0x2
    if not proxy.strip():
        raise WinHttpError("registry value corrupt: manual proxy flag set but no proxy string")
    parse_proxy_string(proxy, origin)
    return WinHttpSettings(proxy.strip(), split_bypass(bypass), origin)


def build_blob(proxy: str | None, bypass: str = "", version: int = 0x28, counter: int = 1) -> bytes:
    """The value `netsh winhttp set proxy` would store (for tests and examples)."""
    flags = FLAG_ALWAYS | (FLAG_PROXY if proxy else 0)
    p, b = (proxy or "").encode("ascii"), bypass.encode("ascii")
    return struct.pack("<IIII", version, counter, flags, len(p)) + p + struct.pack("<I", len(b)) + b


def read_system() -> WinHttpSettings:  # pragma: no cover - Windows only
    """The live value, with `winreg` (Windows only)."""
    if sys.platform != "win32":
        raise WinHttpError("--winhttp system reads the Windows registry: use it on Windows, or pass "
                           "the text of `netsh winhttp show proxy` or `reg query` in a file")
    import winreg  # noqa: PLC0415

    path = KEY.split("\\", 1)[1]
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path) as key:
            value, kind = winreg.QueryValueEx(key, VALUE)
    except FileNotFoundError:
        raise WinHttpError(f"{KEY}\\{VALUE} does not exist: WinHTTP is set to direct access") from None
    except OSError as exc:
        raise WinHttpError(f"cannot read {KEY}\\{VALUE}: {exc.strerror or exc}") from None
    if kind != winreg.REG_BINARY or not isinstance(value, bytes):
        raise WinHttpError(f"{KEY}\\{VALUE} is not REG_BINARY")
    return parse_blob(value, "registry WinHttpSettings (live)")


def load_settings(text: str, origin: str) -> WinHttpSettings:
    """A file's text: netsh output, `reg query` output, or bare hex of the value."""
    if _REG_LINE.search(text) or re.fullmatch(r"[0-9A-Fa-f\s]+", text.strip() or "-"):
        return parse_blob(parse_reg_text(text), f"{origin} (registry value)")
    return parse_netsh(text, origin)
