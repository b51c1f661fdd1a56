"""The token bucket, on a fake clock: it holds its rate within 10% over a few seconds."""

from __future__ import annotations

import random

import pytest

from scanner.ratelimit import TokenBucket


@pytest.mark.parametrize("rate", [10.0, 1000.0, 50_000.0])
def test_holds_its_rate_over_three_seconds(rate: float) -> None:
    rng = random.Random(5)
    now = 100.0
    bucket = TokenBucket(rate, now)
    granted = 0
    while now < 103.0:  # callers ask greedily at irregular moments, as the worker does
        granted += bucket.take(now, rng.randint(1, 500))
        now += min(bucket.wait(), 0.02) + rng.random() * 0.005
    assert abs(granted - 3 * rate) <= 0.1 * 3 * rate


def test_burst_is_bounded_after_idling() -> None:
    bucket = TokenBucket(1000, 0.0)
    bucket.take(0.0, 10_000)
    assert bucket.take(60.0, 10_000) == bucket.burst  # a minute idle does not save a minute of tokens
    assert bucket.take(60.0, 1) == 0
    assert bucket.wait() == pytest.approx(0.001)
