"""The sandboxed PAC evaluator: runs in a child process, never in scanner itself.

The parent starts it with an empty environment and `python -I`, writes one JSON
request line, answers DNS questions, and kills it at its deadline. Here the
process lowers its own limits (CPU, memory, files), then runs the script in a
QuickJS context that has no file, process or environment access at all: the
only ways out are the callables below, which do arithmetic or ask the parent
for DNS answers over the pipe.

Protocol (JSON lines): in, the request, then one answer per DNS question
(`{"addresses": [...]}`); out, `{"dns": NAME}` questions, one
`{"call": i, "raw": STR}` or `{"call": i, "error": STR}` per call, then
`{"done": true, "alerts": [...]}`; `{"loaded": true}` comes first, or `{"fatal": STR}`
when the script fails to load.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import IO, Any

from scanner.discovery import pachelpers as h

MAX_REQUEST = 8 << 20
MAX_DNS = 100
MAX_ALERTS, MAX_ALERT_LEN = 20, 200
JS_MEMORY = 64 << 20
JS_STACK = 1 << 20

HELPERS_JS = r"""
var __scanner = (function () {
  var dns = __scanner_dns;
  function v4(s) { return /^\d{1,3}(\.\d{1,3}){3}$/.test(s); }
  function lit(s) { return v4(s) || s.indexOf(":") >= 0; }
  function all(host) {
    host = String(host);
    return lit(host) ? host : dns(host);
  }
  function args(a) { return JSON.stringify(Array.prototype.slice.call(a)); }
  return { v4: v4, all: all, args: args };
})();
function isPlainHostName(host) { return String(host).indexOf(".") < 0; }
function dnsDomainIs(host, domain) {
  host = String(host).toLowerCase(); domain = String(domain).toLowerCase();
  return host.length >= domain.length && host.substring(host.length - domain.length) == domain;
}
function localHostOrDomainIs(host, hostdom) {
  host = String(host).toLowerCase(); hostdom = String(hostdom).toLowerCase();
  return host == hostdom || hostdom.lastIndexOf(host + ".", 0) == 0;
}
function dnsDomainLevels(host) { return String(host).split(".").length - 1; }
function shExpMatch(str, shexp) { return __scanner_sh(String(str), String(shexp)); }
function dnsResolve(host) {
  var list = __scanner.all(host).split(";");
  for (var i = 0; i < list.length; i++) if (__scanner.v4(list[i])) return list[i];
  return null;
}
function isResolvable(host) { return dnsResolve(host) !== null; }
function isInNet(host, pattern, mask) {
  var ip = __scanner.v4(String(host)) ? String(host) : dnsResolve(host);
  return ip !== null && __scanner_in_net(ip, String(pattern), String(mask));
}
function myIpAddress() { return __scanner_my_ip(); }
function dnsResolveEx(host) { return __scanner.all(host); }
function isResolvableEx(host) { return dnsResolveEx(host) !== ""; }
function isInNetEx(host, prefix) {
  var list = dnsResolveEx(host).split(";");
  for (var i = 0; i < list.length; i++)
    if (list[i] && __scanner_in_net_ex(list[i], String(prefix))) return true;
  return false;
}
function myIpAddressEx() { return __scanner_my_ip_ex(); }
function sortIpAddressList(list) { var r = __scanner_sort(String(list)); return r === "" ? false : r; }
function getClientVersion() { return "1.0"; }
function weekdayRange() { return __scanner_clock("weekday", __scanner.args(arguments)); }
function dateRange() { return __scanner_clock("date", __scanner.args(arguments)); }
function timeRange() { return __scanner_clock("time", __scanner.args(arguments)); }
function alert(message) { __scanner_alert(String(message)); }
"""

DEFINED_JS = 'typeof FindProxyForURLEx == "function" || typeof FindProxyForURL == "function"'
CALL_JS = r"""(function (url, host) {
  var f = typeof FindProxyForURLEx == "function" ? FindProxyForURLEx : FindProxyForURL;
  var r = f(url, host);
  return JSON.stringify([typeof r, typeof r == "string" ? r : ""]);
})(%s, %s)"""


def _limit_self(cpu_seconds: int) -> None:
    import resource  # noqa: PLC0415

    for which, value in ((resource.RLIMIT_CPU, cpu_seconds), (resource.RLIMIT_FSIZE, 0),
                         (resource.RLIMIT_CORE, 0), (resource.RLIMIT_AS, 1 << 30),
                         (resource.RLIMIT_NOFILE, 8)):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            pass


class _Child:
    def __init__(self, request: dict[str, Any], out: IO[str], inp: IO[str]) -> None:
        self.out, self.inp = out, inp
        now = request["now"]
        self.clock = h.Clock(datetime.fromisoformat(now["local"]), datetime.fromisoformat(now["utc"]))
        self.my_ips: list[str] = list(request["my_ips"])
        self.asked = 0
        self.alerts: list[str] = []

    def send(self, message: dict[str, Any]) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def dns(self, host: str) -> str:
        self.asked += 1
        if self.asked > MAX_DNS:
            return ""
        self.send({"dns": str(host)[:300]})
        reply = json.loads(self.inp.readline(1 << 16) or "{}")
        return ";".join(str(a) for a in reply.get("addresses", []))

    def clock_call(self, which: str, args_json: str) -> bool:
        args = json.loads(args_json)
        fn = {"weekday": h.weekday_range, "date": h.date_range, "time": h.time_range}[which]
        return fn(args if isinstance(args, list) else [], self.clock)

    def alert(self, message: str) -> None:
        if len(self.alerts) < MAX_ALERTS:
            self.alerts.append(message[:MAX_ALERT_LEN])


def run(request: dict[str, Any], out: IO[str], inp: IO[str]) -> None:
    import quickjs  # noqa: PLC0415

    child = _Child(request, out, inp)
    ctx = quickjs.Context()
    ctx.set_memory_limit(JS_MEMORY)
    ctx.set_max_stack_size(JS_STACK)
    # No ctx.set_time_limit: this quickjs binding refuses calls into Python under one, and
    # the DNS helpers are such calls. The parent's deadline (a kill) bounds the time instead.
    ctx.add_callable("__scanner_dns", child.dns)
    ctx.add_callable("__scanner_sh", h.sh_exp_match)
    ctx.add_callable("__scanner_in_net", h.is_in_net)
    ctx.add_callable("__scanner_in_net_ex", h.is_in_net_ex)
    ctx.add_callable("__scanner_sort", h.sort_ip_address_list)
    ctx.add_callable("__scanner_my_ip", lambda: next((a for a in child.my_ips if ":" not in a), "127.0.0.1"))
    ctx.add_callable("__scanner_my_ip_ex", lambda: ";".join(child.my_ips))
    ctx.add_callable("__scanner_clock", child.clock_call)
    ctx.add_callable("__scanner_alert", child.alert)
    ctx.eval(HELPERS_JS)
    try:
        ctx.eval(str(request["script"]))
    except Exception as exc:  # quickjs.JSException, StackOverflow, MemoryError...
        child.send({"fatal": _message(exc)})
        return
    if not ctx.eval(DEFINED_JS):
        child.send({"fatal": "the script defines no FindProxyForURL function"})
        return
    child.send({"loaded": True})
    for index, (url, host) in enumerate(request["calls"]):
        try:
            kind, raw = json.loads(str(ctx.eval(CALL_JS % (json.dumps(url), json.dumps(host)))))
        except Exception as exc:
            child.send({"call": index, "error": _message(exc)})
            continue
        if kind != "string":
            child.send({"call": index, "error": f"FindProxyForURL returned {kind}, not a string"})
        else:
            child.send({"call": index, "raw": raw})
    child.send({"done": True, "alerts": child.alerts})


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:300]


def _die_with_parent() -> None:
    """Linux: be killed when scanner exits, however it exits (SIGTERM, SIGKILL), so a
    script stuck in a loop never outlives the run that started it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # noqa: PLC0415
    import os  # noqa: PLC0415
    import signal  # noqa: PLC0415

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main() -> None:
    _die_with_parent()
    raw = sys.stdin.readline(MAX_REQUEST)
    request = json.loads(raw)
    _limit_self(int(request["cpu_seconds"]))
    run(request, sys.stdout, sys.stdin)


if __name__ == "__main__":
    main()
