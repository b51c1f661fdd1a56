"""The lab's world as data: faults, loopback addresses, hosts."""

from __future__ import annotations

import pytest

from scanner.errors import UsageError
from scanner.lab.zone import (
    FAULT_HELP,
    Fault,
    LabHost,
    by_name,
    dns_records,
    lab_address,
    parse_fault,
    plan_hosts,
)
from scanner.models import Catalog, Endpoint


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("host=nxdomain", ("host", Fault.NXDOMAIN, 0)),
        ("crl.microsoft.com=closed", ("crl.microsoft.com", Fault.CLOSED, 0)),
        ("a.example=filtered", ("a.example", Fault.FILTERED, 0)),
        ("a.example=denied", ("a.example", Fault.DENIED, 0)),
        ("a.example=auth", ("a.example", Fault.AUTH, 0)),
        ("host=delay:250", ("host", Fault.DELAY, 250)),
        ("host=delay:1", ("host", Fault.DELAY, 1)),
        ("host=delay:60000", ("host", Fault.DELAY, 60000)),
        ("  Host.Example.COM = NXDOMAIN ", ("host.example.com", Fault.NXDOMAIN, 0)),
        ("HOST=Delay:0250", ("host", Fault.DELAY, 250)),
    ],
)
def test_parse_fault_good(text: str, parsed: tuple[str, Fault, int]) -> None:
    assert parse_fault(text) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("host=delay:0", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay:60001", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay:", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay:-5", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay:1.5", "expected delay:MS with MS from 1 to 60000"),
        ("host=delay:\u00b2", "expected delay:MS with MS from 1 to 60000"),
        ("host=bogus", f"unknown fault 'bogus' ({FAULT_HELP})"),
        ("host=closed:5", "closed takes no argument"),
        ("host=nxdomain:x", "nxdomain takes no argument"),
        ("=nxdomain", f"expected HOST=FAULT ({FAULT_HELP})"),
        ("host", f"expected HOST=FAULT ({FAULT_HELP})"),
        ("host=", f"expected HOST=FAULT ({FAULT_HELP})"),
        ("", f"expected HOST=FAULT ({FAULT_HELP})"),
        ("bad host=closed", "host name contains white space"),
        ("-bad=closed", "invalid label '-bad' in host name"),
    ],
)
def test_parse_fault_bad(text: str, problem: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_fault(text)
    assert info.value.message == f"--fault {text!r}: {problem}"


def test_fault_help_lists_every_fault() -> None:
    assert FAULT_HELP == ("nxdomain, closed, filtered, denied, auth, delay:MS, expired, wrong_host, "
                          "intercept, block_page, accept_all, garbage, silent, endless_header")
    assert [f.value for f in Fault] == ["nxdomain", "closed", "filtered", "denied", "auth", "delay",
                                        "expired", "wrong_host", "intercept", "block_page",
                                        "accept_all", "garbage", "silent", "endless_header"]


@pytest.mark.parametrize(
    ("index", "address"),
    [
        (0, "127.0.1.1"),
        (1, "127.0.1.2"),
        (249, "127.0.1.250"),
        (250, "127.0.2.1"),
        (499, "127.0.2.250"),
        (500, "127.0.3.1"),
        (250 * 254 - 1, "127.0.254.250"),
    ],
)
def test_lab_address(index: int, address: str) -> None:
    assert lab_address(index) == address


@pytest.mark.parametrize("index", [-1, 250 * 254])
def test_lab_address_out_of_range(index: int) -> None:
    with pytest.raises(UsageError) as info:
        lab_address(index)
    assert info.value.message == "the lab holds at most 63,500 hosts"


def test_lab_addresses_are_distinct_and_skip_0_and_255() -> None:
    addresses = [lab_address(i) for i in range(250 * 254)]
    assert len(set(addresses)) == len(addresses)
    assert not any(a.endswith((".0", ".255")) for a in addresses)


CATALOG = Catalog("lab", "", "", (
    Endpoint("a.example", (443,)),
    Endpoint("b.example", (80, 443)),
    Endpoint("c.example", (443,), wildcard="*.example"),
))


def test_plan_hosts_attaches_faults() -> None:
    faults = [parse_fault("b.example=nxdomain"), parse_fault("b.example=delay:250"),
              parse_fault("c.example=denied")]
    hosts = plan_hosts(CATALOG, faults)
    assert hosts == (
        LabHost("a.example", "127.0.1.1", (443,), frozenset(), 0),
        LabHost("b.example", "127.0.1.2", (80, 443), frozenset({Fault.NXDOMAIN, Fault.DELAY}), 250),
        LabHost("c.example", "127.0.1.3", (443,), frozenset({Fault.DENIED}), 0),
    )
    assert dns_records(hosts) == (
        {"a.example": ["127.0.1.1"], "b.example": ["127.0.1.2"], "c.example": ["127.0.1.3"]},
        {"b.example": "nxdomain"},
    )
    assert by_name(hosts)["c.example"] is hosts[2]
    assert sorted(by_name(hosts)) == ["a.example", "b.example", "c.example"]


def test_plan_hosts_without_faults() -> None:
    assert [h.faults for h in plan_hosts(CATALOG)] == [frozenset()] * 3


def test_plan_hosts_rejects_a_fault_outside_the_catalog() -> None:
    with pytest.raises(UsageError) as info:
        plan_hosts(CATALOG, [parse_fault("a.example=closed"), parse_fault("z.example=closed"),
                             parse_fault("y.example=auth")])
    assert info.value.message == "--fault names 'y.example', which is not in catalog 'lab'"


def test_every_host_takes_accept_all_only() -> None:
    assert parse_fault("*=accept_all") == ("*", Fault.ACCEPT_ALL, 0)
    with pytest.raises(UsageError, match="only accept_all applies to every host"):
        parse_fault("*=closed")
    catalog = Catalog("c", "", "", (Endpoint("a.test", (80,)), Endpoint("b.test", (443,))))
    hosts = plan_hosts(catalog, [("*", Fault.ACCEPT_ALL, 0), ("b.test", Fault.EXPIRED, 0)])
    assert [h.faults for h in hosts] == [frozenset({Fault.ACCEPT_ALL}),
                                          frozenset({Fault.ACCEPT_ALL, Fault.EXPIRED})]
