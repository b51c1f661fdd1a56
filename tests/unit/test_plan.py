"""What a run will probe: endpoints x ports x routes, de-duplicated, routes per host."""

from __future__ import annotations

from scanner.models import DIRECT, Catalog, Endpoint, Expectation, Probe, Route, RouteKind, RouteSource
from scanner.plan import CheckPlan, RoutePlan
from scanner.routes import DEFAULT_DIRECT, env_proxies

PROXY = Route(RouteKind.HTTP, "proxy.corp", 3128)
SOCKS = Route(RouteKind.SOCKS5H, "gw", 1080)
A = Endpoint("a.example.com", (443, 80))
B = Endpoint("b.example.com", (443,), Expectation.BLOCKED, note="must stay closed")
CATALOG = Catalog("mine", "", "", (A, B))


def plan(catalog: Catalog | None, extra: tuple[Endpoint, ...], routes: RoutePlan) -> CheckPlan:
    return CheckPlan(catalog, extra, routes, (), 5.0, 10)


def test_probes_order_and_count() -> None:
    check = plan(CATALOG, (), RoutePlan((DIRECT, PROXY), None))
    assert list(check.probes()) == [
        Probe("mine", A, 443, DIRECT),
        Probe("mine", A, 443, PROXY),
        Probe("mine", A, 80, DIRECT),
        Probe("mine", A, 80, PROXY),
        Probe("mine", B, 443, DIRECT),
        Probe("mine", B, 443, PROXY),
    ]
    assert check.count() == 6


def test_count_is_endpoints_times_ports_times_routes() -> None:
    endpoints = tuple(Endpoint(f"h{i}.example.com", (80, 443, 8443)) for i in range(7))
    check = plan(Catalog("big", "", "", endpoints), (), RoutePlan((DIRECT, PROXY, SOCKS), None))
    assert check.count() == 7 * 3 * 3
    assert len(set(check.probes())) == 7 * 3 * 3


def test_endpoint_flag_duplicate_of_catalog_is_not_probed_twice() -> None:
    extra = (
        Endpoint("a.example.com", (443, 8443)),  # 443 is in the catalog already
        Endpoint("b.example.com", (443,)),  # entirely a duplicate: dropped
        Endpoint("c.example.com", (80,)),
        Endpoint("c.example.com", (80, 81)),  # duplicates among the flags too
    )
    check = plan(CATALOG, extra, RoutePlan((DIRECT,), None))
    assert list(check.endpoints()) == [
        ("mine", A),
        ("mine", B),
        (None, Endpoint("a.example.com", (8443,))),
        (None, Endpoint("c.example.com", (80,))),
        (None, Endpoint("c.example.com", (81,))),
    ]
    assert [(p.catalog, p.endpoint.host, p.port) for p in check.probes()] == [
        ("mine", "a.example.com", 443),
        ("mine", "a.example.com", 80),
        ("mine", "b.example.com", 443),
        (None, "a.example.com", 8443),
        (None, "c.example.com", 80),
        (None, "c.example.com", 81),
    ]


def test_ad_hoc_endpoints_without_catalog() -> None:
    extra = (Endpoint("c.example.com", (80, 443)),)
    check = plan(None, extra, RoutePlan((), None))
    assert list(check.probes()) == [
        Probe(None, extra[0], 80, DEFAULT_DIRECT),
        Probe(None, extra[0], 443, DEFAULT_DIRECT),
    ]
    assert plan(None, (), RoutePlan((), None)).count() == 0


def test_route_plan_explicit_wins_over_env() -> None:
    env = env_proxies({"HTTPS_PROXY": "http://proxy.corp:3128"})
    assert RoutePlan((DIRECT, SOCKS), env).routes_for("a.example.com", 443) == (DIRECT, SOCKS)


def test_route_plan_without_anything_is_direct_by_default() -> None:
    routes = RoutePlan((), None).routes_for("a.example.com", 443)
    assert routes == (DEFAULT_DIRECT,)
    assert routes[0].source is RouteSource.DEFAULT


def test_route_plan_env_uses_no_proxy_per_host() -> None:
    env = env_proxies({"HTTPS_PROXY": "http://proxy.corp:3128", "http_proxy": "http://plain:3129",
                       "NO_PROXY": ".internal.example,10.0.0.0/8"})
    via_https = Route(RouteKind.HTTP, "proxy.corp", 3128, source=RouteSource.ENV)
    via_http = Route(RouteKind.HTTP, "plain", 3129, source=RouteSource.ENV)
    bypass = Route(RouteKind.DIRECT, source=RouteSource.ENV)
    catalog = Catalog("mixed", "", "", (
        Endpoint("a.example.com", (443, 80)),
        Endpoint("svc.internal.example", (443,)),
        Endpoint("10.1.2.3", (80,)),
    ))
    check = plan(catalog, (Endpoint("internal.example", (8443,)),), RoutePlan((), env))
    assert [(p.endpoint.host, p.port, p.route) for p in check.probes()] == [
        ("a.example.com", 443, via_https),
        ("a.example.com", 80, via_http),
        ("svc.internal.example", 443, bypass),
        ("10.1.2.3", 80, bypass),
        ("internal.example", 8443, bypass),
    ]


def test_several_catalogs_run_together_each_record_naming_its_own() -> None:
    other = Catalog("other", "", "", (
        Endpoint("a.example.com", (80, 8080)),  # 80 is in `mine` already: only 8080 is new
        B,  # entirely in `mine`: dropped
        Endpoint("d.example.com", (443,)),
    ))
    check = CheckPlan(CATALOG, (Endpoint("d.example.com", (443, 25)),), RoutePlan((DIRECT,), None), (),
                      5.0, 10, more_catalogs=(other,))
    assert check.catalogs == (CATALOG, other)
    assert [(p.catalog, p.endpoint.host, p.port) for p in check.probes()] == [
        ("mine", "a.example.com", 443),
        ("mine", "a.example.com", 80),
        ("mine", "b.example.com", 443),
        ("other", "a.example.com", 8080),
        ("other", "d.example.com", 443),
        (None, "d.example.com", 25),
    ]
    assert check.count() == 6
    assert CheckPlan(None, (A,), RoutePlan((), None), (), 5.0, 10).catalogs == ()
