"""Sweep targets and ports: parsing, exclusions, and index -> address without expansion."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import UsageError
from scanner.ports import TOP_PORTS, parse_ports, port_list, top_ports
from scanner.targets import (
    AddressSpace,
    expand_arguments,
    format_address,
    merge,
    parse_target,
    parse_targets,
    subtract,
)


def test_parse_target_forms() -> None:
    assert parse_target("10.0.0.0/8") == (4, 0x0A000000, 0x0AFFFFFF)
    assert parse_target("10.0.0.7/30") == (4, 0x0A000004, 0x0A000007)  # host bits tolerated
    assert parse_target("10.0.0.1-10.0.0.50") == (4, 0x0A000001, 0x0A000032)
    assert parse_target("192.0.2.9") == (4, 0xC0000209, 0xC0000209)
    assert parse_target("::1") == (6, 1, 1)
    assert parse_target("2001:db8::/126") == (6, 0x20010DB8 << 96, (0x20010DB8 << 96) + 3)
    assert parse_target("Example.COM.") == "example.com"


@pytest.mark.parametrize("text", ["10.0.0.0/33", "10.0.0.9-10.0.0.1", "10.0.0.1-::1",
                                  "10.0.0.1-10.0.0.x", "-bad-", "a..b"])
def test_bad_targets_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_target(text)


def test_names_refused_where_only_addresses_make_sense() -> None:
    with pytest.raises(UsageError, match="not a name"):
        parse_target("example.com", "--exclude", names_allowed=False)


def test_files_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "targets.txt"
    path.write_text("# office\n10.0.0.0/30, 10.0.1.1\n\nhost.example  # the printer\n")
    spec = parse_targets(expand_arguments([f"@{path}", "10.9.9.9"]))
    assert spec.names == ("host.example",)
    assert AddressSpace(spec.intervals).size == 6
    with pytest.raises(UsageError, match="cannot read targets file"):
        list(expand_arguments([f"@{tmp_path / 'missing.txt'}"]))


def test_exclusions_cut_holes() -> None:
    kept = subtract([(4, 0, 255)], [(4, 10, 19), (4, 250, 300), (6, 0, 1000)])
    assert kept == [(4, 0, 9), (4, 20, 249)]
    assert subtract([(4, 5, 5)], [(4, 0, 10)]) == []


def test_a_slash_eight_is_one_interval() -> None:
    space = AddressSpace([parse_target("10.0.0.0/8")])  # type: ignore[list-item]
    assert space.size == 1 << 24
    assert format_address(*space.address_at(space.size - 1)) == "10.255.255.255"
    assert len(space.intervals) == 1


intervals = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=8).map(
    lambda items: [(4, a, a + n) for a, n in items])


@given(intervals, intervals)
def test_subtract_matches_sets(keep: list[tuple[int, int, int]], cut: list[tuple[int, int, int]]) -> None:
    def members(ivs: list[tuple[int, int, int]]) -> set[int]:
        return {x for _, a, b in ivs for x in range(a, b + 1)}

    result = subtract(keep, cut)
    assert members(result) == members(keep) - members(cut)
    assert result == merge(result)  # sorted, disjoint, non-adjacent


@given(intervals.filter(bool), st.data())
def test_address_at_walks_the_addresses_in_order(ivs: list[tuple[int, int, int]],
                                                 data: st.DataObject) -> None:
    space = AddressSpace(ivs)
    ordered = sorted({x for _, a, b in ivs for x in range(a, b + 1)})
    assert space.size == len(ordered)
    index = data.draw(st.integers(0, space.size - 1))
    assert space.address_at(index) == (4, ordered[index])
    assert list(space)[index] == str(ipaddress.IPv4Address(ordered[index]))


def test_ports() -> None:
    assert parse_ports("443,80,8000-8002,80") == (80, 443, 8000, 8001, 8002)
    assert top_ports(3) == tuple(sorted(TOP_PORTS[:3]))
    assert port_list("22", 2) == (22, 80, 443) or port_list("22", 2) == tuple(sorted({22, *TOP_PORTS[:2]}))
    for bad in ("0", "65536", "80,", "9-1", "http", "٨٠"):
        with pytest.raises(UsageError):
            parse_ports(bad)
    with pytest.raises(UsageError, match="name the ports"):
        port_list(None, None)
