"""How close `scanner check` comes to the ideal wall time when every connect is slow.

2,000 generated endpoints on the lab, 50 ms added per round trip, concurrency 500.
Ideal: endpoints x latency / concurrency. Runs inside a private network namespace
(re-executing itself with `unshare`); as root the latency is real (tc netem on lo,
25 ms each way), otherwise the lab's HTTP proxy adds it and the check goes through it.

    python benchmarks/check_latency.py [--endpoints 2000] [--concurrency 500] [--rounds 3]

BENCH_LATENCY_MS=0 runs the same with no added latency: the lab's own throughput.
The probes are connect-only (DNS and the CONNECT, as the issue defines the figure);
BENCH_STAGES=1 adds the HTTP stage and the middlebox check that `scanner check` runs on
port 80 by default.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import anyio

from scanner.engine import run_check
from scanner.lab.lab import running_lab
from scanner.lab.netns import MARKER, bring_loopback_up, in_private_netns
from scanner.lab.zone import Fault
from scanner.models import DIRECT, Catalog, Checks, Endpoint, Record, Route
from scanner.output import JsonlWriter
from scanner.plan import CheckPlan, RoutePlan, StageOptions
from scanner.routes import parse_proxy_url
from scanner.runtime import run

LATENCY_S = float(os.environ.get("BENCH_LATENCY_MS", "50")) / 1000


def reexec() -> int:
    flags = ["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    env = dict(os.environ, **{MARKER: "1"})
    return subprocess.run(["unshare", *flags, sys.executable, *sys.argv], env=env, check=False).returncode


def netem(on: bool) -> bool:
    if os.geteuid() != 0 or shutil.which("tc") is None:
        return False
    if on:
        done = subprocess.run(["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                               f"{LATENCY_S / 2 * 1000:g}ms", "limit", "100000"],
                              capture_output=True, check=False)
        return done.returncode == 0
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True, check=False)
    return True


STAGES = os.environ.get("BENCH_STAGES") == "1"  # 1: the HTTP stage and middlebox check too
CONNECT_ONLY = Checks(tls_ports=(), http_ports=())
OPTIONS = StageOptions(middlebox=STAGES)


def catalog(count: int) -> Catalog:
    checks = Checks() if STAGES else CONNECT_ONLY
    endpoints = tuple(Endpoint(f"h{i}.bench.test", (80,), checks=checks) for i in range(count))
    return Catalog("bench", "generated", "benchmarks/check_latency.py", endpoints)


async def serve_lab(count: int, use_netem: bool) -> None:
    """The lab, in its own process so that it does not share a core with the scanner."""
    cat = catalog(count)
    delay = int(LATENCY_S * 1000)
    faults = [] if use_netem or not delay else [(e.host, Fault.DELAY, delay) for e in cat.endpoints]
    async with running_lab(cat, faults, proxy_connect_timeout=5) as lab:
        print(json.dumps({"dns": lab.dns_server, "proxy": lab.http_proxy}), flush=True)
        await anyio.wait_readable(sys.stdin.fileno())  # until the parent closes our stdin


async def measure(cat: Catalog, lab: dict[str, str], concurrency: int, use_netem: bool,
                  rounds: int, sample: int) -> dict[str, object]:
    route: Route = DIRECT if use_netem else parse_proxy_url(lab["proxy"])
    routes = RoutePlan((route,), None)
    sink = JsonlWriter(open(os.devnull, "wb"))  # noqa: SIM115  (closed below)
    failures: list[Record] = []

    def emit(record: Record) -> None:
        sink.record(record)
        if not record.ok:
            failures.append(record)

    times, cpu = [], []
    for _ in range(rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        await run_check(CheckPlan(cat, (), routes, (lab["dns"],), 10.0, concurrency, OPTIONS), emit)
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    small = Catalog("seq", "", "", cat.endpoints[:sample])
    start = time.perf_counter()
    await run_check(CheckPlan(small, (), routes, (lab["dns"],), 10.0, 1, OPTIONS), emit)
    per_probe = (time.perf_counter() - start) / sample
    sink.close()
    return {"times": times, "cpu": cpu, "per_probe": per_probe, "failures": len(failures),
            "route": "direct (tc netem)" if use_netem else "the lab's HTTP proxy (its own delay)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample", type=int, default=20, help="probes in the sequential run")
    parser.add_argument("--serve-lab", choices=("netem", "delay"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_lab:
        run(lambda: serve_lab(args.endpoints, args.serve_lab == "netem"))
        return 0
    if not in_private_netns():
        return reexec()
    bring_loopback_up()
    use_netem = netem(True)
    lab_proc = subprocess.Popen(
        [sys.executable, __file__, "--endpoints", str(args.endpoints),
         "--serve-lab", "netem" if use_netem else "delay"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert lab_proc.stdout is not None
        lab = json.loads(lab_proc.stdout.readline())
        cat = catalog(args.endpoints)
        result = run(lambda: measure(cat, lab, args.concurrency, use_netem, args.rounds, args.sample))
    finally:
        lab_proc.terminate()
        lab_proc.wait(10)
        if use_netem:
            netem(False)
    times: list[float] = result["times"]  # type: ignore[assignment]
    per_probe: float = result["per_probe"]  # type: ignore[assignment]
    ideal = max(args.endpoints * LATENCY_S / args.concurrency, 1e-9)
    median = statistics.median(times)
    print(f"cores: {os.cpu_count()}, endpoints: {args.endpoints}, concurrency: {args.concurrency}, "
          f"latency: {LATENCY_S * 1000:g} ms per round trip via {result['route']}")
    print(f"wall time, median of {len(times)}: {median:.3f}s (runs: "
          + ", ".join(f"{t:.3f}" for t in times) + ")")
    print(f"ideal (endpoints x latency / concurrency): {ideal:.3f}s -> ratio {median / ideal:.2f}x; "
          f"target <= 1.5 x ideal + 1 s = {1.5 * ideal + 1:.3f}s: "
          f"{'met' if median <= 1.5 * ideal + 1 else 'NOT met'}")
    print(f"sequential estimate: {per_probe * 1000:.1f} ms per probe x {args.endpoints} = "
          f"{per_probe * args.endpoints:.1f}s ({per_probe * args.endpoints / median:.0f}x slower)")
    cpu: list[float] = result["cpu"]  # type: ignore[assignment]
    print(f"scanner's own CPU time, median: {statistics.median(cpu):.3f}s "
          f"({statistics.median(cpu) / args.endpoints * 1e6:.0f} us per probe); the rest of the wall "
          "time is spent waiting on the lab, which runs in its own process")
    print(f"failed probes: {result['failures']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
