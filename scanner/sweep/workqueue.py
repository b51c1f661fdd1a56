"""Chunks of a sweep's positions, claimed by the workers as they go (work sharing).

A static split would leave a worker idle while another, slowed by a busy core or
a slow subnet, finishes its half. Instead every worker claims the next chunk
from a counter in shared memory when it runs dry. Workers report the chunks
they claimed; whatever no report claims is still to do, so a saved state never
loses a chunk that was claimed just before it was written.
"""

from __future__ import annotations

import mmap
import multiprocessing
import struct
from collections.abc import Iterable

from scanner.permutation import Span, SpanIndex, chunk_ranges, chunk_size

_COUNTER = struct.Struct("Q")


class ChunkQueue:
    """Create before forking: the counter and its lock are shared with the children."""

    def __init__(self, spans: Iterable[Span], workers: int) -> None:
        self.index = SpanIndex(spans)
        self.size = chunk_size(self.index.total, workers)
        self.count = -(-self.index.total // self.size)
        self._counter = mmap.mmap(-1, _COUNTER.size)  # anonymous and MAP_SHARED
        self._lock = multiprocessing.get_context("fork").Lock()

    def chunk(self, ident: int) -> list[Span]:
        return self.index.slice(ident * self.size, (ident + 1) * self.size)

    def claim(self) -> tuple[int, list[Span]] | None:
        """The next chunk (its id and positions), or None when all are taken."""
        with self._lock:
            ident = _COUNTER.unpack_from(self._counter)[0]
            if ident >= self.count:
                return None
            _COUNTER.pack_into(self._counter, 0, ident + 1)
        return ident, self.chunk(ident)

    def unclaimed(self, claimed: Iterable[int]) -> list[Span]:
        """The positions of every chunk not in `claimed`."""
        spans: list[Span] = []
        for low, high in chunk_ranges(claimed, self.count):
            spans += self.index.slice(low * self.size, high * self.size)
        return spans
