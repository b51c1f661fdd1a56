"""Resume files: the seed, the shard and the positions still to do, as JSON.

Written atomically (a temporary file renamed over the old one), periodically
and when the sweep stops. A fingerprint of the target space and the ports
makes resuming with other targets an error instead of a silent mess.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import orjson

from scanner.errors import UsageError
from scanner.permutation import Shard, Span, normalize
from scanner.targets import Interval

STATE_VERSION = 1


def fingerprint(intervals: tuple[Interval, ...], ports: tuple[int, ...]) -> str:
    data = orjson.dumps({"intervals": [list(i) for i in intervals], "ports": list(ports)})
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class SweepState:
    seed: int
    shard: Shard
    fingerprint: str
    space: int  # size of the whole (address x port) space
    remaining: tuple[Span, ...]
    done: int  # probes finished over all runs so far

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "version": STATE_VERSION, "seed": self.seed, "shard": str(self.shard),
            "fingerprint": self.fingerprint, "space": self.space,
            "remaining": [list(s) for s in self.remaining], "done": self.done,
        }, option=orjson.OPT_APPEND_NEWLINE)


def parse_state(data: bytes, source: str) -> SweepState:
    try:
        raw: Any = orjson.loads(data)
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported version {raw.get('version')!r}")
        k, _, n = str(raw["shard"]).partition("/")
        spans = normalize((int(a), int(b)) for a, b in raw["remaining"])
        return SweepState(int(raw["seed"]), Shard(int(k), int(n)), str(raw["fingerprint"]),
                          int(raw["space"]), tuple(spans), int(raw["done"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"--resume {source}: not a sweep state file ({exc})") from None


def load_state(path: str) -> SweepState:
    try:
        with open(path, "rb") as handle:
            return parse_state(handle.read(), path)
    except OSError as exc:
        raise UsageError(f"cannot read --resume {path}: {exc.strerror or exc}") from None


def save_state(path: str, state: SweepState) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(state.to_bytes())
    os.replace(temporary, path)
