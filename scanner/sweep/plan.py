"""What one sweep process is asked to do: the plan the runner hands each forked worker."""

from __future__ import annotations

from dataclasses import dataclass

from scanner.permutation import Span
from scanner.targets import Interval


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    intervals: tuple[Interval, ...]  # the whole target space, not just this worker's part
    ports: tuple[int, ...]
    seed: int
    spans: tuple[Span, ...]  # the positions this worker sweeps
    timeout: float
    retries: int  # extra tries for filtered results only
    concurrency: int
    rate: float  # probes/s for this worker; 0: unlimited
    report_all: bool
    proxy_url: str | None = None
    proxy_address: str | None = None  # the proxy's IP, resolved by the runner
    report_interval: float = 0.5
