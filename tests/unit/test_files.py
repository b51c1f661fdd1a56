"""read_limited: bounded, regular files only (a FIFO or a device would hang or never end)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scanner.files import TooLarge, read_limited


def test_reads_a_regular_file_up_to_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"x" * 10)
    assert read_limited(path, 10) == b"x" * 10
    with pytest.raises(TooLarge):
        read_limited(path, 9)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device"])
def test_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading without a writer must not block
    elif kind == "folder":
        path.mkdir()
    else:
        path = Path("/dev/zero")
    with pytest.raises(OSError) as info:
        read_limited(path, 100)
    assert info.value.strerror == "not a regular file"


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        read_limited("/nonexistent/file", 10)
