"""Running the demo inside a private network namespace that holds only loopback.

Inside it nothing can leak to a real network, and ports 80 and 443 can be bound
without real privileges (user namespaces). Linux only; elsewhere the demo runs
in place.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

MARKER = "SCANNER_PRIVATE_NETNS"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def in_private_netns() -> bool:
    return os.environ.get(MARKER) == "1"


def only_loopback() -> bool:
    """Whether this process's network namespace holds loopback and nothing else
    (/proc/net is the reading process's namespace's view)."""
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return False
    return {line.split(":", 1)[0].strip() for line in lines} == {"lo"}


def bring_loopback_up() -> None:
    """`ip link set lo up`, without needing iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def reexec_in_netns(argv: list[str]) -> int | None:
    """Run `python -m scanner ARGV` in a new network namespace; None when that is impossible."""
    if not sys.platform.startswith("linux") or in_private_netns():
        return None
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    flags = ["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    env = dict(os.environ, **{MARKER: "1"})
    command = [unshare, *flags, sys.executable, "-m", "scanner", *argv]
    probe = subprocess.run([unshare, *flags, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return None
    return subprocess.run(command, env=env, check=False).returncode
