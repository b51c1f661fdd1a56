"""The command line: `scanner check`, `scanner lab`, `scanner demo`.

Exit statuses: 0 all ok, 1 an endpoint failed, 2 bad usage or input,
3 internal error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import BinaryIO, NoReturn

import anyio

from scanner import __version__
from scanner.catalog import bundled_names, load_catalog, parse_endpoint_flag
from scanner.engine import run_check
from scanner.errors import ScannerError, UsageError
from scanner.limits import fit_concurrency, raise_nofile_limit
from scanner.models import DIRECT, Route
from scanner.output import ConsoleWriter, Fanout, JsonlWriter, Writer, colour_wanted
from scanner.plan import CheckPlan, RoutePlan
from scanner.probes.dns import parse_dns_server
from scanner.routes import env_proxies, parse_proxy_url
from scanner.runtime import run

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"scanner: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


def warn(message: str) -> None:
    sys.stderr.write(f"scanner: warning: {message}\n")
    sys.stderr.flush()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 3600 seconds")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number from 1 to 100000")
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
    demo = sub.add_parser("demo", help="start the lab in-process and check defender-atp through it")
    demo.add_argument("--format", choices=("jsonl", "console"), default=None,
                      help="stdout format (default: console)")
    demo.add_argument("--output", metavar="FILE", help="also write the JSON lines to FILE")
    return parser


def build_plan(args: argparse.Namespace, environ: dict[str, str]) -> CheckPlan:
    if not args.catalog and not args.endpoint:
        raise UsageError("name a catalog or give at least one --endpoint "
                         f"(bundled catalogs: {', '.join(bundled_names())})")
    catalog = load_catalog(args.catalog) if args.catalog else None
    extra = tuple(parse_endpoint_flag(text) for text in args.endpoint)
    explicit: list[Route] = [DIRECT] if args.direct else []
    explicit += [parse_proxy_url(text) for text in args.proxy]
    env = None if explicit else env_proxies(environ)
    dns_servers = tuple(parse_dns_server(text) for text in args.dns_server)
    return CheckPlan(catalog, extra, RoutePlan(tuple(explicit), env), dns_servers,
                     args.timeout, args.concurrency)


def _open_output(path: str) -> BinaryIO:
    try:
        return open(path, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None


def make_writers(args: argparse.Namespace, plan: CheckPlan) -> list[Writer]:
    fmt = args.format or ("console" if sys.stdout.isatty() else "jsonl")
    writers: list[Writer] = []
    if fmt == "console":
        width = max((len(e.host) + 6 for _, e in plan.endpoints()), default=20)
        routes = {r.display for p in plan.probes() for r in (p.route,)}
        route_width = max((len(r) for r in routes), default=6)
        writers.append(ConsoleWriter(sys.stdout, width, route_width, colour_wanted(sys.stdout)))
    else:
        writers.append(JsonlWriter(sys.stdout.buffer))
    if args.output:
        writers.append(JsonlWriter(_open_output(args.output)))
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
        await run_check(plan, out.record)
        tg.cancel_scope.cancel()
    return interrupted


def finish(out: Fanout, elapsed_s: float, interrupted: bool) -> int:
    """Write the summary and close the writers; returns the exit status."""
    out.summary(elapsed_s, interrupted)
    out.close()
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if out.tally.failed == 0 else EXIT_FAILED


def execute_check(plan: CheckPlan, writers: list[Writer]) -> int:
    out = Fanout(writers)
    start = time.perf_counter()
    try:
        interrupted = run(partial(check_until_signal, plan, out))
    except KeyboardInterrupt:
        interrupted = True
    return finish(out, time.perf_counter() - start, interrupted)


def cmd_check(args: argparse.Namespace) -> int:
    plan = build_plan(args, dict(os.environ))
    concurrency, warning = fit_concurrency(args.concurrency, raise_nofile_limit())
    if warning:
        warn(warning)
        plan = CheckPlan(plan.catalog, plan.extra, plan.routes, plan.dns_servers, plan.timeout,
                         concurrency)
    return execute_check(plan, make_writers(args, plan))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "sweep":
            from scanner.sweep.cli import cmd_sweep  # noqa: PLC0415

            return cmd_sweep(args)
        from scanner.lab.cli import cmd_demo, cmd_lab  # noqa: PLC0415

        if args.command == "lab":
            return cmd_lab(args)
        return cmd_demo(args)
    except ScannerError as exc:
        sys.stderr.write(f"scanner: error: {exc.message}\n")
        return exc.exit_status
    except BrokenPipeError:
        # the reader went away (`scanner check ... | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # no traceback by default: it could carry a proxy password
        if os.environ.get("SCANNER_DEBUG") == "1":
            raise
        sys.stderr.write(f"scanner: internal error: {type(exc).__name__} "
                         "(please report it; run with the same flags to reproduce)\n")
        return EXIT_INTERNAL
