"""`scanner lab` (run the lab until interrupted) and `scanner demo` (the main job, offline)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Mapping

import anyio

from scanner.catalog import load_catalog
from scanner.certs import Trust, load_roots
from scanner.cli import check_until_signal, finish, make_writers, warn
from scanner.errors import UsageError
from scanner.exits import EXIT_FAILED, EXIT_OK
from scanner.lab.lab import running_lab
from scanner.lab.netns import bring_loopback_up, in_private_netns, reexec_in_netns
from scanner.lab.zone import Fault, parse_fault
from scanner.models import DIRECT, ConnectStatus, Record, RouteKind
from scanner.output import Fanout
from scanner.plan import CheckPlan, RoutePlan, StageOptions
from scanner.routes import parse_proxy_url
from scanner.runtime import run


def _credentials(text: str | None) -> tuple[str, str] | None:
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise UsageError("--proxy-auth expects USER:PASS")
    return user, password


def cmd_lab(args: argparse.Namespace) -> int:
    catalog = load_catalog(args.catalog)
    faults = [parse_fault(text) for text in args.fault]
    credentials = _credentials(args.proxy_auth)
    if in_private_netns():
        bring_loopback_up()

    async def main() -> None:
        async with running_lab(catalog, faults, credentials=credentials) as lab:
            flags = lab.check_flags()
            if credentials:  # show where credentials go, never the real ones
                flags[flags.index(lab.http_proxy)] = lab.http_proxy.replace("://", "://USER:PASS@")
            sys.stdout.write(f"lab for catalog {catalog.name!r} is up on loopback:\n")
            for host in lab.hosts:
                faults_text = ",".join(sorted(f.value for f in host.faults)) or "-"
                sys.stdout.write(f"  {host.name:<45} {host.address:<13} faults: {faults_text}\n")
            pinned = any(e.checks.pins for e in catalog.endpoints)
            spec = lab.catalog_file if pinned else args.catalog
            sys.stdout.write("\ncheck it with:\n  scanner check "
                             f"{shlex.quote(spec)} {shlex.join(flags)}\n\n")
            if pinned:
                sys.stdout.write(f"(a copy of {args.catalog} whose pins name the lab root, which "
                                 f"signs the lab's certificates: {args.catalog}'s own pins would "
                                 "report every pinned endpoint intercepted here)\n\n")
            sys.stdout.write("Ctrl-C stops the lab.\n")
            sys.stdout.flush()
            await anyio.sleep_forever()

    try:
        run(main)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


DEMO_FAULTS = {
    "eu.vortex-win.data.microsoft.com": Fault.NXDOMAIN,
    "sevillegwneu.microsoft.com": Fault.CLOSED,
    "sevillegwweu.microsoft.com": Fault.FILTERED,
    "crl.microsoft.com": Fault.DENIED,
    "www.microsoft.com": Fault.AUTH,
    "sevillegwcus.microsoft.com": Fault.INTERCEPT,  # connects fine; TLS through the proxies does not
}

_UNREACHED = {RouteKind.DIRECT: ConnectStatus.SKIPPED, RouteKind.HTTP: ConnectStatus.PROXY_ERROR,
              RouteKind.SOCKS5H: ConnectStatus.PROXY_ERROR}


def expected_state(fault: Fault | None, route: RouteKind) -> ConnectStatus:
    """What the demo must report for a host with `fault` on a route of kind `route`."""
    direct = route is RouteKind.DIRECT
    reached = ConnectStatus.LISTENING if direct else ConnectStatus.TUNNEL
    if fault is None:
        return reached
    if fault is Fault.NXDOMAIN:
        return _UNREACHED[route]
    if fault is Fault.CLOSED:
        return ConnectStatus.NOT_LISTENING if direct else ConnectStatus.PROXY_ERROR
    if fault is Fault.FILTERED:
        return ConnectStatus.FILTERED if direct else ConnectStatus.PROXY_ERROR
    if fault is Fault.DENIED:
        return reached if direct else ConnectStatus.DENIED
    if fault is Fault.AUTH:
        return ConnectStatus.AUTH_REQUIRED if route is RouteKind.HTTP else reached
    return reached


def demo_mismatches(records: list[Record], faults: Mapping[str, Fault]) -> list[str]:
    problems = []
    for record in records:
        host, kind = record.probe.endpoint.host, record.probe.route.kind
        want = expected_state(faults.get(host), kind)
        if record.connect.status is not want:
            problems.append(f"{host}:{record.probe.port} via {record.probe.route.display}: "
                            f"got {record.connect.status.value}, expected {want.value}")
    return problems


def cmd_demo(args: argparse.Namespace) -> int:
    if not in_private_netns():
        status = reexec_in_netns(["demo", *sys.argv[2:]])
        if status is not None:
            return status
        warn("no private network namespace available: the demo runs on this host's loopback")
    else:
        bring_loopback_up()
    catalog = load_catalog("defender-atp")
    faults = [(host, fault, 0) for host, fault in DEMO_FAULTS.items()]
    records: list[Record] = []
    if args.format is None:
        args.format = "console"  # the demo is for people; --format jsonl for machines

    async def main() -> bool:
        async with running_lab(catalog, faults, proxy_connect_timeout=0.5) as lab:
            # the lab's certificates chain to the lab root, not to Microsoft's: check its copy
            # of the catalog, pinned to that root
            pinned = load_catalog(lab.catalog_file)
            routes = (DIRECT, parse_proxy_url(lab.http_proxy), parse_proxy_url(lab.socks_proxy))
            trust = Trust(load_roots(lab.ca_file), load_roots(lab.public_roots, "--public-roots"))
            plan = CheckPlan(pinned, (), RoutePlan(routes, None), (lab.dns_server,), 1.5, 64,
                             StageOptions(trust))
            sys.stderr.write(
                "demo: a lab on loopback answers for the defender-atp catalog, with faults: "
                + ", ".join(f"{h} {f.value}" for h, f in DEMO_FAULTS.items())
                + f"\ndemo: scanner check {shlex.quote(lab.catalog_file)} {shlex.join(lab.check_flags())}"
                + "\ndemo: (the lab's copy of defender-atp: its pins name the lab root, not Microsoft's)\n\n")
            out = Fanout(make_writers(args, plan))
            original = out.record

            def keep(record: Record) -> None:
                records.append(record)
                original(record)

            out.record = keep  # type: ignore[method-assign]
            start = time.perf_counter()
            interrupted = await check_until_signal(plan, out)
            finish(out, time.perf_counter() - start, interrupted)
            return interrupted

    interrupted = run(main)
    if interrupted:
        return 130
    problems = demo_mismatches(records, DEMO_FAULTS)
    for problem in problems:
        sys.stderr.write(f"demo: unexpected result: {problem}\n")
    if problems:
        return EXIT_FAILED
    sys.stderr.write(f"\ndemo: all {len(records)} results are what the injected faults predict\n")
    return EXIT_OK
