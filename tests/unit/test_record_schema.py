"""schema/records.schema.json: a valid schema, in step with the models and record_fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scanner.drift import DriftKind
from scanner.models import (
    ConnectResult,
    ConnectStatus,
    DnsResult,
    DnsStatus,
    Endpoint,
    Expectation,
    HttpResult,
    HttpStatus,
    MiddleboxResult,
    Probe,
    Record,
    Route,
    RouteKind,
    RouteSource,
    Tally,
    TlsStatus,
)
from scanner.output import record_fields, summary_fields

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "records.schema.json"


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_enums_match_the_models() -> None:
    defs = load_schema()["$defs"]
    assert defs["dns"]["properties"]["status"]["enum"] == [s.value for s in DnsStatus]
    assert defs["connect"]["properties"]["status"]["enum"] == [s.value for s in ConnectStatus]
    assert defs["tls"]["properties"]["status"]["enum"] == [s.value for s in TlsStatus]
    assert defs["http"]["properties"]["status"]["enum"] == [s.value for s in HttpStatus]
    assert defs["endpoint"]["properties"]["route_source"]["enum"] == [s.value for s in RouteSource]
    assert defs["endpoint"]["properties"]["expect"]["enum"] == [s.value for s in Expectation]
    assert defs["drift"]["properties"]["kind"]["enum"] == [k.value for k in DriftKind]


RECORD = Record(
    Probe(None, Endpoint("a.test", (80,), wildcard="*.test"), 80,
          Route(RouteKind.HTTP, "127.0.0.1", 8080, source=RouteSource.PAC,
                explanation="PAC: FindProxyForURL returned PROXY 127.0.0.1:8080")),
    DnsResult(DnsStatus.RESOLVED, ("127.0.0.5",), ("alias.test",), 1.5),
    ConnectResult(ConnectStatus.TUNNEL, 2.5, 200, address="127.0.0.1"), True, None, 1_700_000_000.0,
    http=HttpResult(HttpStatus.OK, 1.0, "GET http://a.test/ (absolute-form)", 200, "OK"),
    middlebox=MiddleboxResult(False, 81, "closed as expected"))


def test_every_record_field_is_described() -> None:
    """A field added to record_fields without the schema fails here (additionalProperties: false)."""
    check = validator()
    line = {"event": "endpoint", **record_fields(RECORD)}
    check.validate(line)
    tally = Tally()
    tally.add(RECORD)
    tally.drift = {"recovered": 1}
    check.validate({"event": "summary", **summary_fields(tally, 0.5, False)})
    with pytest.raises(jsonschema.ValidationError):
        check.validate({**line, "surprise": 1})
    with pytest.raises(jsonschema.ValidationError):
        check.validate({**line, "connect": {**line["connect"], "status": "teleported"}})
    with pytest.raises(jsonschema.ValidationError):
        check.validate({"event": "progress"})
