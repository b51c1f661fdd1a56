"""The JSONL `--output` file: truncated or appended, and rotated by size.

Rotation happens between two writes, never inside one, and the JSONL writer hands
over one whole record per write: a record is never split across files. A file only
grows past the limit when it holds a single record larger than the limit.
"""

from __future__ import annotations

import os
from typing import BinaryIO, cast

from scanner.errors import UsageError


def rotation_moves(path: str, keep: int) -> list[tuple[str, str]]:
    """The renames that rotate `path`, oldest first: FILE.{keep-1} -> FILE.{keep} ... FILE -> FILE.1.

    What was FILE.{keep} is replaced, so at most `keep` old files stay; with keep 0, none.
    """
    if keep <= 0:
        return []
    moves = [(f"{path}.{n - 1}", f"{path}.{n}") for n in range(keep, 1, -1)]
    return [*moves, (path, f"{path}.1")]


def needs_rotation(size: int, incoming: int, max_bytes: int) -> bool:
    """Rotate before writing `incoming` bytes to a file of `size`? Never for an empty file."""
    return size > 0 and size + incoming > max_bytes


class RotatingFile:
    """A binary file that moves itself aside before a write would take it past `max_bytes`."""

    def __init__(self, path: str, max_bytes: int, keep: int, append: bool) -> None:
        self._path, self._max, self._keep = path, max_bytes, keep
        self._handle = open(path, "ab" if append else "wb")  # noqa: SIM115  (closed in close())
        self._size = self._handle.seek(0, os.SEEK_END)

    def write(self, data: bytes) -> int:
        if needs_rotation(self._size, len(data), self._max):
            self._rotate()
        written = self._handle.write(data)
        self._size += written
        return written

    def _rotate(self) -> None:
        self._handle.close()
        for source, target in rotation_moves(self._path, self._keep):
            if os.path.exists(source):
                os.replace(source, target)
        self._handle = open(self._path, "wb")  # noqa: SIM115
        self._size = 0

    def flush(self) -> None:
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def open_output(path: str, append: bool = False, max_bytes: int | None = None, keep: int = 5
                ) -> BinaryIO:
    """The `--output` file, ready for a JsonlWriter; errors are usage errors naming the file."""
    if not path:
        raise UsageError("--output needs a file name")
    try:
        if max_bytes is None:
            return open(path, "ab" if append else "wb")
        # structlog's BytesLogger only calls write() and flush()
        return cast(BinaryIO, RotatingFile(path, max_bytes, keep, append))
    except OSError as exc:
        raise UsageError(f"cannot write --output {path}: {exc.strerror or exc}") from None
