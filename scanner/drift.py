"""Drift: what changed since an earlier run (a JSONL file of ours). Pure, except loading."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from scanner.errors import UsageError
from scanner.files import TooLarge, read_limited
from scanner.models import Record, route_label

MAX_BASELINE_BYTES = 256 * 1024 * 1024
Key = tuple[str, int, str]  # host, port, the route's label (models.route_label)


class DriftKind(StrEnum):
    NEWLY_FAILING = "newly_failing"  # ok before, not ok now: a regression
    RECOVERED = "recovered"  # not ok before, ok now
    STATE_CHANGED = "state_changed"  # same verdict, another state (e.g. denied -> auth_required)
    ADDRESSES_CHANGED = "addresses_changed"
    TLS_ISSUER_CHANGED = "tls_issuer_changed"  # another CA signs the certificate: inspection?
    ADDED = "added"  # probed now, not in the baseline
    REMOVED = "removed"  # in the baseline, not probed now


REGRESSIONS = frozenset({DriftKind.NEWLY_FAILING})


@dataclass(frozen=True, slots=True)
class Snapshot:
    status: str
    ok: bool | None  # None: no verdict (not_configured)
    addresses: tuple[str, ...]
    tls_issuer: str | None = None  # the leaf's issuer, when a TLS handshake completed


@dataclass(frozen=True, slots=True)
class Drift:
    kind: DriftKind
    key: Key
    before: Snapshot | None
    after: Snapshot | None

    def fields(self) -> dict[str, Any]:
        host, port, route = self.key

        def side(snap: Snapshot | None) -> dict[str, Any] | None:
            if snap is None:
                return None
            return {"status": snap.status, "ok": snap.ok, "addresses": list(snap.addresses),
                    "tls_issuer": snap.tls_issuer}

        return {"schema": 1, "kind": self.kind.value, "host": host, "port": port, "route": route,
                "before": side(self.before), "after": side(self.after)}


def snapshot(record: Record) -> tuple[Key, Snapshot]:
    probe = record.probe
    key = (probe.endpoint.host, probe.port, probe.route.label)
    issuer = record.tls.issuer if record.tls is not None else None
    return key, Snapshot(record.connect.status.value, record.ok, tuple(sorted(record.dns.addresses)),
                         issuer)


def load_baseline(path: str) -> dict[Key, Snapshot]:
    """The endpoint records of an earlier run; other lines (summary, drift) are skipped."""
    try:
        lines = read_limited(path, MAX_BASELINE_BYTES).splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read --baseline {path}: {exc.strerror or exc}") from None
    except TooLarge:
        raise UsageError(f"--baseline {path}: larger than {MAX_BASELINE_BYTES // 2**20} MiB") from None
    found: dict[Key, Snapshot] = {}
    other = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        other += 1
        try:
            item = orjson.loads(line)
            if item.get("event") != "endpoint":
                continue
            key = (str(item["host"]), int(item["port"]),
                   route_label(str(item["route"]), str(item.get("route_source") or "explicit")))
            tls = item.get("tls") or {}
            found[key] = Snapshot(str(item["connect"]["status"]),
                                  None if item["ok"] is None else bool(item["ok"]),
                                  tuple(sorted(str(a) for a in item["dns"]["addresses"])),
                                  str(tls["issuer"]) if tls.get("issuer") else None)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            raise UsageError(f"--baseline {path}: line {number} is not a scanner JSONL record") from None
    if other and not found:
        raise UsageError(f"--baseline {path}: no endpoint records of `scanner check` in it")
    return found


def compare(before: Mapping[Key, Snapshot], after: Mapping[Key, Snapshot]) -> list[Drift]:
    """Every change from `before` to `after`, in a stable order."""
    drifts: list[Drift] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old is None:
            drifts.append(Drift(DriftKind.ADDED, key, None, new))
        elif new is None:
            drifts.append(Drift(DriftKind.REMOVED, key, old, None))
        else:
            # a path that is or becomes not_configured (ok None) has no verdict to lose or regain
            if old.ok is True and new.ok is False:
                drifts.append(Drift(DriftKind.NEWLY_FAILING, key, old, new))
            elif old.ok is False and new.ok is True:
                drifts.append(Drift(DriftKind.RECOVERED, key, old, new))
            elif old.status != new.status:
                drifts.append(Drift(DriftKind.STATE_CHANGED, key, old, new))
            if old.addresses and new.addresses and old.addresses != new.addresses:
                drifts.append(Drift(DriftKind.ADDRESSES_CHANGED, key, old, new))
            if old.tls_issuer and new.tls_issuer and old.tls_issuer != new.tls_issuer:
                drifts.append(Drift(DriftKind.TLS_ISSUER_CHANGED, key, old, new))
    return drifts


def counts(drifts: Iterable[Drift]) -> dict[str, int]:
    tally: dict[str, int] = {}
    for drift in drifts:
        tally[drift.kind.value] = tally.get(drift.kind.value, 0) + 1
    return dict(sorted(tally.items()))


class DriftCollector:
    """A writer that only remembers each record's snapshot, for the comparison at the end."""

    passive = True  # it writes nothing: the run stops when only it is left

    def __init__(self) -> None:
        self.after: dict[Key, Snapshot] = {}

    def record(self, record: Record) -> None:
        key, snap = snapshot(record)
        self.after[key] = snap

    def summary(self, *_args: object) -> None:
        pass

    def event(self, name: str, fields: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
