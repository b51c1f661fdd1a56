"""A token bucket over an injected clock: `--rate N` probes per second.

Pure: the caller passes the time, so tests run it on a fake clock.
"""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; starts full."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = rate
        # a burst of ~10 ms of tokens: smooth, yet few timer wake-ups at high rates
        self.burst = burst if burst is not None else max(1.0, rate / 100)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float, wanted: int) -> int:
        """Take up to `wanted` tokens at time `now`; returns how many were granted."""
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        granted = min(wanted, int(tokens))
        self._tokens = tokens - granted
        return granted

    def wait(self) -> float:
        """Seconds until the next whole token, from the last `take`."""
        return max(0.0, (1 - self._tokens) / self.rate)
