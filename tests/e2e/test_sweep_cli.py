"""`scanner sweep` end to end: the real CLI in a subprocess, sweeping loopback only."""

from __future__ import annotations

import os
import resource
import signal
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from anyio.from_thread import start_blocking_portal

from scanner.lab.dnswire import Answer, Rcode, RRType, build_response, parse_query
from scanner.lab.socksproxy import serve_socks5
from scanner.lab.zone import Fault, LabHost

CLOSED = 9  # nothing listens on the discard port in the test namespace


def sweep(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
          preexec: Any = None) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "scanner", "sweep", *args], capture_output=True,
                          timeout=timeout, env={**base, **(env or {})}, check=False,
                          preexec_fn=preexec)


def parse(stdout: bytes) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    assert lines and lines[-1]["event"] == "summary"
    assert all(line["event"] == "port" for line in lines[:-1])
    return lines[:-1], lines[-1]


def keys(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(r["ip"], r["port"]) for r in records]


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    """Two listening ports on 127.0.0.1 (not on other 127.x addresses)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(2):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            sock.listen(64)
            ports.append(sock.getsockname()[1])
        yield ports


def test_a_slash_16_with_all_yields_exactly_65536_records() -> None:
    done = sweep("127.0.0.0/16", "-p", str(CLOSED), "--all", "--workers", "2", "--seed", "11")
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert len(records) == 65_536
    assert len(set(keys(records))) == 65_536
    assert {r["state"] for r in records} == {"not_listening"}
    assert {r["route"] for r in records} == {"direct"}
    assert summary["total"] == 65_536 and summary["remaining"] == 0
    assert summary["by_state"] == {"not_listening": 65_536}
    assert summary["seed"] == 11 and summary["shard"] == "1/1" and not summary["interrupted"]


def test_only_listening_by_default_and_every_state_with_all(listeners: list[int]) -> None:
    ports = ",".join(str(p) for p in [*listeners, CLOSED])
    done = sweep("127.0.0.0/30", "-p", ports)
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert sorted(keys(records)) == sorted(("127.0.0.1", p) for p in listeners)
    assert {r["state"] for r in records} == {"listening"}
    assert summary["by_state"] == {"listening": 2, "not_listening": 10}

    every, _ = parse(sweep("127.0.0.0/30", "-p", ports, "--all").stdout)
    assert len(every) == 12


def test_excludes_are_honoured(tmp_path: Path) -> None:
    excluded = tmp_path / "exclude.txt"
    excluded.write_text("127.0.0.64-127.0.0.127\n")
    done = sweep("127.0.0.0/24", "127.0.1.0/30", "-p", f"{CLOSED},10", "--all",
                 "--exclude", "127.0.0.0/26", "--exclude-file", str(excluded), "--exclude", "127.0.1.2")
    assert done.returncode == 0, done.stderr
    records, _ = parse(done.stdout)
    addresses = {int(ip.rsplit(".", 1)[1]) for ip, _ in keys(records) if ip.startswith("127.0.0.")}
    assert addresses == set(range(128, 256))
    assert {ip for ip, _ in keys(records) if ip.startswith("127.0.1.")} == {
        "127.0.1.0", "127.0.1.1", "127.0.1.3"}
    assert len(records) == 2 * (128 + 3)


def test_shards_are_disjoint_and_complete() -> None:
    seen: list[tuple[str, int]] = []
    for k in (1, 2, 3):
        done = sweep("127.0.0.0/22", "-p", f"{CLOSED},10", "--all", "--seed", "5", "--shard", f"{k}/3")
        assert done.returncode == 0, done.stderr
        records, summary = parse(done.stdout)
        assert summary["shard"] == f"{k}/3"
        seen += keys(records)
    assert len(seen) == 2048 and len(set(seen)) == 2048


def test_shard_auto_from_an_indexed_job() -> None:
    env = {"JOB_COMPLETION_INDEX": "1", "SCANNER_SHARDS": "2"}
    done = sweep("127.0.0.0/24", "-p", str(CLOSED), "--all", "--seed", "5", "--shard", "auto", env=env)
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert summary["shard"] == "2/2" and len(records) == 128


def test_interrupt_then_resume_yields_each_target_exactly_once(tmp_path: Path) -> None:
    state = tmp_path / "sweep.state"
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    args = [sys.executable, "-m", "scanner", "sweep", "127.0.0.0/20", "-p", str(CLOSED), "--all",
            "--rate", "2000"]
    process = subprocess.Popen([*args, "--state", str(state)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=base, bufsize=0)  # communicate() reads the fd
    assert process.stdout is not None
    first = process.stdout.readline()  # the sweep has started
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode in (0, 130), stderr
    before, summary = parse(first + rest)
    assert summary["interrupted"] is (process.returncode == 130)
    assert state.exists()

    done = sweep("127.0.0.0/20", "-p", str(CLOSED), "--all", "--resume", str(state))
    assert done.returncode == 0, done.stderr
    after, resumed = parse(done.stdout)
    assert resumed["seed"] == summary["seed"]
    together = keys(before) + keys(after)
    assert len(together) == 4096 and len(set(together)) == 4096
    assert orjson.loads(state.read_bytes())["remaining"] == []


def test_resume_refuses_other_targets(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert sweep("127.0.0.0/28", "-p", str(CLOSED), "--state", str(state)).returncode == 0
    done = sweep("127.0.0.0/27", "-p", str(CLOSED), "--resume", str(state))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("scanner: error: --resume")


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))


def test_complete_under_file_descriptor_pressure() -> None:
    done = sweep("127.0.0.0/20", "-p", str(CLOSED), "--all", "--workers", "2",
                 "--concurrency", "5000", preexec=_low_nofile)
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert len(records) == 4096 and len(set(keys(records))) == 4096
    assert summary["remaining"] == 0
    assert done.stderr.decode().startswith("scanner: warning: --concurrency 5000 needs more file")


class _ConnectProxy(socketserver.BaseRequestHandler):
    """Answers CONNECT: 200 for the allowed port, 403 for the rest (then closes)."""

    allowed_port = 0

    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        target = head.split(b" ", 2)[1].decode()
        port = int(target.rsplit(":", 1)[1])
        if port == self.allowed_port:
            self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n"
                                 b"Content-Length: 0\r\n\r\n")


def test_through_a_proxy_each_host_and_port_gets_the_proxys_verdict() -> None:
    class Handler(_ConnectProxy):
        allowed_port = 8080

    class Server(socketserver.ThreadingTCPServer):
        request_queue_size = 128  # the default 5 drops SYNs when 8 probes connect at once

    server = Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        done = sweep("127.0.0.0/29", "-p", "8080,8443", "--all", "--proxy", url, "--concurrency", "8",
                     "--timeout", "10")
        found = sweep("127.0.0.0/29", "-p", "8080,8443", "--proxy", url, "--concurrency", "8",
                      "--timeout", "10")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert len(records) == 16
    assert {(r["port"], r["state"]) for r in records} == {(8080, "tunnel"), (8443, "denied")}
    assert {r["route"] for r in records} == {url}
    assert summary["by_state"] == {"denied": 8, "tunnel": 8}
    tunnels, _ = parse(found.stdout)  # without --all: what the proxy can reach
    assert sorted(keys(tunnels)) == [(f"127.0.0.{i}", 8080) for i in range(8)]


@pytest.mark.parametrize("args", [
    ["127.0.0.0/33", "-p", "80"],
    ["127.0.0.1", "-p", "0"],
    ["127.0.0.1"],
    ["127.0.0.0/30", "-p", "80", "--exclude", "127.0.0.0/24"],
    ["127.0.0.1", "-p", "80", "--shard", "3/2"],
    ["127.0.0.1", "-p", "80", "--resume", "/nonexistent/state"],
    ["127.0.0.1", "-p", "80", "--proxy", "ftp://127.0.0.1:21"],
])
def test_bad_input_is_one_line_and_status_2(args: list[str]) -> None:
    done = sweep(*args)
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scanner: error: "), lines
    assert done.stdout == b""


def _dns_server(zone: dict[str, str], stop: threading.Event) -> tuple[socket.socket, threading.Thread]:
    """A UDP DNS server on loopback answering A queries from `zone`, NXDOMAIN otherwise."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = parse_query(data)
            if query.qname not in zone:
                answer = Answer(Rcode.NXDOMAIN)
            elif query.qtype == RRType.A:
                answer = Answer(Rcode.NOERROR, (), (zone[query.qname],))
            else:
                answer = Answer(Rcode.NOERROR)
            sock.sendto(build_response(query, answer), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return sock, thread


def test_host_names_are_resolved_once_through_the_dns_server(tmp_path: Path) -> None:
    zone = {f"h{i}.lab.test": f"127.0.3.{i}" for i in range(50)}
    names = tmp_path / "names.txt"
    names.write_text("\n".join([*zone, "missing.lab.test"]) + "\n")
    stop = threading.Event()
    sock, thread = _dns_server(zone, stop)
    try:
        server = f"127.0.0.1:{sock.getsockname()[1]}"
        done = sweep(f"@{names}", "-p", str(CLOSED), "--all", "--dns-server", server)
    finally:
        stop.set()
        thread.join()
        sock.close()
    assert done.returncode == 0, done.stderr
    records, _ = parse(done.stdout)
    assert sorted(keys(records)) == sorted((address, CLOSED) for address in zone.values())
    assert done.stderr.decode().splitlines() == [
        "scanner: warning: missing.lab.test did not resolve: left out"]


def test_a_reader_that_goes_away_ends_the_sweep_quietly() -> None:
    # `scanner sweep ... | head -1`: the workers must not stay blocked on a full pipe
    command = (f"{sys.executable} -m scanner sweep 127.0.0.0/16 -p {CLOSED} --all --rate 20000 "
               "| head -1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=25,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["event"] == "port"
    assert done.stderr == b""


def test_a_reader_that_goes_away_leaves_the_output_file_complete(tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    command = (f"{sys.executable} -m scanner sweep 127.0.0.0/20 -p {CLOSED} --all --output {out} "
               "| head -1")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert lines[-1]["event"] == "summary" and lines[-1]["total"] == 4096
    assert len({(r["ip"], r["port"]) for r in lines[:-1]}) == 4096


def test_ipv6_loopback() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        done = sweep("::1", "-p", f"{port},{CLOSED}", "--all")
    assert done.returncode == 0, done.stderr
    records, _ = parse(done.stdout)
    assert sorted((r["ip"], r["port"], r["state"]) for r in records) == sorted(
        [("::1", port, "listening"), ("::1", CLOSED, "not_listening")])


def test_no_answer_is_filtered_after_the_retries() -> None:
    # a listener whose accept queue is full drops further SYNs: a loopback "firewall"
    with ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        done = sweep("127.0.0.1", "-p", f"{port},{CLOSED}", "--all", "--timeout", "0.3", "--retries", "1")
    assert done.returncode == 0, done.stderr
    records, summary = parse(done.stdout)
    assert sorted((r["port"], r["state"]) for r in records) == sorted(
        [(port, "filtered"), (CLOSED, "not_listening")])
    assert summary["by_state"] == {"filtered": 1, "not_listening": 1}


def test_through_the_labs_socks5_proxy(listeners: list[int]) -> None:
    open_port = listeners[0]
    hosts = {"a.lab": LabHost("a.lab", "127.0.0.1", (open_port,)),
             "b.lab": LabHost("b.lab", "127.0.0.2", (open_port,), frozenset({Fault.DENIED}))}
    with start_blocking_portal("asyncio") as portal:
        future, port = portal.start_task(partial(serve_socks5, hosts))
        try:
            url = f"socks5://127.0.0.1:{port}"
            done = sweep("127.0.0.0/30", "-p", f"{open_port},{CLOSED}", "--all", "--proxy", url,
                         "--concurrency", "4", "--timeout", "10")
        finally:
            future.cancel()
    assert done.returncode == 0, done.stderr
    records, _ = parse(done.stdout)
    found = {(r["ip"], r["port"]): r["state"] for r in records}
    assert len(found) == len(records) == 8
    assert found.pop(("127.0.0.1", open_port)) == "tunnel"
    assert found.pop(("127.0.0.1", CLOSED)) == "proxy_error"  # SOCKS reply 5: refused upstream
    assert set(found.values()) == {"denied"}  # not allowed by the proxy's rules


def test_a_killed_worker_fails_the_run_and_its_targets_stay_in_the_state(tmp_path: Path) -> None:
    state = tmp_path / "sweep.state"
    base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    process = subprocess.Popen(
        [sys.executable, "-m", "scanner", "sweep", "127.0.0.0/20", "-p", str(CLOSED), "--all",
         "--rate", "2000", "--workers", "2", "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=base, bufsize=0)
    assert process.stdout is not None
    first = process.stdout.readline()
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGKILL)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 3
    assert b"worker process(es) failed" in stderr
    before, _ = parse(first + rest)

    done = sweep("127.0.0.0/20", "-p", str(CLOSED), "--all", "--resume", str(state))
    assert done.returncode == 0, done.stderr
    after, _ = parse(done.stdout)
    # nothing lost; what the killed worker did after its last report may be probed again
    assert set(keys(before)) | set(keys(after)) == {(f"127.0.{i >> 8}.{i & 255}", CLOSED)
                                                    for i in range(4096)}
    assert len(set(keys(after))) == len(after)
