"""A seeded pseudo-random order over the (address x port) index space, with shards.

A balanced Feistel network on the smallest even number of bits that covers the
space, cycle-walked back into range (as masscan does), is a bijection on
0..size-1 that is computed from the position alone. So a sweep is a list of
position ranges: a shard is one contiguous range of positions, a worker a slice
of it, and resuming is just "these ranges are left". Pure integers, no I/O.
"""

from __future__ import annotations

import bisect
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from scanner.errors import UsageError

Span = tuple[int, int]  # positions start..stop-1
ROUNDS = 4
_MULT = 0x9E3779B97F4A7C15


def random_seed() -> int:
    return int.from_bytes(os.urandom(6), "big")


class Permutation:
    """The bijection position -> index on 0..size-1 fixed by `seed`."""

    def __init__(self, size: int, seed: int) -> None:
        if size < 0 or seed < 0:
            raise ValueError("size and seed must be >= 0")
        self.size = size
        self.seed = seed
        bits = max(size - 1, 1).bit_length()
        bits += bits & 1
        self._half = bits // 2
        self._mask = (1 << self._half) - 1
        digest = hashlib.blake2b(seed.to_bytes(16, "big"), digest_size=8 * ROUNDS).digest()
        self._keys = tuple(int.from_bytes(digest[8 * i: 8 * i + 8], "big") for i in range(ROUNDS))

    def _encrypt(self, value: int) -> int:
        half, mask = self._half, self._mask
        left, right = value >> half, value & mask
        for key in self._keys:
            mixed = ((right ^ key) * _MULT) & 0xFFFFFFFFFFFFFFFF
            left, right = right, left ^ ((mixed ^ (mixed >> 29)) & mask)
        return (left << half) | right

    def __getitem__(self, position: int) -> int:
        if not 0 <= position < self.size:
            raise IndexError(position)
        value = self._encrypt(position)
        while value >= self.size:  # cycle-walking: at most a few rounds, the domain is < 4 x size
            value = self._encrypt(value)
        return value

    def indices(self, spans: Iterable[Span]) -> Iterator[tuple[int, int]]:
        """(position, index) for every position of `spans`, in order; the hot path, inlined."""
        size, half, mask = self.size, self._half, self._mask
        k0, k1, k2, k3 = self._keys
        full = 0xFFFFFFFFFFFFFFFF
        for start, stop in spans:
            for position in range(start, stop):
                value = position
                while True:
                    left, right = value >> half, value & mask
                    m = ((right ^ k0) * _MULT) & full
                    left, right = right, left ^ ((m ^ (m >> 29)) & mask)
                    m = ((right ^ k1) * _MULT) & full
                    left, right = right, left ^ ((m ^ (m >> 29)) & mask)
                    m = ((right ^ k2) * _MULT) & full
                    left, right = right, left ^ ((m ^ (m >> 29)) & mask)
                    m = ((right ^ k3) * _MULT) & full
                    left, right = right, left ^ ((m ^ (m >> 29)) & mask)
                    value = (left << half) | right
                    if value < size:
                        break
                yield position, value


@dataclass(frozen=True, slots=True)
class Shard:
    """Part `index` (1-based) of `count` disjoint, complete parts."""

    index: int = 1
    count: int = 1

    def span(self, size: int) -> Span:
        return ((self.index - 1) * size // self.count, self.index * size // self.count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


SHARD_COUNT_VAR = "SCANNER_SHARDS"


def parse_shard(text: str, environ: dict[str, str]) -> Shard:
    """`K/N` (1 <= K <= N), or `auto`: K from JOB_COMPLETION_INDEX (zero-based), N from SCANNER_SHARDS."""
    if text == "auto":
        index, count = environ.get("JOB_COMPLETION_INDEX"), environ.get(SHARD_COUNT_VAR)
        if index is None or count is None:
            raise UsageError(f"--shard auto needs JOB_COMPLETION_INDEX and {SHARD_COUNT_VAR} "
                             "in the environment (a Kubernetes Indexed Job sets the first)")
        if not (index.isascii() and index.isdigit()):
            raise UsageError(f"--shard auto: JOB_COMPLETION_INDEX={index!r} is not a number")
        text = f"{int(index) + 1}/{count}"
    k, slash, n = text.partition("/")
    if not (slash and k.isascii() and k.isdigit() and n.isascii() and n.isdigit()):
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/4, or auto")
    shard = Shard(int(k), int(n))
    if not 1 <= shard.index <= shard.count:
        raise UsageError(f"--shard {text!r}: K must be from 1 to N")
    return shard


def span_total(spans: Iterable[Span]) -> int:
    return sum(stop - start for start, stop in spans)


def normalize(spans: Iterable[Span]) -> list[Span]:
    """Sorted, merged, non-empty spans."""
    merged: list[Span] = []
    for start, stop in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
        else:
            merged.append((start, stop))
    return merged


def remaining(unissued: Iterable[Span], pending: Iterable[int]) -> list[Span]:
    """What is left: the spans not yet started plus the positions started but not finished."""
    return normalize([*unissued, *((p, p + 1) for p in pending)])


class SpanIndex:
    """The positions of `spans` numbered 0..total-1 in order ("offsets"), for handing out chunks."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans = normalize(spans)
        self._starts: list[int] = []
        total = 0
        for start, stop in self.spans:
            self._starts.append(total)
            total += stop - start
        self.total = total

    def slice(self, low: int, high: int) -> list[Span]:
        """The positions at offsets low..high-1, as spans."""
        low, high = max(low, 0), min(high, self.total)
        result: list[Span] = []
        if low >= high:
            return result
        slot = bisect.bisect_right(self._starts, low) - 1
        while low < high:
            start, stop = self.spans[slot]
            begin = start + low - self._starts[slot]
            take = min(stop - begin, high - low)
            result.append((begin, begin + take))
            low += take
            slot += 1
        return result


def chunk_size(total: int, workers: int) -> int:
    """Chunks small enough to balance the workers' load, large enough to be claimed rarely."""
    return max(256, min(65_536, total // max(workers * 16, 1) or 1))


def chunk_ranges(ids: Iterable[int], count: int) -> list[tuple[int, int]]:
    """The chunk ids in 0..count-1 that are not in `ids`, as ranges."""
    ranges: list[tuple[int, int]] = []
    at = 0
    for claimed in sorted({i for i in ids if 0 <= i < count}):
        if claimed > at:
            ranges.append((at, claimed))
        at = max(at, claimed + 1)
    if at < count:
        ranges.append((at, count))
    return ranges
