"""The worker's connect loop runs out of file descriptors on purpose: nothing may be lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

# Runs in a child process: the limit is set after start-up, so the worker's own fit
# (which would avoid EMFILE) is bypassed and the loop must back off instead.
SCRIPT = """
import asyncio, os, resource, sys
from scanner.sweep.plan import WorkerPlan
from scanner.sweep.worker import DirectLoop, Sweeper

plan = WorkerPlan(((4, 0x7F000000, 0x7F000FFF),), (9,), 3, ((0, 4096),), 1.0, 0, 500, 0.0, True)
out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)

async def main():
    used = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (used + 12, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sweeper = Sweeper(plan, out, 500)
    loop = DirectLoop(sweeper, asyncio.get_running_loop())
    loop.start()
    await loop.finished
    sweeper.report([], final=True)

asyncio.run(main())
"""


def test_emfile_backs_off_and_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    lines = out.read_bytes().splitlines()
    records = [orjson.loads(line) for line in lines if not line.startswith(b"!")]
    final = orjson.loads(lines[-1][1:])
    assert final["final"] and final["remaining"] == []
    assert final["backoffs"] > 0  # the limit really was hit
    assert len(records) == 4096 == final["done"]
    assert len({r["ip"] for r in records}) == 4096
