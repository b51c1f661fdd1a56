"""Evaluating a PAC script: in a sandboxed child process, DNS answered by the parent.

The script is untrusted code off the network. It runs in `pacchild` under
QuickJS, in a process started with an empty environment, that lowers its own
limits and is killed at the deadline whatever it is doing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

from scanner.discovery.decision import Decision, parse_pac_result
from scanner.discovery.pachelpers import Clock
from scanner.errors import ScannerError
from scanner.models import RouteSource

MAX_SCRIPT = 1 << 20  # WinHTTP's limit
MAX_LINE = 1 << 20
Resolver = Callable[[str], Awaitable[Sequence[str]]]

_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from scanner.discovery.pacchild import main; main()")


class PacError(ScannerError):
    """A PAC script cannot be loaded or evaluated at all."""


@dataclass(frozen=True, slots=True)
class PacLimits:
    timeout: float = 10.0  # the whole evaluation, child start to last answer (WinHTTP allows 60)
    max_bytes: int = MAX_SCRIPT


@dataclass(frozen=True, slots=True)
class PacAnswer:
    raw: str | None  # what FindProxyForURL returned
    error: str | None = None  # why it returned nothing usable


@dataclass(frozen=True, slots=True)
class PacRun:
    answers: tuple[PacAnswer, ...]
    lookups: tuple[tuple[str, tuple[str, ...]], ...]  # what the script asked DNS, and the answers
    alerts: tuple[str, ...]


def check_script(data: bytes, origin: str, max_bytes: int = MAX_SCRIPT) -> str:
    """The script's text; PacError when it is too big or not text."""
    if len(data) > max_bytes:
        raise PacError(f"{origin}: PAC script larger than {max_bytes // 1024} KB (WinHTTP's limit is 1 MB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise PacError(f"{origin}: not a text file") from None


def child_command() -> list[str]:
    package_parent = str(Path(__file__).resolve().parents[2])
    return [sys.executable, "-I", "-c", _BOOT, package_parent]


async def evaluate(script: str, calls: Sequence[tuple[str, str]], resolve: Resolver, *,
                   origin: str, clock: Clock | None = None, my_ips: Sequence[str] = ("127.0.0.1",),
                   limits: PacLimits = PacLimits()) -> PacRun:
    """Run `FindProxyForURL(url, host)` for each call; PacError when the script fails as a whole."""
    if len(script.encode("utf-8")) > limits.max_bytes:
        raise PacError(f"{origin}: PAC script larger than {limits.max_bytes // 1024} KB "
                       "(WinHTTP's limit is 1 MB)")
    if clock is None:
        clock = Clock(datetime.now(), datetime.now(UTC).replace(tzinfo=None))
    request = {
        "script": script,
        "calls": [list(c) for c in calls],
        "now": {"local": clock.local.isoformat(), "utc": clock.utc.isoformat()},
        "my_ips": list(my_ips),
        "cpu_seconds": max(1, int(limits.timeout) + 1),
    }
    process = await anyio.open_process(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env={}, cwd="/" if os.name != "nt" else None,
                                       start_new_session=True)
    state = _State()
    try:
        with anyio.fail_after(limits.timeout):
            await _converse(process, request, resolve, origin, state)
    except TimeoutError:
        if not state.loaded:
            raise PacError(f"{origin}: the PAC script did not load within {limits.timeout:g}s "
                           "(it was stopped)") from None
        stalled = PacAnswer(None, f"the script ran past its time limit of {limits.timeout:g}s "
                                  "and was stopped")
        return PacRun(tuple(state.answers.get(i, stalled) for i in range(len(calls))),
                      tuple(state.lookups), ())
    finally:
        if process.returncode is None:
            process.kill()
        with anyio.CancelScope(shield=True):
            await process.aclose()
    return PacRun(tuple(state.answers[i] for i in range(len(calls))), tuple(state.lookups),
                  tuple(state.alerts))


@dataclass(slots=True)
class _State:
    """What the child has said so far (kept when it is killed at the deadline)."""

    loaded: bool = False
    answers: dict[int, PacAnswer] = field(default_factory=dict)
    lookups: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)


async def _converse(process: anyio.abc.Process, request: dict[str, Any], resolve: Resolver,
                    origin: str, state: _State) -> None:
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    await process.stdin.send(json.dumps(request).encode() + b"\n")
    reader = BufferedByteReceiveStream(process.stdout)
    answers, lookups = state.answers, state.lookups
    count = len(request["calls"])
    for _ in range(count + 202):  # answers, DNS questions (the child asks at most 100), the end
        try:
            line = await reader.receive_until(b"\n", MAX_LINE)
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
            raise PacError(f"{origin}: the PAC evaluator stopped: {await _stderr_tail(process)}") from None
        message = json.loads(line)
        if "dns" in message:
            name = str(message["dns"])
            addresses = tuple(await resolve(name))
            lookups.append((name, addresses))
            await process.stdin.send(json.dumps({"addresses": list(addresses)}).encode() + b"\n")
        elif "call" in message:
            answers[int(message["call"])] = PacAnswer(message.get("raw"), message.get("error"))
        elif "loaded" in message:
            state.loaded = True
        elif "fatal" in message:
            raise PacError(f"{origin}: the PAC script does not load: {message['fatal']}")
        elif message.get("done"):
            missing = [i for i in range(count) if i not in answers]
            if missing:
                raise PacError(f"{origin}: the PAC evaluator gave no answer for call {missing[0]}")
            state.alerts = [str(a) for a in message.get("alerts", [])]
            return
    raise PacError(f"{origin}: the PAC evaluator talked too much")


async def _stderr_tail(process: anyio.abc.Process) -> str:
    assert process.stderr is not None
    data = b""
    with anyio.move_on_after(1):
        try:
            while len(data) < 65536:
                data += await process.stderr.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
    lines = data.decode("utf-8", "replace").strip().splitlines()
    return lines[-1][:300] if lines else f"exit status {process.returncode}"


def pac_decision(source: RouteSource, url: str, answer: PacAnswer, origin: str) -> Decision:
    """A PAC answer -> a decision; a bad or missing result is the decision's error."""
    if answer.raw is None:
        return Decision(source, url, (), f"{origin} failed", answer.error or "no result")
    try:
        entries = parse_pac_result(answer.raw)
    except ValueError as exc:
        return Decision(source, url, (), f"{origin} returned {answer.raw[:200]!r}",
                        f"not a PAC result: {exc}")
    return Decision(source, url, entries, f"{origin} returned {answer.raw!r}")
