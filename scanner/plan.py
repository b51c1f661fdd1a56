"""What a run will do: the endpoints, the routes, the limits. Pure, no I/O.

Probes are generated lazily from the plan, so however long the list, the
engine only ever holds a bounded number of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from scanner.certs import Trust
from scanner.models import Catalog, Endpoint, Probe, Route
from scanner.routes import DEFAULT_DIRECT, EnvProxies


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Either the explicit routes (`--direct`, `--proxy`), or the environment's choice;
    with `--winhttp`/`--pac`/`--wpad`, WinHTTP's route beside the explicit ones;
    with `--analyzer`, the client analyzer's paths alone."""

    explicit: tuple[Route, ...]
    env: EnvProxies | None
    sensor: Mapping[tuple[str, int], Route] = field(default_factory=dict)  # WinHTTP's route, if asked
    # --analyzer: every (host, port)'s paths, each its own route; replaces everything above
    paths: Mapping[tuple[str, int], tuple[Route, ...]] | None = None

    def routes_for(self, host: str, port: int) -> tuple[Route, ...]:
        if self.paths is not None:
            return self.paths[(host, port)]
        chosen = self.sensor.get((host, port))
        if chosen is not None:
            return (*self.explicit, chosen)
        if self.explicit:
            return self.explicit
        if self.env is not None:
            return (self.env.route_for(host, port),)
        return (DEFAULT_DIRECT,)


@dataclass(frozen=True, slots=True)
class StageOptions:
    """The stages after the connect: trust material (None: the system store and certifi's
    public roots), --verify, and the middlebox check."""

    trust: Trust | None = None
    verify: bool = False
    middlebox: bool = True


@dataclass(frozen=True, slots=True)
class CheckPlan:
    catalog: Catalog | None
    extra: tuple[Endpoint, ...]  # --endpoint, outside any catalog
    routes: RoutePlan
    dns_servers: tuple[str, ...]  # empty: the system's resolver configuration
    timeout: float
    concurrency: int
    stages: StageOptions = StageOptions()
    more_catalogs: tuple[Catalog, ...] = ()  # run in the same run (a config's `catalogs`)

    def endpoints(self) -> Iterator[tuple[str | None, Endpoint]]:
        """Each catalog's endpoints, then the ad-hoc ones; a host:port is probed once, under
        the first catalog that lists it."""
        seen: set[tuple[str, int]] = set()
        for catalog in self.catalogs:
            for endpoint in catalog.endpoints:
                ports = tuple(p for p in endpoint.ports if (endpoint.host, p) not in seen)
                seen.update((endpoint.host, port) for port in ports)
                if ports == endpoint.ports:
                    yield catalog.name, endpoint
                elif ports:
                    yield catalog.name, replace(endpoint, ports=ports)
        for endpoint in self.extra:
            ports = tuple(p for p in endpoint.ports if (endpoint.host, p) not in seen)
            seen.update((endpoint.host, port) for port in ports)
            if ports:
                yield None, Endpoint(endpoint.host, ports, endpoint.expect)

    @property
    def catalogs(self) -> tuple[Catalog, ...]:
        first = (self.catalog,) if self.catalog is not None else ()
        return (*first, *self.more_catalogs)

    def probes(self) -> Iterator[Probe]:
        for catalog_name, endpoint in self.endpoints():
            for port in endpoint.ports:
                for route in self.routes.routes_for(endpoint.host, port):
                    yield Probe(catalog_name, endpoint, port, route)

    def count(self) -> int:
        return sum(1 for _ in self.probes())
