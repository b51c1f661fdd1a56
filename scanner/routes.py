"""Routes: parsing proxy URLs, redacting them, and the proxy environment variables.

Pure functions: the environment is passed in as a mapping.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from scanner.errors import ProxyURLError
from scanner.models import Route, RouteKind, RouteSource
from scanner.names import is_ip_literal, split_host_port, validate_hostname

_SCHEMES = {
    "http": RouteKind.HTTP,
    "socks4": RouteKind.SOCKS4,
    "socks4a": RouteKind.SOCKS4,
    "socks5": RouteKind.SOCKS5,
    "socks5h": RouteKind.SOCKS5H,
}
DEFAULT_DIRECT = Route(RouteKind.DIRECT, source=RouteSource.DEFAULT)  # nothing configured
_DEFAULT_PORTS = {RouteKind.HTTP: 80, RouteKind.SOCKS4: 1080, RouteKind.SOCKS5: 1080,
                  RouteKind.SOCKS5H: 1080}


def redact_url(text: str) -> str:
    """Hide anything between `://` and the last `@`: for error messages."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    # up to the last '@' anywhere, not just before the first '/': a password may hold an
    # unencoded '/', and then the authority ends inside it
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


def parse_proxy_url(text: str, source: RouteSource = RouteSource.EXPLICIT) -> Route:
    """`http://[user:pass@]host:port`, `socks5://`, `socks5h://`, `socks4://`.

    Errors never repeat the credentials: the URL is redacted in every message.
    """
    shown = redact_url(text.strip())
    raw = text.strip()
    if "://" not in raw:
        raise ProxyURLError(f"proxy URL {shown!r}: expected SCHEME://HOST:PORT (e.g. http://proxy:3128)")
    scheme, _, rest = raw.partition("://")
    kind = _SCHEMES.get(scheme.lower())
    if kind is None:
        supported = ", ".join(f"{s}://" for s in _SCHEMES)
        raise ProxyURLError(f"proxy URL {shown!r}: unsupported scheme {scheme!r} (use {supported})")
    authority, _, path = rest.partition("/")
    if path.strip("/"):
        hint = " (write a '/' in a user name or password as %2F)" if "@" in path else ""
        raise ProxyURLError(f"proxy URL {shown!r}: a proxy URL has no path{hint}")
    username = password = None
    if "@" in authority:
        userinfo, _, authority = authority.rpartition("@")
        user, colon, secret = userinfo.partition(":")
        username = unquote(user)
        password = unquote(secret) if colon else ""
    if authority.count(":") > 1 and not authority.startswith("["):
        raise ProxyURLError(f"proxy URL {shown!r}: write an IPv6 address as [ADDR]:PORT")
    try:
        host, port_text = split_host_port(authority)
    except ValueError as exc:
        raise ProxyURLError(f"proxy URL {shown!r}: {exc}") from None
    host = host.lower()
    problem = None if is_ip_literal(host) else validate_hostname(host)
    if problem:
        raise ProxyURLError(f"proxy URL {shown!r}: {problem}")
    if port_text is None or port_text == "":
        port = _DEFAULT_PORTS[kind]
    elif port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise ProxyURLError(f"proxy URL {shown!r}: {port_text!r} is not a port number (1-65535)")
    return Route(kind, host, port, username, password, source)


def scheme_for_port(port: int) -> str:
    """The URL scheme a client would use for an endpoint port (443 and others: https)."""
    return "http" if port == 80 else "https"


@dataclass(frozen=True, slots=True)
class EnvProxies:
    """Proxy settings read from the environment, curl's way."""

    http: Route | None
    https: Route | None
    all: Route | None
    no_proxy: tuple[str, ...]

    def route_for(self, host: str, port: int) -> Route:
        if no_proxy_matches(self.no_proxy, host):
            return Route(RouteKind.DIRECT, source=RouteSource.ENV)
        chosen = self.http if scheme_for_port(port) == "http" else self.https
        chosen = chosen or self.all
        return chosen if chosen is not None else DEFAULT_DIRECT

    @property
    def configured(self) -> bool:
        return any(r is not None for r in (self.http, self.https, self.all))


def _env(environ: Mapping[str, str], name: str) -> str | None:
    # lower case wins, as in curl; an empty value counts as unset
    for key in (name.lower(), name.upper()):
        value = environ.get(key, "").strip()
        if value:
            return value
    return None


def env_proxies(environ: Mapping[str, str]) -> EnvProxies:
    """HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY in either case.

    A value without a scheme is taken as http://, as curl does.
    """
    routes: dict[str, Route | None] = {}
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        value = _env(environ, name)
        if value is None:
            routes[name] = None
            continue
        if "://" not in value:
            value = "http://" + value
        try:
            routes[name] = parse_proxy_url(value, RouteSource.ENV)
        except ProxyURLError as exc:
            raise ProxyURLError(f"{name.upper()}: {exc.message}") from None
    no_proxy = tuple(
        part.strip().lower() for part in (_env(environ, "no_proxy") or "").replace(" ", ",").split(",")
        if part.strip()
    )
    return EnvProxies(routes["http_proxy"], routes["https_proxy"], routes["all_proxy"], no_proxy)


def no_proxy_matches(entries: Sequence[str], host: str) -> bool:
    """curl's NO_PROXY rules: `*` matches all; a name matches itself and its subdomains
    (a leading dot is optional); an IP literal or CIDR matches addresses."""
    host = host.lower().rstrip(".")
    host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        host_ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        host_ip = None
    for entry in entries:
        if entry == "*":
            return True
        if host_ip is not None:
            try:
                if host_ip in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        name = entry.lstrip(".").rstrip(".")
        if name.startswith("*."):
            name = name[2:]
        if name and (host == name or host.endswith("." + name)):
            return True
    return False
