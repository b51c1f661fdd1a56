"""The sweep order: a seeded bijection, shards that are disjoint and complete, resume spans."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.errors import UsageError
from scanner.permutation import (
    Permutation,
    Shard,
    SpanIndex,
    chunk_ranges,
    chunk_size,
    normalize,
    parse_shard,
    remaining,
)

sizes = st.integers(0, 5000)
seeds = st.integers(0, (1 << 63) - 1)


@given(sizes, seeds)
@settings(max_examples=60)
def test_permutation_is_a_bijection(size: int, seed: int) -> None:
    perm = Permutation(size, seed)
    order = [index for _, index in perm.indices([(0, size)])]
    assert sorted(order) == list(range(size))
    assert all(perm[p] == i for p, i in zip(range(size), order, strict=True))


def test_the_seed_fixes_the_order_and_changes_it() -> None:
    a = [i for _, i in Permutation(1000, 1).indices([(0, 1000)])]
    assert a == [i for _, i in Permutation(1000, 1).indices([(0, 1000)])]
    assert a != [i for _, i in Permutation(1000, 2).indices([(0, 1000)])]
    assert a != list(range(1000))  # actually shuffled
    first_hundred = a[:100]  # spread out, not one block of the space
    assert max(first_hundred) - min(first_hundred) > 500


@given(st.integers(0, 3000), st.integers(1, 12), seeds)
@settings(max_examples=60)
def test_shards_are_disjoint_and_complete(size: int, count: int, seed: int) -> None:
    perm = Permutation(size, seed)
    seen: list[int] = []
    for k in range(1, count + 1):
        seen += [i for _, i in perm.indices([Shard(k, count).span(size)])]
    assert len(seen) == size
    assert set(seen) == set(range(size))


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 50)), max_size=6),
       st.integers(1, 300))
def test_span_index_chunks_cover_every_position_once(raw: list[tuple[int, int]], size: int) -> None:
    spans = normalize((a, a + n) for a, n in raw)
    index = SpanIndex(spans)
    count = -(-index.total // size)
    flat = [p for k in range(count) for a, b in index.slice(k * size, (k + 1) * size)
            for p in range(a, b)]
    assert flat == [p for a, b in spans for p in range(a, b)]
    assert index.slice(index.total, index.total + 5) == []


@given(st.sets(st.integers(0, 60)), st.integers(0, 60))
def test_chunk_ranges_are_the_unclaimed_ids(claimed: set[int], count: int) -> None:
    ranges = chunk_ranges(claimed, count)
    assert [k for a, b in ranges for k in range(a, b)] == [k for k in range(count) if k not in claimed]


def test_chunk_size_balances_and_stays_bounded() -> None:
    assert chunk_size(65_536, 2) == 2048
    assert chunk_size(10, 2) == 256
    assert chunk_size(1 << 40, 2) == 65_536


@given(st.integers(1, 2000), st.data())
def test_remaining_is_what_was_not_finished(size: int, data: st.DataObject) -> None:
    cursor = data.draw(st.integers(0, size))
    pending = data.draw(st.sets(st.integers(0, max(cursor - 1, 0)), max_size=20)) if cursor else set()
    left = remaining([(cursor, size)], pending)
    assert [p for a, b in left for p in range(a, b)] == sorted(pending | set(range(cursor, size)))


def test_parse_shard() -> None:
    assert parse_shard("2/5", {}) == Shard(2, 5)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "0", "SCANNER_SHARDS": "4"}) == Shard(1, 4)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "3", "SCANNER_SHARDS": "4"}) == Shard(4, 4)
    for bad in ("0/3", "4/3", "1", "a/b", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad, {})
    with pytest.raises(UsageError, match="JOB_COMPLETION_INDEX"):
        parse_shard("auto", {})
    with pytest.raises(UsageError):
        parse_shard("auto", {"JOB_COMPLETION_INDEX": "4", "SCANNER_SHARDS": "4"})
