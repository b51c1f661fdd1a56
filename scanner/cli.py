"""The command line: `scanner check`, `scanner proxy`, `scanner lab`, `scanner demo`.

Exit statuses: 0 all ok, 1 an endpoint failed, 2 bad usage or input,
3 internal error, 4 regressed since --baseline, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import IO

import anyio

from scanner import __version__
from scanner.argtypes import number_in, whole_in
from scanner.catalog import bundled_names, load_catalog, parse_endpoint_flag, select_tags
from scanner.catalog_cli import add_catalog_parser, cmd_catalog
from scanner.certs import Trust, load_roots, public_roots, system_roots
from scanner.config import load_config, overlay, parse_size
from scanner.discovery.command import (
    add_analyzer_arguments,
    add_proxy_arguments,
    add_source_arguments,
    analyzer_routes,
    cmd_proxy,
    sensor_routes,
)
from scanner.drift import (
    REGRESSIONS,
    DriftCollector,
    DriftKind,
    Key,
    Snapshot,
    compare,
    counts,
    load_baseline,
)
from scanner.ecs import line_style
from scanner.engine import run_check
from scanner.errors import UsageError, for_humans
from scanner.exits import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REGRESSED,
    Parser,
    guarded,
)
from scanner.limits import fit_concurrency, raise_nofile_limit
from scanner.models import DIRECT, Route, RouteKind
from scanner.output import ConsoleWriter, Fanout, JsonlWriter, Writer, colour_wanted
from scanner.plan import CheckPlan, RoutePlan, StageOptions
from scanner.probes.dns import parse_dns_server
from scanner.progress import make_progress, same_terminal
from scanner.reports import ReportWriter, check_writable
from scanner.rotation import open_output
from scanner.routes import env_proxies, parse_proxy_url
from scanner.runtime import run
from scanner.stages import fds_per_probe
from scanner.syslog import DEFAULT_SOCKET, SyslogWriter

_Parser = Parser


def warn(message: str) -> None:
    sys.stderr.write(f"scanner: warning: {for_humans(message)}\n")
    sys.stderr.flush()


_positive_float = number_in(0.001, 3600, "seconds")
_positive_int = whole_in(1, 100_000)


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _keep(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 0 to 1000")
    return int(text)


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("catalog", nargs="?",
                        help=f"a bundled catalog ({', '.join(bundled_names())}) or a TOML file")
    parser.add_argument("--endpoint", action="append", default=[], metavar="HOST:PORT",
                        help="an ad-hoc endpoint (repeatable; HOST:PORT[,PORT...])")
    parser.add_argument("--direct", action="store_true", help="check the direct route")
    parser.add_argument("--proxy", action="append", default=[], metavar="URL",
                        help="check through this proxy (repeatable): http://[user:pass@]host:port, "
                             "socks5://, socks5h://, socks4://")
    parser.add_argument("--dns-server", action="append", default=[], metavar="IP[:PORT]",
                        help="DNS server to ask (repeatable; default: the system's configuration)")
    parser.add_argument("--timeout", type=_positive_float, default=3.0, metavar="SECONDS",
                        help="time limit of each stage (default: 3)")
    parser.add_argument("--concurrency", type=_positive_int, default=256, metavar="N",
                        help="probes in flight at once (default: 256)")
    parser.add_argument("--format", choices=("jsonl", "console"), default=None,
                        help="stdout format (default: console on a terminal, else jsonl)")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON lines to FILE")
    parser.add_argument("--output-append", action="store_true",
                        help="append to the --output file instead of replacing it")
    parser.add_argument("--output-max-bytes", type=_size, metavar="SIZE",
                        help="rotate the --output file before it grows past SIZE (bytes, or 512K, 10M, "
                             "1G): FILE becomes FILE.1, FILE.1 becomes FILE.2 ...")
    parser.add_argument("--output-keep", type=_keep, default=5, metavar="K",
                        help="rotated files to keep, FILE.1 to FILE.K (default: 5)")
    parser.add_argument("--junit", metavar="FILE",
                        help="write a JUnit XML report (one testcase per endpoint x route)")
    parser.add_argument("--prometheus", metavar="FILE",
                        help="write a node_exporter textfile (written atomically)")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="only the catalog's endpoints with this tag (repeatable: any of them)")
    parser.add_argument("--html", metavar="FILE",
                        help="write a self-contained HTML page: endpoints x routes coloured by state")
    parser.add_argument("--log-style", choices=("native", "ecs"), default="native",
                        help="field names of the JSON lines: scanner's own (default) or Elastic "
                             "Common Schema")
    parser.add_argument("--syslog", action="store_true",
                        help="also send every JSON line to the local syslog or journald")
    parser.add_argument("--syslog-socket", metavar="PATH", default=DEFAULT_SOCKET,
                        help=f"the syslog Unix datagram socket (default: {DEFAULT_SOCKET})")
    parser.add_argument("--syslog-format", choices=("rfc3164", "rfc5424"), default="rfc3164",
                        help="the syslog header (default: rfc3164, as syslog(3) writes it locally)")
    parser.add_argument("--baseline", metavar="FILE",
                        help="compare with an earlier JSONL run: drift records, exit 4 on regression")
    parser.add_argument("--no-progress", action="store_true",
                        help="no live progress line on stderr (shown only when stderr is a terminal)")
    parser.add_argument("--config", metavar="FILE",
                        help="read settings from a TOML file (flags override it; see the README)")
    parser.set_defaults(more_catalogs=[])  # a config's second and later catalogs
    add_stage_arguments(parser)
    add_source_arguments(parser)  # --winhttp, --pac, --wpad, --dns-suffix: WinHTTP's own route
    add_analyzer_arguments(parser)  # --analyzer, --named-proxy: the client analyzer's paths


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the stages after the connect (TLS, HTTP, middlebox)."""
    parser.add_argument("--ca-file", metavar="PEM",
                        help="verify TLS against these roots instead of the system trust store")
    parser.add_argument("--public-roots", metavar="PEM",
                        help="the public roots that tell a private (inspection) root from a public "
                             "one (default: certifi's bundle)")
    parser.add_argument("--verify", action="store_true",
                        help="count a port as reached only after a TLS handshake or an HTTP answer")
    parser.add_argument("--no-middlebox-check", action="store_true",
                        help="skip the control-port check that spots middleboxes accepting every port")


def stage_options(args: argparse.Namespace) -> StageOptions:
    trust = None
    if args.ca_file or args.public_roots:
        store = load_roots(args.ca_file) if args.ca_file else system_roots()
        public = load_roots(args.public_roots, "--public-roots") if args.public_roots else public_roots()
        trust = Trust(store, public)
    return StageOptions(trust, args.verify, not args.no_middlebox_check)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="scanner", description=(
        "Verify that a service's endpoints are reachable: DNS, direct TCP, and through "
        "HTTP and SOCKS proxies, one structured log line per result."))
    parser.add_argument("--version", action="version", version=f"scanner {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    check = sub.add_parser("check", help="check every endpoint of a catalog on every route")
    add_check_arguments(check)
    from scanner.sweep.cli import add_sweep_arguments  # noqa: PLC0415

    add_sweep_arguments(sub.add_parser("sweep", help="probe subnets x ports at a high rate, "
                                       "sharded and resumable, directly or through a proxy"))
    lab = sub.add_parser("lab", help="run an offline lab (DNS, listeners, proxies) on loopback")
    lab.add_argument("catalog", nargs="?", default="defender-atp")
    lab.add_argument("--fault", action="append", default=[], metavar="HOST=FAULT",
                     help="inject a fault: nxdomain, closed, filtered, denied, auth, delay:MS")
    lab.add_argument("--proxy-auth", metavar="USER:PASS",
                     help="make the lab's HTTP proxy require these Basic credentials")
    add_proxy_arguments(sub.add_parser("proxy", help="explain which proxy each source picks for URLs"))
    add_catalog_parser(sub)
    demo = sub.add_parser("demo", help="start the lab in-process and check defender-atp through it")
    demo.add_argument("--format", choices=("jsonl", "console"), default=None,
                      help="stdout format (default: console)")
    demo.add_argument("--output", metavar="FILE", help="also write the JSON lines to FILE")
    return parser


def build_plan(args: argparse.Namespace, environ: dict[str, str]) -> CheckPlan:
    if not args.catalog and not args.endpoint:
        raise UsageError("name a catalog or give at least one --endpoint "
                         f"(bundled catalogs: {', '.join(bundled_names())})")
    tags = tuple(args.tag)
    catalog = select_tags(load_catalog(args.catalog), tags) if args.catalog else None
    more = tuple(select_tags(load_catalog(spec), tags, required=False)
                 for spec in args.more_catalogs)
    extra = tuple(parse_endpoint_flag(text) for text in args.endpoint)
    explicit: list[Route] = [DIRECT] if args.direct else []
    explicit += [parse_proxy_url(text) for text in args.proxy]
    explicit = list(dict.fromkeys(explicit))  # a route given twice is probed once
    if args.named_proxy is not None and not args.analyzer:
        raise UsageError("--named-proxy is one of --analyzer's paths: add --analyzer")
    dns_servers = tuple(parse_dns_server(text) for text in args.dns_server)
    targets = CheckPlan(catalog, extra, RoutePlan((), None), dns_servers, args.timeout, 1,
                        more_catalogs=more)
    pairs = [(e.host, p) for _, e in targets.endpoints() for p in e.ports]
    if args.analyzer:  # --direct is the analyzer's "proxy disabled" path, always there
        proxies = [r for r in explicit if r.kind is not RouteKind.DIRECT]
        paths = analyzer_routes(args, pairs, dns_servers, proxies)
        return CheckPlan(catalog, extra, RoutePlan((), None, paths=paths), dns_servers,
                         args.timeout, args.concurrency, stage_options(args), more)
    sensor = sensor_routes(args, pairs, dns_servers)
    env = None if explicit or sensor else env_proxies(environ)
    return CheckPlan(catalog, extra, RoutePlan(tuple(explicit), env, sensor), dns_servers,
                     args.timeout, args.concurrency, stage_options(args), more)


def make_writers(args: argparse.Namespace, plan: CheckPlan) -> list[Writer]:
    fmt = args.format or ("console" if sys.stdout.isatty() else "jsonl")
    style = line_style(getattr(args, "log_style", "native"))
    writers: list[Writer] = []
    # `scanner demo` has none of the --output-* and --no-progress flags
    append, max_bytes = getattr(args, "output_append", False), getattr(args, "output_max_bytes", None)
    if args.output is None and (append or max_bytes is not None):
        flag = "--output-append" if append else "--output-max-bytes"
        raise UsageError(f"{flag} needs --output FILE (or output.file in the config)")
    progress = make_progress(sys.stderr, plan.count(), wanted=not getattr(args, "no_progress", False))
    if progress is not None:
        writers.append(progress)  # first: it is erased before the others write the summary
    if fmt == "console":
        width = max((len(e.host) + 6 for _, e in plan.endpoints()), default=20)
        routes = {r.label for p in plan.probes() for r in (p.route,)}
        route_width = max((len(r) for r in routes), default=6)
        stream: IO[str] = sys.stdout
        if progress is not None and same_terminal(sys.stdout, sys.stderr):
            stream = progress.proxy(sys.stdout)
        writers.append(ConsoleWriter(stream, width, route_width, colour_wanted(sys.stdout)))
    else:
        writers.append(JsonlWriter(sys.stdout.buffer, style))
    if args.output is not None:
        writers.append(JsonlWriter(open_output(args.output, append, max_bytes,
                                               getattr(args, "output_keep", 5)), style))
    if getattr(args, "syslog", False):
        writers.append(SyslogWriter.open(args.syslog_socket, args.syslog_format, style))
    for flag, kind in (("junit", "junit"), ("prometheus", "prometheus"), ("html", "html")):
        path = getattr(args, flag, None)
        if path is not None:
            writers.append(ReportWriter(check_writable(path, f"--{flag}"), kind))
    return writers


async def check_until_signal(plan: CheckPlan, out: Fanout) -> bool:
    """Run the plan, records streaming to `out`; True when SIGINT/SIGTERM cut it short."""
    interrupted = False
    async with anyio.create_task_group() as tg:

        async def watch_signals() -> None:
            nonlocal interrupted
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted = True
                    tg.cancel_scope.cancel()
                    return

        if sys.platform != "win32":
            tg.start_soon(watch_signals)
        await run_check(plan, out.record, out.range_finding)
        tg.cancel_scope.cancel()
    return interrupted


def finish(out: Fanout, elapsed_s: float, interrupted: bool,
           baseline: dict[Key, Snapshot] | None = None, seen: DriftCollector | None = None) -> int:
    """Write drift records (with a baseline), the summary, close the writers; the exit status."""
    regressed = False
    if baseline is not None and seen is not None:
        drifts = compare(baseline, seen.after)
        if interrupted:  # what was not probed has not been removed
            drifts = [d for d in drifts if d.kind is not DriftKind.REMOVED]
        for drift in drifts:
            out.event("drift", drift.fields())
        out.tally.drift = counts(drifts)
        regressed = any(d.kind in REGRESSIONS for d in drifts)
    out.summary(elapsed_s, interrupted)
    out.close()
    if interrupted:
        return EXIT_INTERRUPTED
    if regressed:
        return EXIT_REGRESSED
    return EXIT_OK if out.tally.failed == 0 else EXIT_FAILED


def execute_check(plan: CheckPlan, writers: list[Writer],
                  baseline: dict[Key, Snapshot] | None = None) -> int:
    seen = DriftCollector() if baseline is not None else None
    out = Fanout([*writers, seen] if seen is not None else writers)
    start = time.perf_counter()
    try:
        interrupted = run(partial(check_until_signal, plan, out))
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        out.close()  # the progress line goes, the files are closed
        raise
    return finish(out, time.perf_counter() - start, interrupted, baseline, seen)


def given_dests(argv: Sequence[str]) -> frozenset[str]:
    """The `scanner check` destinations set by flags in `argv` (not by their defaults)."""
    words = list(argv)
    rest = words[words.index("check") + 1:] if "check" in words else words
    probe = _Parser(prog="scanner check", add_help=False)
    add_check_arguments(probe)
    for action in probe._actions:  # no defaults: only what the words set is left
        action.default = argparse.SUPPRESS
    return frozenset(vars(probe.parse_args(rest))) - {"more_catalogs"}  # set by the config only


def with_config(args: argparse.Namespace, argv: Sequence[str], environ: Mapping[str, str]
                ) -> argparse.Namespace:
    """`args` over the --config file's settings: a flag given wins over the file."""
    if args.config is None:
        return args
    return overlay(args, load_config(args.config, environ), given_dests(argv))


def cmd_check(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    args = with_config(args, argv, os.environ)
    plan = build_plan(args, dict(os.environ))
    concurrency, warning = fit_concurrency(args.concurrency, raise_nofile_limit(),
                                           fds_per_probe(plan.stages.middlebox))
    if warning:
        warn(warning)
        plan = replace(plan, concurrency=concurrency)
    baseline = load_baseline(args.baseline) if args.baseline is not None else None
    return execute_check(plan, make_writers(args, plan), baseline)


def _dispatch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    if args.command == "check":
        return cmd_check(args, argv)
    if args.command == "proxy":
        return cmd_proxy(args, os.environ)
    if args.command == "catalog":
        return cmd_catalog(args)
    if args.command == "sweep":
        from scanner.sweep.cli import cmd_sweep  # noqa: PLC0415

        return cmd_sweep(args)
    from scanner.lab.cli import cmd_demo, cmd_lab  # noqa: PLC0415

    if args.command == "lab":
        return cmd_lab(args)
    return cmd_demo(args)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    return guarded(lambda: _dispatch(args, words))
