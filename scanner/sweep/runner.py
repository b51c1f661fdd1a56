"""Runs the workers and merges their records into one stream, in arrival order.

Each worker writes whole lines to its own pipe; the runner forwards every
complete line exactly once and keeps the partial tail for the next read.
Control lines (counts, positions left) are taken out of the stream; they come
after the records they account for, so the saved state never claims a record
that was not written. Stopping (Ctrl-C, SIGTERM) closes the workers' stdin:
they abort what is in flight and report it as still to do.
"""

from __future__ import annotations

import os
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

import orjson

from scanner.limits import raise_nofile_limit
from scanner.permutation import Shard, Span, normalize, span_total
from scanner.sweep.plan import WorkerPlan
from scanner.sweep.records import CONTROL, summary_line
from scanner.sweep.state import SweepState, save_state
from scanner.sweep.workqueue import ChunkQueue

STATE_EVERY = 2.0
PROGRESS_EVERY = 0.5


class Splitter:
    """Cuts one worker's byte stream into forwarded records and control messages."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> tuple[bytes, list[dict[str, Any]]]:
        data = self._tail + chunk
        end = data.rfind(b"\n") + 1
        self._tail, data = data[end:], data[:end]
        if CONTROL not in data:  # the common case: only records, forwarded as one block
            return data, []
        records: list[bytes] = []
        controls: list[dict[str, Any]] = []
        for line in data.splitlines(keepends=True):
            if line.startswith(CONTROL):
                controls.append(orjson.loads(line[1:]))
            else:
                records.append(line)
        return b"".join(records), controls

    @property
    def tail(self) -> bytes:
        return self._tail


@dataclass(slots=True)
class WorkerProcess:
    pid: int
    out_fd: int  # its records and control lines
    stop_fd: int  # closing it tells the worker to stop
    status: int | None = None

    def stop(self) -> None:
        if self.stop_fd >= 0:
            try:
                os.close(self.stop_fd)
            except OSError:
                pass
            self.stop_fd = -1

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                deadline = float("inf")
            else:
                time.sleep(0.01)
        return self.status


@dataclass(slots=True)
class WorkerView:
    """What the runner knows of one worker from its last control line."""

    process: WorkerProcess
    splitter: Splitter = field(default_factory=Splitter)
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    remaining: list[Span] = field(default_factory=list)
    backoffs: int = 0
    final: bool = False
    open: bool = True


@dataclass(frozen=True, slots=True)
class SweepJob:
    """Everything the runner needs; the CLI builds it."""

    template: WorkerPlan  # spans, concurrency and rate are per worker, filled in here
    spans: tuple[Span, ...]
    workers: int
    shard: Shard
    fingerprint: str
    space: int
    prior_done: int = 0
    state_path: str | None = None


@dataclass(frozen=True, slots=True)
class SweepOutcome:
    done: int
    counts: dict[str, int]
    remaining: tuple[Span, ...]
    elapsed_s: float
    interrupted: bool
    failed_workers: int
    backoffs: int


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _spawn(plan: WorkerPlan, queue: ChunkQueue, inherited: list[int]) -> WorkerProcess:
    """Fork a worker: it starts at once, with every module already imported.

    `inherited` are the runner's ends of earlier workers' pipes: the child closes
    them, or a worker would keep another's stop pipe open and never see EOF.
    """
    out_r, out_w = os.pipe()
    stop_r, stop_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the worker
        status = 3
        try:
            for fd in (*inherited, out_r, stop_w):
                os.close(fd)
            from scanner.sweep.worker import child_main  # noqa: PLC0415

            status = child_main(plan, out_w, stop_r, queue.claim)
        except BaseException:
            if os.environ.get("SCANNER_DEBUG") == "1":
                traceback.print_exc()
        finally:
            os._exit(status)
    os.close(out_w)
    os.close(stop_r)
    inherited += [out_r, stop_w]
    return WorkerProcess(pid, out_r, stop_w)


def _stop(views: list[WorkerView]) -> None:
    for view in views:
        view.process.stop()


def _progress_text(done: int, total: int, elapsed: float, found: int) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else 0.0
    share = 100 * done / total if total else 100.0
    return (f"\r{done}/{total} ({share:.1f}%)  {rate:,.0f}/s  ETA {eta:,.0f}s  "
            f"found {found}  ")


def run_job(job: SweepJob, sinks: list[int], progress: IO[str] | None,
            on_state: Callable[[SweepState], None] | None = None,
            console: Callable[[bytes], None] | None = None) -> SweepOutcome:
    """Sweep `job.spans` with `job.workers` processes, writing records to every fd in `sinks`."""
    template = job.template
    queue = ChunkQueue(job.spans, max(job.workers, 1))
    workers = max(1, min(job.workers, queue.count))
    from scanner.sweep.worker import fds_in_use  # noqa: PLC0415  (imported once, before the forks)

    concurrency = max(1, -(-template.concurrency // workers))
    room = max(1, raise_nofile_limit() - fds_in_use() - 16)  # the workers inherit the raised limit
    if concurrency > room:
        sys.stderr.write(f"scanner: warning: --concurrency {template.concurrency} needs more file "
                         f"descriptors than the limit allows: using {room} per worker\n")
        concurrency = room
    plan = replace(template, spans=(), concurrency=concurrency,
                   rate=template.rate / workers if template.rate > 0 else 0.0)

    inherited: list[int] = []
    views = [WorkerView(_spawn(plan, queue, inherited)) for _ in range(workers)]
    claimed: set[int] = set()
    total = span_total(job.spans)
    interrupted = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    selector = selectors.DefaultSelector()
    for view in views:
        selector.register(view.process.out_fd, selectors.EVENT_READ, view)
    start = time.perf_counter()
    last_state = last_progress = start
    stopping = False

    def snapshot() -> SweepState:
        left = normalize([*queue.unclaimed(claimed), *(s for v in views for s in v.remaining)])
        return SweepState(template.seed, job.shard, job.fingerprint, job.space, tuple(left),
                          job.prior_done + sum(v.done for v in views))

    try:
        while any(v.open for v in views):
            if interrupted and not stopping:
                stopping = True
                _stop(views)
            for key, _ in selector.select(timeout=0.2):
                view = key.data
                chunk = os.read(key.fd, 1 << 18)
                if not chunk:
                    selector.unregister(key.fd)
                    view.open = False
                    continue
                records, controls = view.splitter.feed(chunk)
                if records:
                    for fd in list(sinks):
                        try:
                            write_all(fd, records)
                        except BrokenPipeError:  # its reader left (`| head`): the others go on
                            sinks.remove(fd)
                            if not sinks and console is None:
                                raise
                    if console is not None:
                        try:
                            console(records)
                        except BrokenPipeError:
                            console = None
                            if not sinks:
                                raise
                for control in controls:
                    view.done, view.counts = control["done"], control["counts"]
                    view.remaining = [tuple(s) for s in control["remaining"]]
                    view.backoffs, view.final = control["backoffs"], control["final"]
                    claimed.update(control["claimed"])
            now = time.perf_counter()
            if job.state_path and on_state and now - last_state >= STATE_EVERY:
                on_state(snapshot())
                last_state = now
            if progress is not None and now - last_progress >= PROGRESS_EVERY:
                found = sum(v.counts.get("listening", 0) + v.counts.get("tunnel", 0) for v in views)
                progress.write(_progress_text(sum(v.done for v in views), total, now - start, found))
                progress.flush()
                last_progress = now
    except BrokenPipeError:
        _stop(views)
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        selector.close()
        _stop(views)
        for view in views:
            if view.open:  # bailing out (the reader of stdout went away): unblock its writes
                os.close(view.process.out_fd)
            view.process.wait(timeout=30)
            if not view.open:
                os.close(view.process.out_fd)
        if progress is not None:
            found = sum(v.counts.get("listening", 0) + v.counts.get("tunnel", 0) for v in views)
            done = sum(v.done for v in views)
            progress.write(_progress_text(done, total, time.perf_counter() - start, found) + "\n")
            progress.flush()
    elapsed = time.perf_counter() - start
    failed = sum(1 for v in views if not v.final or v.process.status != 0)
    state = snapshot()
    if on_state is not None:
        on_state(state)
    counts: dict[str, int] = {}
    for view in views:
        for state_name, value in view.counts.items():
            counts[state_name] = counts.get(state_name, 0) + value
    return SweepOutcome(sum(v.done for v in views), dict(sorted(counts.items())), state.remaining,
                        elapsed, interrupted, failed, sum(v.backoffs for v in views))


def summary_fields(job: SweepJob, outcome: SweepOutcome) -> dict[str, Any]:
    elapsed = outcome.elapsed_s
    return {
        "total": outcome.done,
        "planned": span_total(job.spans),
        "remaining": span_total(outcome.remaining),
        "by_state": outcome.counts,
        "elapsed_s": round(elapsed, 3),
        "probes_per_s": round(outcome.done / elapsed, 1) if elapsed > 0 else 0.0,
        "seed": job.template.seed,
        "shard": str(job.shard),
        "workers": job.workers,
        "backoffs": outcome.backoffs,
        "interrupted": outcome.interrupted,
    }


def summary_bytes(job: SweepJob, outcome: SweepOutcome, console: bool) -> bytes:
    fields = summary_fields(job, outcome)
    if not console:
        return summary_line(fields)
    counts = ", ".join(f"{n} {s}" for s, n in fields["by_state"].items()) or "nothing"
    note = " (interrupted)" if outcome.interrupted else ""
    return (f"\n{fields['total']} probed in {fields['elapsed_s']:.2f}s{note}, "
            f"{fields['probes_per_s']:,.0f}/s: {counts}; seed {fields['seed']}, "
            f"shard {fields['shard']}, {fields['remaining']} left\n").encode()


def make_state_writer(path: str) -> Callable[[SweepState], None]:
    return lambda state: save_state(path, state)
