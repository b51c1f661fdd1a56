"""Running a coroutine on asyncio, with uvloop when it is installed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

T = TypeVar("T")


def run(func: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        return anyio.run(func, backend="asyncio")
    return anyio.run(func, backend="asyncio", backend_options={"use_uvloop": True})
