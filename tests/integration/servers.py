"""Real dnsmasq, squid and dante servers on loopback, for integration tests.

Each helper is a context manager: it writes a config into a fresh temp dir,
starts the server as a subprocess in its own process group, waits (bounded)
until the server really answers, yields a record describing it and kills the
whole process group on exit.  A server that does not come up within
``START_TIMEOUT`` seconds raises `ServerStartError` carrying its log.

The helpers refuse to run unless ``SCANNER_TEST_NETNS=1``, which `tests/run`
sets only inside a private network namespace holding nothing but loopback:
there dnsmasq may own port 53 and /etc/resolv.conf points at it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import pwd
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
_POLL_INTERVAL = 0.05

SQUID_BASIC_AUTH_HELPER = Path("/usr/lib/squid/basic_ncsa_auth")

# DNS record types and response codes used by the tests.
A = 1
CNAME = 5
AAAA = 28
NOERROR = 0
SERVFAIL = 2
NXDOMAIN = 3
REFUSED = 5


class ServerStartError(RuntimeError):
    """A test server did not start; the message carries its log."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server: where it listens and where it logs."""

    name: str
    host: str
    port: int
    log_path: Path
    workdir: Path

    def log(self) -> str:
        """Everything the server wrote so far (logs and console), for debugging."""
        return _read_logs(self.workdir)


@dataclass(frozen=True, slots=True)
class SquidServer(RunningServer):
    """A squid proxy; `auth_port` (if any) requires Basic credentials from `users`."""

    auth_port: int | None
    users: Mapping[str, str]


# --------------------------------------------------------------------------
# Small loopback utilities shared by the helpers and the tests.


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on `host` a moment ago (bind to port 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def threaded_listener(
    host: str, port: int, serve_one: Callable[[socket.socket], None], name: str
) -> Iterator[int]:
    """A TCP listener on `host`:`port` whose one thread hands each client to `serve_one`
    in turn (errors of a client end that client only); yields the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(64)
    server.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError, ssl.SSLError):
                conn.settimeout(2.0)
                serve_one(conn)

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2.0)
        server.close()


@contextlib.contextmanager
def banner_listener(
    host: str = "127.0.0.1", port: int = 0, banner: bytes = b"scanner-test\n"
) -> Iterator[int]:
    """A TCP listener on `host` that greets every client with `banner`; yields its port."""
    with threaded_listener(host, port, lambda conn: conn.sendall(banner), f"banner-{host}") as bound:
        yield bound


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class DnsReply:
    """The parts of a DNS response the tests look at."""

    rcode: int
    authoritative: bool
    answers: tuple[tuple[int, str], ...]
    """(type, data) pairs: A/AAAA as address text, CNAME as the target name."""

    def addresses(self) -> list[str]:
        return [data for rrtype, data in self.answers if rrtype in (A, AAAA)]


def dns_query(
    name: str,
    rrtype: int = A,
    *,
    server: str = "127.0.0.1",
    port: int = 53,
    timeout: float = 2.0,
) -> DnsReply:
    """Send one DNS query over UDP and parse the reply (raises OSError on timeout)."""
    query_id = secrets.randbelow(0x10000)
    packet = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)  # RD set
    packet += _encode_name(name) + struct.pack("!HH", rrtype, 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, port))
        sock.send(packet)
        deadline = time.monotonic() + timeout
        while True:  # skip stray datagrams with another id; bounded by the deadline
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            message = sock.recv(65535)
            if len(message) >= 12 and struct.unpack("!H", message[:2])[0] == query_id:
                return _parse_reply(message)


def _encode_name(name: str) -> bytes:
    labels = [label.encode("ascii") for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name; return it and the offset after it."""
    labels: list[str] = []
    end: int | None = None
    for _ in range(128):  # bounds pointer loops in a malformed message
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = struct.unpack("!H", message[offset : offset + 2])[0] & 0x3FFF
        elif length == 0:
            return ".".join(labels), end if end is not None else offset + 1
        else:
            labels.append(message[offset + 1 : offset + 1 + length].decode("ascii"))
            offset += 1 + length
    raise ValueError("DNS name too long or looping")


def _parse_reply(message: bytes) -> DnsReply:
    flags, qdcount, ancount = struct.unpack("!HHH", message[2:8])
    offset = 12
    for _ in range(qdcount):
        offset = _read_name(message, offset)[1] + 4
    answers: list[tuple[int, str]] = []
    for _ in range(ancount):
        offset = _read_name(message, offset)[1]
        rrtype, _class, _ttl, rdlength = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        rdata = message[offset : offset + rdlength]
        if rrtype in (A, AAAA):
            answers.append((rrtype, str(ipaddress.ip_address(rdata))))
        elif rrtype == CNAME:
            answers.append((rrtype, _read_name(message, offset)[0]))
        else:
            answers.append((rrtype, rdata.hex()))
        offset += rdlength
    return DnsReply(rcode=flags & 0xF, authoritative=bool(flags & 0x0400), answers=tuple(answers))


# --------------------------------------------------------------------------
# Process management shared by the helpers.


def _require_netns() -> None:
    if os.environ.get("SCANNER_TEST_NETNS") != "1":
        raise ServerStartError("test servers run only inside the private network namespace; use tests/run")


def _read_logs(workdir: Path) -> str:
    parts = []
    for path in sorted(workdir.glob("*.log")):
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            text = f"<unreadable: {exc}>"
        parts.append(f"==> {path.name} <==\n{text}")
    return "\n".join(parts)


def _find_binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        raise ServerStartError(f"{name} is not installed (tests/run installs it)")
    return path


@contextlib.contextmanager
def _workdir(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"scanner-{name}-") as tmp:
        path = Path(tmp)
        # Squid and dante drop privileges; their logs must stay writable.
        path.chmod(0o755)
        yield path


@contextlib.contextmanager
def _running(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    ready: Callable[[], bool],
    *,
    timeout: float = START_TIMEOUT,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `argv` in its own process group until the block exits."""
    console = workdir / f"{name}-console.log"
    with console.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one group: helpers and forks die with it
        )
    try:
        _wait_ready(name, proc, workdir, ready, timeout)
        yield proc
    finally:
        _stop(proc, stop_signal)


def _wait_ready(
    name: str,
    proc: subprocess.Popen[bytes],
    workdir: Path,
    ready: Callable[[], bool],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / _POLL_INTERVAL) + 1):
        if proc.poll() is not None:
            raise ServerStartError(
                f"{name} exited with status {proc.returncode} during start-up\n" + _read_logs(workdir)
            )
        if ready():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_INTERVAL)
    raise ServerStartError(f"{name} did not answer within {timeout:.0f} s\n" + _read_logs(workdir))


def _stop(proc: subprocess.Popen[bytes], first: signal.Signals) -> None:
    for sig, grace in ((first, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; make sure no helper or fork of it lingers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        return


# --------------------------------------------------------------------------
# dnsmasq


@contextlib.contextmanager
def dnsmasq(
    records: Mapping[str, Sequence[str]],
    *,
    port: int = 53,
    nxdomain_names: Sequence[str] = (),
    extra_cnames: Mapping[str, str] | None = None,
) -> Iterator[RunningServer]:
    """An authoritative-style DNS server on 127.0.0.1:`port` (UDP and TCP).

    Guarantees (checked against dnsmasq 2.90):

    * a name in `records` answers exactly its addresses (A for IPv4, AAAA for
      IPv6 entries; several of each are allowed), with the AA flag set;
    * a listed name asked for a type it has no data for answers NOERROR with
      no answers (NODATA);
    * every other name -- subdomains of listed names, other TLDs, bare
      labels, and all of `nxdomain_names` -- answers NXDOMAIN;
    * one extra name, ``ready-<random hex>.invalid``, answers 127.0.0.1 (the
      start-up probe);
    * `extra_cnames` maps alias -> target: the alias answers a CNAME plus the
      target's addresses.  The target should be in `records`; a target that
      is not answers just the dangling CNAME with NOERROR.

    Without ``--local=/#/`` dnsmasq 2.90 with ``--no-resolv`` answers REFUSED
    for every name it has no record for, including AAAA on an A-only name.
    ``--host-record`` is used rather than ``--address=/name/ip`` because the
    latter also answers every subdomain.
    """
    _require_netns()
    cnames = dict(extra_cnames or {})
    clash = set(nxdomain_names) & (set(records) | set(cnames))
    if clash:
        raise ValueError(f"names both answered and NXDOMAIN: {sorted(clash)}")
    binary = _find_binary("dnsmasq")
    with _workdir("dnsmasq") as workdir:
        log_path = workdir / "dnsmasq.log"
        argv = [
            binary,
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            f"--port={port}",
            "--user=root",
            f"--pid-file={workdir / 'dnsmasq.pid'}",
            "--local=/#/",  # everything not configured here is NXDOMAIN, not REFUSED
            "--log-queries",
            f"--log-facility={log_path}",
        ]
        for record_name, addresses in records.items():
            if not addresses:
                raise ValueError(f"{record_name}: no addresses (leave it out for NXDOMAIN)")
            for address in addresses:
                ipaddress.ip_address(address)  # reject typos early
                argv.append(f"--host-record={record_name},{address}")
        argv.extend(f"--cname={alias},{target}" for alias, target in cnames.items())
        # A name only this instance knows, so that readiness is never taken
        # from another dnsmasq still holding the port.
        probe_name = f"ready-{secrets.token_hex(6)}.invalid"
        argv.append(f"--host-record={probe_name},127.0.0.1")

        def ready() -> bool:
            try:
                reply = dns_query(probe_name, server="127.0.0.1", port=port, timeout=0.2)
            except OSError:
                return False
            return reply.addresses() == ["127.0.0.1"]

        with _running("dnsmasq", argv, workdir, ready):
            yield RunningServer("dnsmasq", "127.0.0.1", port, log_path, workdir)


# --------------------------------------------------------------------------
# squid


def _apr1_hash(password: str) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServerStartError("openssl is needed to hash the squid test passwords")
    done = subprocess.run(
        [openssl, "passwd", "-apr1", "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return done.stdout.strip()


def _squid_config(
    workdir: Path,
    *,
    port: int,
    auth_port: int | None,
    allow_domains: Sequence[str],
    allow_ports: Sequence[int] | None,
    dns: str,
    htpasswd: Path | None,
    allow_plain_http: bool = False,
) -> str:
    lines = [
        f"http_port 127.0.0.1:{port} name=open",
        "cache deny all",
        "pid_filename none",
        f"cache_log {workdir / 'squid.log'}",
        f"access_log stdio:{workdir / 'access.log'}",
        "cache_store_log none",
        "logfile_rotate 0",
        f"coredump_dir {workdir}",
        f"dns_nameservers {dns}",
        "visible_hostname scanner-test-squid",
        "pinger_enable off",
        # Squid waits 30 s for clients on SIGTERM by default.
        "shutdown_lifetime 0 seconds",
        "connect_timeout 5 seconds",
        "forward_timeout 10 seconds",
        "connect_retries 0",
        "acl CONNECT method CONNECT",
    ]
    if auth_port is not None:
        assert htpasswd is not None
        lines += [
            f"http_port 127.0.0.1:{auth_port} name=auth",
            f"auth_param basic program {SQUID_BASIC_AUTH_HELPER} {htpasswd}",
            "auth_param basic children 2 startup=1 idle=1",
            "auth_param basic realm scanner-test",
            "acl auth_port myportname auth",
            "acl authenticated proxy_auth REQUIRED",
            # Credentials first, as corporate proxies do: 407 even for names
            # that would be denied.  The proxy_auth ACL last on a deny line
            # makes squid challenge rather than deny.
            "http_access deny auth_port !authenticated",
        ]
    if not allow_plain_http:
        lines.append("http_access deny !CONNECT")
    if allow_ports is not None:
        lines.append("acl allowed_ports port " + " ".join(str(p) for p in allow_ports))
        lines.append("http_access deny !allowed_ports")
    if allow_domains:
        # -n: match the literal host, never a reverse lookup of an IP target.
        lines.append("acl allowed_domains dstdomain -n " + " ".join(allow_domains))
        lines.append("http_access allow allowed_domains")
    lines.append("http_access deny all")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def squid(
    *,
    port: int,
    allow_domains: Sequence[str],
    auth_port: int | None = None,
    users: Mapping[str, str] | None = None,
    dns: str = "127.0.0.1",
    allow_ports: Sequence[int] | None = None,
    allow_plain_http: bool = False,
) -> Iterator[SquidServer]:
    """A squid 5 HTTP proxy on 127.0.0.1:`port` that only tunnels (CONNECT).

    CONNECT to a host matching `allow_domains` (squid dstdomain syntax:
    ``name`` exact, ``.name`` the name and its subdomains; IP literals never
    match a name) on any port, or only `allow_ports` if given, is allowed.
    On `auth_port` every request first needs Basic credentials from `users`.
    Squid resolves names only through `dns` port 53, i.e. the `dnsmasq`
    helper.  What squid 5.7 answers (checked by test_servers_smoke.py):

    * allowed, target listening: ``200 Connection established``, then the tunnel;
    * any other name, an IP literal, or any method but CONNECT: 403,
      ``X-Squid-Error: ERR_ACCESS_DENIED 0``;
    * `auth_port` without (or with wrong) credentials, whatever the target:
      407, ``Proxy-Authenticate: Basic realm="scanner-test"``,
      ``X-Squid-Error: ERR_CACHE_ACCESS_DENIED 0``;
    * allowed name, nothing listening: 503, ``ERR_CONNECT_FAIL 111``;
    * allowed name that is NXDOMAIN: 500, ``ERR_CANNOT_FORWARD 0`` (not
      ERR_DNS_FAIL).
    """
    _require_netns()
    users = dict(users or {})
    if auth_port is not None and not users:
        raise ValueError("auth_port needs at least one user")
    binary = _find_binary("squid")
    with _workdir("squid") as workdir:
        htpasswd: Path | None = None
        if auth_port is not None:
            if not SQUID_BASIC_AUTH_HELPER.exists():
                raise ServerStartError(f"{SQUID_BASIC_AUTH_HELPER} is missing")
            htpasswd = workdir / "htpasswd"
            htpasswd.write_text(
                "".join(f"{user}:{_apr1_hash(password)}\n" for user, password in users.items())
            )
        conf = workdir / "squid.conf"
        conf.write_text(
            _squid_config(
                workdir,
                port=port,
                auth_port=auth_port,
                allow_domains=allow_domains,
                allow_ports=allow_ports,
                allow_plain_http=allow_plain_http,
                dns=dns,
                htpasswd=htpasswd,
            )
        )
        ports = [port] if auth_port is None else [port, auth_port]

        def ready() -> bool:
            return all(_can_connect("127.0.0.1", p) for p in ports)

        # Squid names its shared-memory segments /dev/shm/SERVICE-*.shm, even
        # without SMP: a unique service name keeps concurrent squids apart.
        service = f"scanner{secrets.token_hex(4)}"
        argv = [binary, "-N", "-n", service, "-f", str(conf)]
        if _only_own_uid_mapped():
            # Squid refuses to keep root and cannot drop to `proxy` when the
            # user namespace maps only uid 0 (unshare -r): run it as a
            # non-root uid in a nested user namespace; it then drops nothing.
            argv = [_find_binary("unshare"), "--user", "--map-user=65534", "--map-group=65534", *argv]
        else:
            _give_to_user(workdir, "proxy")
        try:
            # SIGTERM costs ~2 s even with shutdown_lifetime 0, and without a
            # cache there is nothing to save: kill squid and its auth helpers.
            with _running("squid", argv, workdir, ready, stop_signal=signal.SIGKILL):
                yield SquidServer(
                    "squid",
                    "127.0.0.1",
                    port,
                    workdir / "squid.log",
                    workdir,
                    auth_port=auth_port,
                    users=users,
                )
        finally:
            for segment in Path("/dev/shm").glob(f"{service}-*.shm"):
                segment.unlink(missing_ok=True)


def _only_own_uid_mapped() -> bool:
    """True inside a user namespace that maps a single uid, as `unshare -r` makes."""
    try:
        rows = Path("/proc/self/uid_map").read_text().splitlines()
    except OSError:
        return False
    return sum(int(row.split()[2]) for row in rows if row.strip()) <= 1


def _give_to_user(workdir: Path, user: str) -> None:
    """Let a server that drops root to `user` write its logs in `workdir`."""
    if os.geteuid() != 0:
        return
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return
    for path in (workdir, *workdir.iterdir()):
        with contextlib.suppress(OSError):  # e.g. an unmapped uid in a user namespace
            os.chown(path, entry.pw_uid, entry.pw_gid)


# --------------------------------------------------------------------------
# dante


def _dante_config(workdir: Path, port: int, unprivileged_user: str) -> str:
    log = workdir / "danted.log"
    return f"""\
logoutput: {log}
errorlog: {log}
internal: 127.0.0.1 port = {port}
external: lo
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: {unprivileged_user}
timeout.negotiate: 10
timeout.connect: 5

client pass {{
    from: 127.0.0.0/8 to: 0.0.0.0/0
    log: error connect disconnect
}}
client block {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: error connect
}}
socks pass {{
    from: 127.0.0.0/8 to: 127.0.0.0/8
    command: connect
    log: error connect disconnect
}}
socks pass {{
    from: 127.0.0.0/8 to: ::1/128
    command: connect
    log: error connect disconnect
}}
socks block {{
    from: 0.0.0.0/0 to: 0.0.0.0/0
    log: error connect
}}
"""


@contextlib.contextmanager
def dante(*, port: int) -> Iterator[RunningServer]:
    """A SOCKS5 server (danted, no authentication) on 127.0.0.1:`port`.

    It connects only to loopback targets (127.0.0.0/8 and ::1); any other
    destination is refused by the ruleset (reply 0x02).  Domain-name targets
    are resolved with the system resolver, i.e. the namespace's
    /etc/resolv.conf pointing at the `dnsmasq` helper on 127.0.0.1:53.
    """
    _require_netns()
    binary = _find_binary("danted")
    with _workdir("dante") as workdir:
        conf = workdir / "danted.conf"
        # Under `unshare -r` uid 0 is the only uid there is to switch to.
        unprivileged_user = "root" if _only_own_uid_mapped() else "nobody"
        conf.write_text(_dante_config(workdir, port, unprivileged_user))
        (workdir / "danted.log").touch()
        _give_to_user(workdir, unprivileged_user)

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"\x05\x01\x00")  # SOCKS5, one method: no auth
                    return sock.recv(2) == b"\x05\x00"
            except OSError:
                return False

        argv = [binary, "-f", str(conf), "-p", str(workdir / "danted.pid")]
        with _running("danted", argv, workdir, ready):
            yield RunningServer("dante", "127.0.0.1", port, workdir / "danted.log", workdir)


@contextlib.contextmanager
def http_listener(
    host: str, port: int, context: ssl.SSLContext | None = None
) -> Iterator[int]:
    """A small HTTP (or, with `context`, HTTPS) server on `host`:`port` answering every
    request with 200; each client is served in turn by one thread. Yields the port."""
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nok\n")

    def serve_one(conn: socket.socket) -> None:
        stream: socket.socket = context.wrap_socket(conn, server_side=True) if context else conn
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = stream.recv(4096)
            if not chunk:
                return
            head += chunk
        stream.sendall(answer)

    with threaded_listener(host, port, serve_one, f"http-{host}:{port}") as bound:
        yield bound
