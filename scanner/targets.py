"""Sweep targets: CIDRs, ranges, addresses, names and files, as a compact address space.

Targets are never expanded: a spec becomes sorted, disjoint intervals of integer
addresses (IPv4 before IPv6), exclusions are cut out of them, and `address_at`
maps an index in 0..size-1 to its address with a binary search. A /8 costs one
interval, not sixteen million strings.
"""

from __future__ import annotations

import bisect
import ipaddress
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from scanner.errors import UsageError
from scanner.names import validate_hostname

Interval = tuple[int, int, int]  # (IP version, first, last), both ends included

MAX_SPACE = 1 << 64  # addresses x ports; an IPv6 /64 on one port is already the limit


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """What the user named: address intervals, and host names still to resolve."""

    intervals: tuple[Interval, ...]
    names: tuple[str, ...]


def _parse_address(text: str, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise UsageError(f"{what} {text!r}: not an IP address") from None


def parse_target(text: str, what: str = "target", names_allowed: bool = True) -> Interval | str:
    """One token: `10.0.0.0/8`, `10.0.0.1-10.0.0.50`, `::1`, or a host name (returned as is)."""
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise UsageError(f"{what} {text!r}: {exc}") from None
        return (net.version, int(net.network_address), int(net.broadcast_address))
    if "-" in text and (text.count(".") >= 6 or ":" in text):
        low_text, _, high_text = text.partition("-")
        low = _parse_address(low_text.strip(), what)
        high = _parse_address(high_text.strip(), what)
        if low.version != high.version:
            raise UsageError(f"{what} {text!r}: a range cannot mix IPv4 and IPv6")
        if int(high) < int(low):
            raise UsageError(f"{what} {text!r}: the range ends before it starts")
        return (low.version, int(low), int(high))
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return (address.version, int(address), int(address))
    if not names_allowed:
        raise UsageError(f"{what} {text!r}: expected an address, a CIDR or a range, not a name")
    name = text.lower().removesuffix(".")
    problem = validate_hostname(name)
    if problem:
        raise UsageError(f"{what} {text!r}: {problem}")
    return name


def file_tokens(lines: Iterable[str]) -> Iterator[str]:
    """Whitespace- or comma-separated tokens of a targets file; `#` starts a comment."""
    for line in lines:
        yield from line.split("#", 1)[0].replace(",", " ").split()


def _read_lines(source: str) -> Iterable[str]:
    if source == "-":
        return sys.stdin
    try:
        with open(source, encoding="utf-8") as handle:
            return handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read targets file {source}: {reason}") from None


def expand_arguments(args: Iterable[str]) -> Iterator[str]:
    """Command-line targets with `@FILE` and `-` (stdin) replaced by their tokens."""
    for arg in args:
        if arg == "-":
            yield from file_tokens(_read_lines("-"))
        elif arg.startswith("@"):
            yield from file_tokens(_read_lines(arg[1:]))
        else:
            yield from file_tokens([arg])


def parse_targets(tokens: Iterable[str], what: str = "target", names_allowed: bool = True
                  ) -> TargetSpec:
    intervals: list[Interval] = []
    names: list[str] = []
    for token in tokens:
        parsed = parse_target(token, what, names_allowed)
        if isinstance(parsed, str):
            if parsed not in names:
                names.append(parsed)
        else:
            intervals.append(parsed)
    return TargetSpec(tuple(intervals), tuple(names))


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint, non-adjacent intervals covering the same addresses."""
    merged: list[Interval] = []
    for version, first, last in sorted(intervals):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            if last > merged[-1][2]:
                merged[-1] = (version, merged[-1][1], last)
        else:
            merged.append((version, first, last))
    return merged


def subtract(intervals: Iterable[Interval], excluded: Iterable[Interval]) -> list[Interval]:
    """`intervals` minus `excluded`; both are merged first."""
    result: list[Interval] = []
    cuts = merge(excluded)
    for version, first, last in merge(intervals):
        start = first
        for cut_version, cut_first, cut_last in cuts:
            if cut_version != version or cut_last < start or cut_first > last:
                continue
            if cut_first > start:
                result.append((version, start, cut_first - 1))
            start = cut_last + 1
            if start > last:
                break
        if start <= last:
            result.append((version, start, last))
    return result


def format_address(version: int, value: int) -> str:
    if version == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    return str(ipaddress.IPv6Address(value))


class AddressSpace:
    """Index <-> address over disjoint intervals, without expanding them."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        self.intervals: tuple[Interval, ...] = tuple(merge(intervals))
        self._starts: list[int] = []
        size = 0
        for _, first, last in self.intervals:
            self._starts.append(size)
            size += last - first + 1
        self.size = size

    def address_at(self, index: int) -> tuple[int, int]:
        """(IP version, integer address) of the `index`-th address, 0 <= index < size."""
        if not 0 <= index < self.size:
            raise IndexError(index)
        slot = bisect.bisect_right(self._starts, index) - 1
        version, first, _ = self.intervals[slot]
        return version, first + index - self._starts[slot]

    def __iter__(self) -> Iterator[str]:
        for version, first, last in self.intervals:
            for value in range(first, last + 1):
                yield format_address(version, value)
