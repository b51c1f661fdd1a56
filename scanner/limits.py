"""File-descriptor limits: raise the soft limit, and fit the concurrency under it."""

from __future__ import annotations

import sys

RESERVED_FDS = 64  # stdio, DNS sockets, the event loop, output files


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit; return the soft limit in force."""
    if sys.platform == "win32":
        return 8192
    import resource  # noqa: PLC0415  (POSIX only)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    target = min(target, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def fit_concurrency(requested: int, nofile: int, fds_per_probe: int = 1) -> tuple[int, str | None]:
    """The concurrency that fits under `nofile`, and a warning when it had to be lowered."""
    room = max((nofile - RESERVED_FDS) // fds_per_probe, 1)
    if requested <= room:
        return requested, None
    return room, (f"--concurrency {requested} needs more file descriptors than the limit "
                  f"({nofile}) allows: using {room}")
