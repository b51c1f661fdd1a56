"""The --output file: append, rotation by size, and never a record split across files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.errors import UsageError
from scanner.models import DIRECT, ConnectResult, ConnectStatus, DnsResult, DnsStatus, Endpoint, Probe, Record
from scanner.output import JsonlWriter
from scanner.rotation import RotatingFile, needs_rotation, open_output, rotation_moves


def test_rotation_moves() -> None:
    assert rotation_moves("out.jsonl", 3) == [("out.jsonl.2", "out.jsonl.3"), ("out.jsonl.1", "out.jsonl.2"),
                                              ("out.jsonl", "out.jsonl.1")]
    assert rotation_moves("f", 1) == [("f", "f.1")]
    assert rotation_moves("f", 0) == []


def test_needs_rotation() -> None:
    assert needs_rotation(0, 500, 100) is False  # an empty file takes even an oversized record
    assert needs_rotation(60, 40, 100) is False  # exactly at the limit is fine
    assert needs_rotation(60, 41, 100) is True


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_rotates_keeping_k_old_files(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    out = RotatingFile(str(path), max_bytes=10, keep=2, append=False)
    for line in [b"aaaa\n", b"bbbb\n", b"cccc\n", b"dddddddddddddddd\n", b"eeee\n", b"ffff\n"]:
        out.write(line)
        out.flush()
    out.close()
    # a..b filled the first file; c, then the oversized d alone, then e+f
    assert files(tmp_path) == {"out.jsonl": b"eeee\nffff\n", "out.jsonl.1": b"dddddddddddddddd\n",
                               "out.jsonl.2": b"cccc\n"}


def test_keep_zero_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    out = RotatingFile(str(path), max_bytes=6, keep=0, append=False)
    for line in [b"aaaa\n", b"bbbb\n"]:
        out.write(line)
    out.close()
    assert files(tmp_path) == {"out.jsonl": b"bbbb\n"}


def test_append_continues_and_rotates_a_full_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old1\n")
    (tmp_path / "out.jsonl.1").write_bytes(b"older\n")
    out = RotatingFile(str(path), max_bytes=10, keep=3, append=True)
    out.write(b"new1\n")
    out.write(b"new2\n")
    out.close()
    assert files(tmp_path) == {"out.jsonl": b"new2\n", "out.jsonl.1": b"old1\nnew1\n",
                               "out.jsonl.2": b"older\n"}


def test_open_output_plain_append_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"before\n")
    with open_output(str(path), append=True) as handle:
        handle.write(b"after\n")
    assert path.read_bytes() == b"before\nafter\n"
    with open_output(str(path)) as handle:
        handle.write(b"only\n")
    assert path.read_bytes() == b"only\n"
    with pytest.raises(UsageError) as caught:
        open_output(str(tmp_path / "no" / "such.jsonl"), max_bytes=10)
    assert caught.value.message == f"cannot write --output {tmp_path}/no/such.jsonl: No such file or directory"
    with pytest.raises(UsageError, match=r"^--output needs a file name$"):
        open_output("")


def record(host: str) -> Record:
    return Record(Probe("cat", Endpoint(host, (443,)), 443, DIRECT), DnsResult(DnsStatus.RESOLVED, ("127.0.0.1",)),
                  ConnectResult(ConnectStatus.LISTENING, 1.0, None, None), True, None, 1_700_000_000.0)


@settings(max_examples=40, deadline=None)
@given(hosts=st.lists(st.from_regex(r"[a-z]{1,40}\.test", fullmatch=True), min_size=1, max_size=30),
       max_bytes=st.integers(min_value=1, max_value=3000), keep=st.integers(min_value=0, max_value=4))
def test_jsonl_records_are_never_split(tmp_path_factory: pytest.TempPathFactory, hosts: list[str],
                                       max_bytes: int, keep: int) -> None:
    folder = tmp_path_factory.mktemp("rot")
    path = folder / "out.jsonl"
    writer = JsonlWriter(open_output(str(path), max_bytes=max_bytes, keep=keep))
    for host in hosts:
        writer.record(record(host))
    writer.close()
    names = [path.name, *(f"{path.name}.{n}" for n in range(1, keep + 1))]
    assert set(files(folder)) <= set(names)
    seen: list[str] = []
    for name in reversed(names):  # oldest first
        if not (folder / name).exists():
            continue
        data = (folder / name).read_bytes()
        lines = data.splitlines()
        assert data.endswith(b"\n")
        assert len(data) <= max_bytes or len(lines) == 1
        seen += [orjson.loads(line)["host"] for line in lines]
    assert seen == hosts[len(hosts) - len(seen):]  # the newest records, in order, all whole
    assert seen  # the newest record is always there
