"""What hostile testers found: each now one clear line, never a secret, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scanner.discovery.command import dns_suffix
from scanner.drift import load_baseline
from scanner.errors import MAX_MESSAGE, UsageError, for_humans
from scanner.sweep.cli import check_state_path


@pytest.mark.parametrize(("text", "shown"), [
    ("'https://u:hunter2@x:99999/' is not a URL", "'https://***@x:99999/' is not a URL"),
    ("--named-proxy 'u:hunter2@127.0.0.1:35055': bad", "--named-proxy '***@127.0.0.1:35055': bad"),
    ("proxy 'http://u:h/un:ter2@127.0.0.1:3': x", "proxy 'http://***@127.0.0.1:3': x"),
    ("catalog a.toml: invalid TOML: Expected '=' (at line 4, column 5)",
     "catalog a.toml: invalid TOML: Expected '=' (at line 4, column 5)"),
])
def test_for_humans_hides_credentials(text: str, shown: str) -> None:
    assert for_humans(text) == shown


def test_for_humans_bounds_the_length() -> None:
    out = for_humans("x" * 5000)
    assert out == "x" * MAX_MESSAGE + f"... ({5000 - MAX_MESSAGE} more characters)"


def test_errors_never_show_a_password_from_any_command() -> None:
    for args in (["proxy", "https://u:hunter2@x:99999/"],
                 ["check", "--endpoint", "a.test:443", "--analyzer", "--named-proxy", "u:hunter2@127.0.0.1"]):
        done = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True,
                              timeout=60, check=False)
        assert done.returncode == 2
        assert b"hunter2" not in done.stderr + done.stdout
        assert done.stderr.count(b"\n") == 1


@pytest.mark.parametrize(("text", "message"), [
    ("a..b", "--dns-suffix 'a..b': host name has an empty label"),
    ("10.0.0.1", "--dns-suffix '10.0.0.1': expected a DNS domain, not an address"),
    ("ex ample.com", "--dns-suffix 'ex ample.com': host name contains white space"),
])
def test_bad_dns_suffixes(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        dns_suffix(text)
    assert info.value.message == message


def test_dns_suffix_normalises() -> None:
    assert dns_suffix("Contoso.COM.") == "contoso.com"
    assert dns_suffix("exämple.com") == "xn--exmple-cua.com"


def test_foreign_baseline_is_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "sweep.jsonl"
    foreign.write_text('{"event": "port", "ip": "127.0.0.1", "port": 80}\n{"foo": 1}\n')
    with pytest.raises(UsageError) as info:
        load_baseline(str(foreign))
    assert info.value.message == f"--baseline {foreign}: no endpoint records of `scanner check` in it"
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert load_baseline(str(empty)) == {}


def test_sweep_state_path_checked_before_the_sweep(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        check_state_path(str(tmp_path))
    assert info.value.message == f"--state {tmp_path}: it is a folder"
    with pytest.raises(UsageError) as info:
        check_state_path("/nonexistent/st.json")
    assert info.value.message == "--state /nonexistent/st.json: /nonexistent is not a writable folder"
    check_state_path(str(tmp_path / "st.json"))
