"""The deployment examples: each parses with its own tool, and its scanner flags are real."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import yaml

from scanner.cli import build_parser

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def scanner_args(command: str) -> list[str]:
    """The words after `scanner` in a shell command line, up to the next shell operator."""
    words = shlex.split(command.replace(";", " ; "), posix=True)
    start = next(i for i, w in enumerate(words) if w.endswith("scanner") and i + 1 < len(words)
                 and words[i + 1] == "check")
    args = []
    for word in words[start + 1:]:
        if word in {";", "&&", "||", "|"} or word.startswith(">"):
            break
        args.append(word)
    return args


def parses(args: list[str]) -> None:
    parsed = build_parser().parse_args(args)
    assert parsed.command == "check"
    assert parsed.catalog == "defender-atp"


def test_systemd_units_verify() -> None:
    tool = shutil.which("systemd-analyze")
    assert tool is not None, "systemd-analyze (Debian package systemd) is needed"
    units = [EXAMPLES / "systemd" / "scanner-check.service", EXAMPLES / "systemd" / "scanner-check.timer"]
    done = subprocess.run([tool, "verify", *map(str, units)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    service = units[0].read_text()
    exec_start = service.split("ExecStart=", 1)[1].split("\n# ", 1)[0].replace("\\\n", " ")
    parses(scanner_args(exec_start.strip().removeprefix("/bin/sh -c ").strip("'")))
    assert "SuccessExitStatus=1 4" in service


def test_cron_line() -> None:
    lines = [line for line in (EXAMPLES / "cron" / "scanner.cron").read_text().splitlines()
             if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    assert fields[5] == "scanner"  # the user column of /etc/cron.d
    parses(scanner_args(fields[6]))


def test_kubernetes_cronjob() -> None:
    doc = yaml.safe_load((EXAMPLES / "kubernetes" / "cronjob.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "CronJob")
    assert len(doc["spec"]["schedule"].split()) == 5
    pod = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    container = pod["containers"][0]
    parses(scanner_args(container["args"][0].split("&&", 1)[1]))


def test_windows_task_runs_as_system() -> None:
    root = ET.fromstring((EXAMPLES / "windows" / "scanner-check.xml").read_bytes())
    ns = {"t": "http://schemas.microsoft.com/windows/2004/02/mit/task"}
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=ns) == "S-1-5-18"
    assert root.findtext("t:Triggers/t:TimeTrigger/t:Repetition/t:Interval", namespaces=ns) == "PT15M"
    command = root.findtext("t:Actions/t:Exec/t:Command", namespaces=ns)
    arguments = root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=ns)
    assert command is not None and command.endswith("scanner.exe")
    assert arguments is not None
    parses(shlex.split(arguments, posix=False))
