"""Headless Chromium for the tests: a page from a file:// URL, never the network.

`dump_dom` runs `chromium --dump-dom` (the DOM after the page's scripts ran);
`Browser` speaks the DevTools protocol over `--remote-debugging-pipe` (NUL-framed
JSON on fds 3 and 4: no port, no WebSocket) to click and read the page back.
Every wait is bounded.
"""

from __future__ import annotations

import base64
import fcntl
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

# Off: everything that could reach out (updates, sync, metrics, QUIC, DNS prefetch).
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
    "--metrics-recording-only", "--disable-breakpad", "--dns-prefetch-disable",
    "--password-store=basic", "--use-mock-keychain",
]
TIMEOUT_S = 30.0


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found is not None, "chromium is needed (Debian package chromium; tests/run installs it)"
    return found


def _env() -> dict[str, str]:
    # No D-Bus: Unix sockets are not fenced by the network namespace.
    return {**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:",
            "DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"}


def file_url(path: Path) -> str:
    return path.resolve().as_uri()


def dump_dom(page: Path) -> str:
    """The serialized DOM of a local page after its scripts ran."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                               file_url(page)], capture_output=True, timeout=TIMEOUT_S, env=_env(),
                              check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    return done.stdout.decode()


class Browser:
    """One headless Chromium driven over the DevTools pipe."""

    def __init__(self) -> None:
        self._profile = tempfile.TemporaryDirectory()
        # Above 4, so that moving them to 3 and 4 cannot overwrite one with the other.
        to_child_r, self._to_child = _high(os.pipe())
        self._from_child, from_child_w = _high(os.pipe())
        # The child reads commands on fd 3 and writes replies on fd 4 (moved there by bash,
        # which is safer than a preexec_fn in a process with threads).
        self._proc = subprocess.Popen(
            ["bash", "-c", 'r=$1 w=$2; shift 2; exec "$@" 3<&"$r" 4>&"$w"', "bash",
             str(to_child_r), str(from_child_w),
             chromium(), *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
             "--window-size=1400,1000", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
            pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = next(t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        self._session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                  flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._send({"id": 0, "method": "Browser.close"})
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        os.close(self._to_child)
        os.close(self._from_child)
        self._profile.cleanup()

    def _send(self, message: dict[str, Any]) -> None:
        os.write(self._to_child, orjson.dumps(message) + b"\0")

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "chromium did not answer in time"
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 65536)
                assert chunk, "chromium closed the DevTools pipe"
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = orjson.loads(message)
        return parsed

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, reply["error"]
                result: dict[str, Any] = reply["result"]
                return result
            self._events.append(reply)

    def open(self, page: Path) -> None:
        """Navigate to a local page and wait for its load event (its scripts have run)."""
        self._events.clear()
        self.call("Page.navigate", session=True, url=file_url(page))
        deadline = time.monotonic() + TIMEOUT_S
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            self._events.append(self._receive(deadline))

    def evaluate(self, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        assert "exceptionDetails" not in reply, reply["exceptionDetails"]
        return reply["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def console_errors(self) -> list[dict[str, Any]]:
        """Exceptions and CSP violations reported so far."""
        return [e for e in self._events if e.get("method") in (
            "Runtime.exceptionThrown", "Log.entryAdded")]



def _high(pair: tuple[int, int]) -> tuple[int, int]:
    moved = tuple(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in pair)
    for fd in pair:
        os.close(fd)
    return moved[0], moved[1]
