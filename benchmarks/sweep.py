"""`scanner sweep` beside nmap and a C epoll connect loop, in a private network namespace.

    python benchmarks/sweep.py [--rounds 3] [--skip-memory] [--skip-dns]

1. Throughput: 127.0.0.0/16 on one closed port (65,536 real connects, each answered
   by a RST on loopback) with `scanner sweep --all`, `nmap -sT -n -Pn --max-retries 0
   -T5`, and a minimal C epoll loop compiled here (this machine's limit); wall time per
   run, median of the rounds, the three interleaved in each round.
2. Memory: a /12 sweep (1,048,576 probes, `--all`, records to /dev/null), the peak of
   the summed RSS (and PSS) of the runner and its workers, sampled every 20 ms, and the
   peak of each fifth of the run (flat memory: no growth with the probes done).
3. DNS: 20,000 names against a local dnsmasq: `scanner sweep`'s resolver (A and AAAA
   per name; the bulk UDP stub, as with `--dns-server`) beside `dnsperf` (A queries)
   against the same server, interleaved rounds.

Every packet goes to loopback: the script re-executes itself under `unshare --net`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from scanner.lab.netns import MARKER, bring_loopback_up, in_private_netns

ROOT = Path(__file__).resolve().parent.parent  # this checkout, not an installed copy
CLOSED_PORT = 9
RANGE = "127.0.0.0/16"
PROBES = 65_536

C_LOOP = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* connect to 127.0.0.0 + i, i < count, port 9, `window` in flight; print connects/s */
int main(int argc, char **argv) {
    int count = atoi(argv[1]), window = atoi(argv[2]), started = 0, done = 0;
    int ep = epoll_create1(0);
    struct epoll_event events[1024];
    struct linger lin = {1, 0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (done < count) {
        while (started < count && started - done < window) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (fd < 0) { perror("socket"); return 1; }
            struct sockaddr_in sa = {0};
            sa.sin_family = AF_INET;
            sa.sin_port = htons(9);
            sa.sin_addr.s_addr = htonl(0x7F000000u + (unsigned)started);
            started++;
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0 || errno != EINPROGRESS) {
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
                close(fd); done++; continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        int n = epoll_wait(ep, events, 1024, 1000);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd, err = 0;
            socklen_t len = sizeof err;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err == 0) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
            close(fd); done++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.1f\n", count / s);
    return 0;
}
"""


def reexec() -> int:
    flags = ["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, **{MARKER: "1", "PYTHONPATH": path})
    return subprocess.run(["unshare", *flags, sys.executable, *sys.argv], env=env, check=False).returncode


def timed(command: list[str], **kwargs: object) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - start, done


def scanner_command(target: str, workers: int) -> list[str]:
    return [sys.executable, "-m", "scanner", "sweep", target, "-p", str(CLOSED_PORT), "--all",
            "--workers", str(workers), "--seed", "1", "--timeout", "2"]


def run_scanner(workers: int) -> float:
    elapsed, done = timed(scanner_command(RANGE, workers), cwd=ROOT)
    lines = done.stdout.count(b"\n")
    if done.returncode != 0 or lines != PROBES + 1:
        raise SystemExit(f"scanner sweep failed: status {done.returncode}, {lines} lines, {done.stderr!r}")
    return PROBES / elapsed


def run_nmap() -> float:
    elapsed, done = timed(["nmap", "-sT", "-n", "-Pn", "--max-retries", "0", "-T5",
                           "-p", str(CLOSED_PORT), "-oG", "-", RANGE])
    closed = done.stdout.count(b"/closed/")
    if done.returncode != 0 or closed != PROBES:
        raise SystemExit(f"nmap: status {done.returncode}, {closed} closed ports reported")
    return PROBES / elapsed


def build_c_loop(workdir: Path) -> Path:
    source, binary = workdir / "connect_loop.c", workdir / "connect_loop"
    source.write_text(C_LOOP)
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def run_c_loop(binary: Path, window: int) -> float:
    elapsed, done = timed([str(binary), str(PROBES), str(window)])
    if done.returncode != 0:
        raise SystemExit(f"C loop failed: {done.stderr!r}")
    return PROBES / elapsed  # wall time, process start included, like the others


def tree_memory_kb(root: int) -> tuple[int, int]:
    """Summed (RSS, PSS) of `root` and its children (the runner's forked workers).

    RSS counts the pages a worker shares with the runner after fork once per
    process (an upper bound); PSS splits shared pages between their users.
    """
    pids = [root]
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
        pids += [int(p) for p in children]
    except OSError:
        return 0, 0
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def memory(workers: int) -> dict[str, object]:
    start = time.perf_counter()
    samples: list[tuple[int, int]] = []
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(scanner_command("127.0.0.0/12", workers), stdout=sink, cwd=ROOT)
        while process.poll() is None:
            sample = tree_memory_kb(process.pid)
            if sample[0]:
                samples.append(sample)
            time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if process.returncode != 0 or not samples:
        raise SystemExit(f"/12 sweep failed: status {process.returncode}")
    # flat memory: the peak of each fifth of the run
    fifth = max(len(samples) // 5, 1)
    by_fifth = [round(max(r for r, _ in samples[i: i + fifth]) / 1024, 1)
                for i in range(0, fifth * 5, fifth) if samples[i: i + fifth]]
    return {"probes": 1 << 20, "peak_rss_mb": round(max(r for r, _ in samples) / 1024, 1),
            "peak_pss_mb": round(max(p for _, p in samples) / 1024, 1),
            "peak_rss_mb_by_fifth": by_fifth, "elapsed_s": round(elapsed, 2),
            "probes_per_s": round((1 << 20) / elapsed)}


def dns_benchmark(workdir: Path, names: int, rounds: int) -> dict[str, object]:
    import anyio  # noqa: PLC0415

    from scanner.sweep.cli import resolve_all  # noqa: PLC0415

    hosts = workdir / "hosts"
    hosts.write_text("".join(f"127.1.{i >> 8 & 255}.{i & 255} n{i}.bench.test\n" for i in range(names)))
    queries = workdir / "queries"
    queries.write_text("".join(f"n{i}.bench.test A\n" for i in range(names)))
    name_list = tuple(f"n{i}.bench.test" for i in range(names))
    dnsmasq = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                                f"--addn-hosts={hosts}", "--listen-address=127.0.0.1",
                                "--port=5353", "--bind-interfaces", "--cache-size=0",
                                "--dns-forward-max=10000", "--local=/bench.test/",
                                "--user=root", "--pid-file="],
                               stderr=subprocess.DEVNULL)
    perf_qps: list[float] = []
    ours: list[float] = []
    unresolved = 0
    try:
        time.sleep(1.0)
        for _ in range(rounds):
            perf = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", "5353", "-d", str(queries),
                                   "-n", "1", "-c", "1", "-q", "500"], capture_output=True, text=True,
                                  check=False)
            perf_qps.append(next((float(line.split()[3]) for line in perf.stdout.splitlines()
                                  if "Queries per second" in line), 0.0))
            start = time.perf_counter()
            found = anyio.run(partial(resolve_all, name_list, ("127.0.0.1:5353",), 5.0),
                              backend="asyncio", backend_options={"use_uvloop": True})
            ours.append(names / (time.perf_counter() - start))
            unresolved += sum(1 for a in found.values() if not a)
    finally:
        dnsmasq.terminate()
        dnsmasq.wait()
    names_per_s, qps = statistics.median(ours), statistics.median(perf_qps)
    return {"names": names, "rounds": rounds, "scanner_names_per_s": [round(x) for x in ours],
            "dnsperf_a_queries_per_s": [round(x) for x in perf_qps], "scanner_unresolved": unresolved,
            "median_names_per_s": round(names_per_s), "median_dnsperf_qps": round(qps),
            "names_vs_dnsperf": round(names_per_s / qps, 2) if qps else 0.0,
            # each name is an A and an AAAA query
            "queries_vs_dnsperf": round(2 * names_per_s / qps, 2) if qps else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--window", type=int, default=1024, help="C loop connects in flight")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-dns", action="store_true")
    parser.add_argument("--dns-names", type=int, default=20_000)
    args = parser.parse_args()
    if not in_private_netns():
        return reexec()
    bring_loopback_up()
    for tool in ("nmap", "gcc"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        binary = build_c_loop(workdir)
        rates: dict[str, list[float]] = {"scanner": [], "nmap": [], "c_loop": []}
        for _ in range(args.rounds):
            rates["scanner"].append(run_scanner(args.workers))
            rates["nmap"].append(run_nmap())
            rates["c_loop"].append(run_c_loop(binary, args.window))
        median = {k: statistics.median(v) for k, v in rates.items()}
        report: dict[str, object] = {
            "cpus": os.cpu_count(), "workers": args.workers, "probes": PROBES,
            "rounds": {k: [round(x) for x in v] for k, v in rates.items()},
            "median_per_s": {k: round(v) for k, v in median.items()},
            "scanner_vs_nmap": round(median["scanner"] / median["nmap"], 2),
            "scanner_vs_c_loop": round(median["scanner"] / median["c_loop"], 2),
            # the same ratios within each round (the peers ran seconds apart): less noise
            "round_ratios_vs_nmap": [round(a / b, 2) for a, b in zip(rates["scanner"], rates["nmap"],
                                                                      strict=True)],
            "round_ratios_vs_c_loop": [round(a / b, 2) for a, b in zip(rates["scanner"],
                                                                        rates["c_loop"], strict=True)],
        }
        print(json.dumps(report), flush=True)
        if not args.skip_memory:
            print(json.dumps({"memory_slash_12": memory(args.workers)}), flush=True)
        if not args.skip_dns and shutil.which("dnsmasq") and shutil.which("dnsperf"):
            print(json.dumps({"dns": dns_benchmark(workdir, args.dns_names, args.rounds)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
