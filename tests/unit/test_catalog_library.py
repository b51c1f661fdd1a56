"""The bundled catalog library: every catalog lints clean; tags select; `scanner catalog`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from scanner.catalog import (
    bundled_dir,
    bundled_names,
    lint_problems,
    load_catalog,
    parse_catalog,
    select_tags,
)
from scanner.errors import UsageError

LIBRARY = ["azure-arc", "defender-atp", "github-actions-runner", "intune", "mde-standard",
           "mde-streamlined", "windows-update"]


def scanner(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                          timeout=60, check=False)


def test_the_library_is_bundled_and_lints_clean() -> None:
    assert bundled_names() == LIBRARY
    files = sorted(str(p) for p in bundled_dir().glob("*.toml"))
    done = scanner("catalog", "lint", *files)
    assert done.returncode == 0, done.stdout
    assert done.stdout.decode().count("\nok ") + done.stdout.decode().startswith("ok ") == len(LIBRARY)


@pytest.mark.parametrize("name", LIBRARY)
def test_each_catalog_names_its_source_and_date(name: str) -> None:
    catalog = load_catalog(name)
    assert catalog.name == name
    assert lint_problems(catalog) == []
    assert "20" in catalog.source  # every source carries the date it was read or published
    for endpoint in catalog.endpoints:
        assert endpoint.ports and all(1 <= p <= 65535 for p in endpoint.ports)
        if endpoint.wildcard:
            assert endpoint.host.endswith(endpoint.wildcard[1:])


def test_select_tags() -> None:
    catalog = load_catalog("mde-streamlined")
    uk = select_tags(catalog, ("uk",))
    assert uk.endpoints and all("uk" in e.tags for e in uk.endpoints)
    assert {e.host for e in uk.endpoints} < {e.host for e in catalog.endpoints}
    assert select_tags(catalog, ()) is catalog
    with pytest.raises(UsageError) as info:
        select_tags(catalog, ("mars",))
    assert info.value.message.startswith("no endpoint of catalog 'mde-streamlined' has tag mars (its tags: ")


def test_lint_reports_errors_and_warnings(tmp_path: Path) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text('name = "bare"\n[[endpoints]]\nhost = "a.example.com"\nports = [443]\n')
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "b"\n[[endpoints]]\nhost = "a.example.com"\nports = [443]\ntags = ["UPPER"]\n')
    assert lint_problems(parse_catalog(bare.read_bytes(), "bare")) == [
        "description: missing", "source: missing (name the document the list was taken from)"]
    warned = scanner("catalog", "lint", str(bare))
    assert warned.returncode == 1
    assert warned.stdout.decode().splitlines() == [
        f"warn   catalog {bare}: description: missing",
        f"warn   catalog {bare}: source: missing (name the document the list was taken from)"]
    failed = scanner("catalog", "lint", str(bare), str(broken))
    assert failed.returncode == 2
    assert failed.stdout.decode().splitlines()[-1] == (
        f"error  catalog {broken}: endpoints[0].tags: 'UPPER' is not a tag (lower-case letters, digits, - _ .)")


def test_catalog_show_jsonl() -> None:
    done = scanner("catalog", "show", "defender-atp", "--format", "jsonl")
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 0
    assert len(lines) == 12
    assert lines[-1]["wildcard"] == "*.blob.core.windows.net"
    assert {line["event"] for line in lines} == {"catalog_endpoint"}
