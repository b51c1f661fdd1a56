"""`scanner sweep`: its flags, and turning them into a job for the runner."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from functools import partial
from pathlib import Path

import anyio
import orjson

from scanner.argtypes import number_in, whole_in
from scanner.errors import OutputError, UsageError
from scanner.names import is_ip_literal
from scanner.permutation import Shard, Span, parse_shard, random_seed
from scanner.ports import TOP_PORTS, port_list
from scanner.routes import parse_proxy_url
from scanner.runtime import run
from scanner.sweep.plan import WorkerPlan
from scanner.sweep.records import console_line
from scanner.sweep.runner import SweepJob, make_state_writer, run_job, summary_bytes, write_all
from scanner.sweep.state import fingerprint, load_state
from scanner.targets import MAX_SPACE, AddressSpace, Interval, expand_arguments, parse_targets, subtract

EXIT_OK, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 2, 3, 130


_int_in = whole_in
_seconds = number_in(0.001, 3600, "seconds")
_rate = number_in(0, 10_000_000, "probes per second", " (no limit)")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", metavar="TARGET",
                        help="CIDR, A-B range, address, host name, @FILE, or - (stdin)")
    parser.add_argument("-p", "--ports", metavar="SPEC", help="ports: 80,443,8000-8100")
    parser.add_argument("--top-ports", type=_int_in(1, len(TOP_PORTS)), metavar="N",
                        help=f"the N most common TCP ports (bundled list of {len(TOP_PORTS)})")
    parser.add_argument("--exclude", action="append", default=[], metavar="CIDR",
                        help="leave these addresses out (repeatable; CIDR, range or address)")
    parser.add_argument("--exclude-file", action="append", default=[], metavar="FILE",
                        help="leave out the addresses listed in FILE (repeatable)")
    parser.add_argument("--all", action="store_true",
                        help="report every state, not only listening (or tunnel through a proxy)")
    parser.add_argument("--seed", type=_int_in(0, (1 << 63) - 1), metavar="N",
                        help="fix the pseudo-random order (default: random, shown in the summary)")
    parser.add_argument("--shard", metavar="K/N",
                        help="sweep part K of N (1 <= K <= N; same --seed on every part), or auto "
                             "(K from JOB_COMPLETION_INDEX + 1, N from SCANNER_SHARDS)")
    parser.add_argument("--state", metavar="FILE",
                        help="save the progress here, periodically and when stopped")
    parser.add_argument("--resume", metavar="FILE",
                        help="continue the sweep saved in FILE (same targets and ports); keeps saving there")
    parser.add_argument("--rate", type=_rate, default=0.0, metavar="N",
                        help="probes per second over all workers (default: 0, no limit)")
    parser.add_argument("--concurrency", type=_int_in(1, 1_000_000), default=1024, metavar="N",
                        help="connects in flight over all workers (default: 1024; lowered to fit "
                             "the file-descriptor limit)")
    parser.add_argument("--timeout", type=_seconds, default=1.0, metavar="SECONDS",
                        help="connect time limit (default: 1)")
    parser.add_argument("--retries", type=_int_in(0, 10), default=0, metavar="N",
                        help="extra tries for filtered (no answer) results only (default: 0)")
    parser.add_argument("--workers", type=_int_in(1, 256), default=os.cpu_count() or 1, metavar="N",
                        help="worker processes (default: the number of CPUs)")
    parser.add_argument("--proxy", metavar="URL",
                        help="probe through this proxy (http://, socks4://, socks5://): "
                             "one CONNECT or SOCKS request per address and port")
    parser.add_argument("--dns-server", action="append", default=[], metavar="IP[:PORT]",
                        help="DNS server for host-name targets and the proxy's name")
    parser.add_argument("--format", choices=("jsonl", "console"), default=None,
                        help="stdout format (default: console on a terminal, else jsonl)")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON lines to FILE")


DNS_CONCURRENCY = 256


async def resolve_all(names: tuple[str, ...], servers: tuple[str, ...], timeout: float
                      ) -> dict[str, tuple[str, ...]]:
    """Every name's addresses (A then AAAA).

    With servers named, the bulk stub asks them first; c-ares (a fixed pool of lookups,
    the system's configuration when no server is named) settles whatever is left.
    """
    from scanner.names import split_host_port  # noqa: PLC0415
    from scanner.probes.bulkdns import BulkLookup  # noqa: PLC0415
    from scanner.probes.dns import DnsStage  # noqa: PLC0415

    found: dict[str, tuple[str, ...]] = {}
    rest = names
    if servers:
        pairs = [(host, int(port or 53)) for host, port in map(split_host_port, servers)]
        bulk = BulkLookup(names, pairs, timeout=min(timeout, 1.0))
        await bulk.run()
        found = bulk.addresses()
        rest = tuple(name for name in names if name in bulk.unsettled)
    if rest:
        stage = DnsStage(servers or None, timeout)
        todo = iter(rest)

        async def lookups() -> None:
            for name in todo:
                found[name] = (await stage.lookup(name)).addresses

        async with anyio.create_task_group() as tg:
            for _ in range(min(DNS_CONCURRENCY, len(rest))):
                tg.start_soon(lookups)
    return {name: found[name] for name in names}


def resolve_names(names: tuple[str, ...], servers: list[str], timeout: float) -> dict[str, tuple[str, ...]]:
    from scanner.probes.dns import parse_dns_server  # noqa: PLC0415

    parsed = tuple(parse_dns_server(s) for s in servers)
    return run(partial(resolve_all, names, parsed, max(timeout, 2.0)))


def _warn(message: str) -> None:
    sys.stderr.write(f"scanner: warning: {message}\n")
    sys.stderr.flush()


def target_intervals(args: argparse.Namespace) -> tuple[Interval, ...]:
    if not args.targets:
        raise UsageError("name at least one target: CIDR, range, address, host name, @FILE or -")
    spec = parse_targets(expand_arguments(args.targets))
    intervals = list(spec.intervals)
    if spec.names:
        for name, addresses in resolve_names(spec.names, args.dns_server, args.timeout).items():
            if not addresses:
                _warn(f"{name} did not resolve: left out")
            for address in addresses:
                intervals.extend(parse_targets([address]).intervals)
    excluded = parse_targets(args.exclude, "--exclude", names_allowed=False).intervals
    files = [f"@{path}" for path in args.exclude_file]
    excluded += parse_targets(expand_arguments(files), "--exclude-file", names_allowed=False).intervals
    kept = subtract(intervals, excluded)
    if not kept:
        raise UsageError("nothing to sweep: every target is excluded or did not resolve")
    return tuple(kept)


def proxy_address(args: argparse.Namespace) -> str | None:
    if args.proxy is None:
        return None
    route = parse_proxy_url(args.proxy)
    if is_ip_literal(route.host):
        return route.host
    addresses = resolve_names((route.host,), args.dns_server, args.timeout)[route.host]
    if not addresses:
        raise UsageError(f"the proxy's host name {route.host} did not resolve")
    return addresses[0]


def build_job(args: argparse.Namespace, environ: dict[str, str]) -> SweepJob:
    ports = port_list(args.ports, args.top_ports)
    intervals = target_intervals(args)
    space = AddressSpace(intervals).size * len(ports)
    if space > MAX_SPACE:
        raise UsageError(f"{space} probes is too many for one sweep (the limit is 2^64)")
    mark = fingerprint(intervals, ports)
    shard = parse_shard(args.shard, environ) if args.shard else None
    prior_done = 0
    spans: tuple[Span, ...]
    if args.resume:
        state = load_state(args.resume)
        if state.fingerprint != mark or state.space != space:
            raise UsageError(f"--resume {args.resume}: the targets or ports differ from the saved sweep's")
        if args.seed is not None and args.seed != state.seed:
            raise UsageError(f"--resume {args.resume}: saved with --seed {state.seed}, not {args.seed}")
        if shard is not None and shard != state.shard:
            raise UsageError(f"--resume {args.resume}: saved as shard {state.shard}, not {shard}")
        seed, shard, spans, prior_done = state.seed, state.shard, state.remaining, state.done
    else:
        seed = args.seed if args.seed is not None else random_seed()
        shard = shard or Shard()
        spans = (shard.span(space),)
    template = WorkerPlan(intervals, ports, seed, (), args.timeout, args.retries, args.concurrency,
                          args.rate, args.all, args.proxy, proxy_address(args))
    return SweepJob(template, spans, args.workers, shard, mark, space, prior_done,
                    args.state or args.resume)


class ConsoleSink:
    """Turns forwarded JSON lines into aligned text (console mode only: a person is reading)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> None:
        out = []
        for line in data.splitlines():
            r = orjson.loads(line)
            out.append(console_line(r["ip"], r["port"], r["state"], r["ms"]))
        write_all(self.fd, "".join(out).encode())


_OUTPUT_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO}


def check_state_path(path: str | None) -> None:
    """A --state file that cannot be written is a usage error before the first probe."""
    if not path:
        return
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise UsageError(f"--state {path}: it is a folder")
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UsageError(f"--state {path}: {folder} is not a writable folder")


def cmd_sweep(args: argparse.Namespace) -> int:
    job = build_job(args, dict(os.environ))
    check_state_path(job.state_path)
    console = (args.format or ("console" if sys.stdout.isatty() else "jsonl")) == "console"
    sinks: list[int] = []
    output_fd = None
    if args.output:
        try:
            output_fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot write --output {args.output}: {exc.strerror or exc}") from None
    sys.stdout.flush()
    console_sink = ConsoleSink(sys.stdout.fileno()) if console else None
    sinks = [] if console else [sys.stdout.fileno()]
    if output_fd is not None:
        sinks.append(output_fd)
    on_state = make_state_writer(job.state_path) if job.state_path else None
    try:
        outcome = run_job(job, sinks, sys.stderr if console else None, on_state,
                          console_sink.write if console_sink else None)
        if output_fd is not None:  # first: the file is complete even when stdout's reader left
            write_all(output_fd, summary_bytes(job, outcome, False))
            os.close(output_fd)
        write_all(sys.stdout.fileno(), summary_bytes(job, outcome, console))
    except OSError as exc:
        if exc.errno in _OUTPUT_FULL:
            raise OutputError(f"cannot write results: {exc.strerror}") from None
        raise
    if outcome.failed_workers:
        sys.stderr.write(f"scanner: error: {outcome.failed_workers} worker process(es) failed; "
                         "their unfinished targets are in the saved state\n")
        return EXIT_INTERNAL
    return EXIT_INTERRUPTED if outcome.interrupted else EXIT_OK


def main_sweep(words: list[str]) -> int:
    """`scanner sweep ...` without loading the check command's modules."""
    from scanner.exits import Parser, guarded  # noqa: PLC0415

    parser = Parser(prog="scanner sweep", description=(
        "Probe subnets x ports at a high rate, sharded and resumable, directly or through a proxy."))
    add_sweep_arguments(parser)
    args = parser.parse_args(words)
    args.command = "sweep"
    return guarded(lambda: cmd_sweep(args))
