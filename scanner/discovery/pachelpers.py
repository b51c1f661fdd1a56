"""The PAC helper functions that need arithmetic or a clock, as pure Python.

The sandboxed child exposes these to the script (see `pacchild`); the simple
string helpers are written in JavaScript there. The clock is injected: `Clock`
holds the local and the UTC time of the evaluation.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime

_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


@dataclass(frozen=True, slots=True)
class Clock:
    local: datetime
    utc: datetime

    def pick(self, gmt: bool) -> datetime:
        return self.utc if gmt else self.local


def sh_exp_match(text: str, pattern: str) -> bool:
    """Shell glob: `*` any run, `?` one character, everything else literal."""
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.fullmatch(regex, text, re.DOTALL) is not None


def _v4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text.strip())
    except ValueError:
        return None


def is_in_net(address: str, pattern: str, mask: str) -> bool:
    """`isInNet` once the host is an IPv4 address: (address & mask) == (pattern & mask)."""
    ip, net, bits = _v4(address), _v4(pattern), _v4(mask)
    if ip is None or net is None or bits is None:
        return False
    m = int(bits)
    return int(ip) & m == int(net) & m


def is_in_net_ex(address: str, prefix: str) -> bool:
    """Microsoft's `isInNetEx(ip, "prefix/len")`, IPv4 or IPv6."""
    try:
        ip = ipaddress.ip_address(address.strip())
        network = ipaddress.ip_network(prefix.strip(), strict=False)
    except ValueError:
        return False
    return ip.version == network.version and ip in network


def sort_ip_address_list(text: str) -> str:
    """Microsoft's `sortIpAddressList`: IPv6 first, then IPv4, each ascending; "" when invalid."""
    try:
        ips = [ipaddress.ip_address(part.strip()) for part in text.split(";") if part.strip()]
    except ValueError:
        return ""
    if not ips:
        return ""
    ips.sort(key=lambda ip: (-ip.version, int(ip)))
    return ";".join(str(ip) for ip in ips)


def _gmt(args: list[object]) -> tuple[list[object], bool]:
    if args and isinstance(args[-1], str) and args[-1].upper() == "GMT":
        return args[:-1], True
    return args, False


def _in_range(lo: tuple[int, ...], now: tuple[int, ...], hi: tuple[int, ...], wrap: bool) -> bool:
    if lo <= hi or not wrap:
        return lo <= now <= hi
    return now >= lo or now <= hi


def weekday_range(args: list[object], clock: Clock) -> bool:
    """`weekdayRange(wd1[, wd2][, "GMT"])`: inclusive, wrapping past Saturday."""
    args, gmt = _gmt(args)
    if not 1 <= len(args) <= 2 or not all(isinstance(a, str) and a.upper() in _DAYS for a in args):
        return False
    today = (clock.pick(gmt).weekday() + 1) % 7  # Python's Monday=0 -> Sunday=0
    days = [_DAYS.index(str(a).upper()) for a in args]
    lo, hi = days[0], days[-1]
    return _in_range((lo,), (today,), (hi,), wrap=True)


def _date_part(value: object) -> tuple[str, int] | None:
    """A dateRange argument -> ("day"|"month"|"year", number)."""
    if isinstance(value, str) and value.upper() in _MONTHS:
        return "month", _MONTHS.index(value.upper()) + 1
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and value == int(value):
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    else:
        return None
    if 1 <= number <= 31:
        return "day", number
    if number >= 1000:
        return "year", number
    return None


def date_range(args: list[object], clock: Clock) -> bool:
    """`dateRange` in all its forms: one value (day, month or year), or two sides of
    equal shape (day, month, year, or day month [year], or month year), inclusive.
    Ranges without a year wrap (`dateRange("DEC", "FEB")`)."""
    args, gmt = _gmt(args)
    parts = [_date_part(a) for a in args]
    if not parts or None in parts or len(parts) > 6:
        return False
    now = clock.pick(gmt)
    value = {"year": now.year, "month": now.month, "day": now.day}
    order = ("year", "month", "day")
    if len(parts) == 1:
        kind, number = parts[0]  # type: ignore[misc]
        return value[kind] == number
    if len(parts) % 2:
        return False
    half = len(parts) // 2
    lo_parts, hi_parts = parts[:half], parts[half:]
    kinds = [p[0] for p in lo_parts if p is not None]
    if kinds != [p[0] for p in hi_parts if p is not None] or len(set(kinds)) != len(kinds):
        return False
    ordered = sorted(kinds, key=order.index)
    lo = {p[0]: p[1] for p in lo_parts if p is not None}
    hi = {p[0]: p[1] for p in hi_parts if p is not None}
    key = tuple(value[k] for k in ordered)
    return _in_range(tuple(lo[k] for k in ordered), key, tuple(hi[k] for k in ordered),
                     wrap="year" not in kinds)


def time_range(args: list[object], clock: Clock) -> bool:
    """`timeRange(h)`, `(h1, h2)`, `(h1, m1, h2, m2)`, `(h1, m1, s1, h2, m2, s2)` [, "GMT"].

    One hour: true during that hour. Otherwise start inclusive, end exclusive
    (`timeRange(9, 17)` is 09:00:00 to 16:59:59); a start after the end wraps midnight.
    """
    args, gmt = _gmt(args)
    numbers: list[int] = []
    for a in args:
        if isinstance(a, bool) or not isinstance(a, int | float | str):
            return False
        try:
            numbers.append(int(a))
        except ValueError:
            return False
    now = clock.pick(gmt)
    if len(numbers) == 1:
        return now.hour == numbers[0]
    if len(numbers) not in (2, 4, 6):
        return False
    half = len(numbers) // 2
    width = {1: (3600,), 2: (3600, 60), 3: (3600, 60, 1)}[half]
    start = sum(n * w for n, w in zip(numbers[:half], width, strict=True))
    end = sum(n * w for n, w in zip(numbers[half:], width, strict=True))
    current = now.hour * 3600 + now.minute * 60 + now.second
    if start <= end:
        return start <= current < end
    return current >= start or current < end
