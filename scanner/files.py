"""Reading the user's files: bounded in size, and never a device or a FIFO (which could
hang a run or feed it forever)."""

from __future__ import annotations

import errno
import os
import stat


class TooLarge(Exception):
    """The file holds more than the limit."""


def read_limited(path: str | os.PathLike[str], limit: int) -> bytes:
    """The file's bytes; OSError (its strerror says why) or TooLarge when it cannot be had."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(limit)
    return data
