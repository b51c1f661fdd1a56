"""Port lists: `80,443,8000-8100`, and the bundled most-common TCP ports."""

from __future__ import annotations

from scanner.errors import UsageError

# nmap's most frequently open TCP ports (nmap-services), most common first.
TOP_PORTS: tuple[int, ...] = (
    80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111, 995,
    993, 5900, 1025, 587, 8888, 199, 1720, 465, 548, 113, 81, 6001, 10000, 514, 5060, 179,
    1026, 2000, 8443, 8000, 32768, 554, 26, 1433, 49152, 2001, 515, 8008, 49154, 1027, 5666,
    646, 5000, 5631, 631, 49153, 8081, 2049, 88, 79, 5800, 106, 2121, 1110, 49155, 6000, 513,
    990, 5357, 427, 49156, 543, 544, 5101, 144, 7, 389, 8009, 3128, 444, 9999, 5009, 7070,
    5190, 3000, 5432, 1900, 3986, 13, 1029, 9, 5051, 6646, 49157, 1028, 873, 1755, 2717,
    4899, 9100, 119, 37,
)


def _port(text: str, spec: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise UsageError(f"ports {spec!r}: {text!r} is not a port number (1-65535)")
    return int(text)


def parse_ports(spec: str) -> tuple[int, ...]:
    """`80,443,8000-8100` -> the ports in ascending order, each once."""
    ports: set[int] = set()
    for raw in spec.split(","):
        part = raw.strip()
        if not part:
            raise UsageError(f"ports {spec!r}: empty item")
        low, dash, high = part.partition("-")
        if dash:
            first, last = _port(low.strip(), spec), _port(high.strip(), spec)
            if last < first:
                raise UsageError(f"ports {spec!r}: the range {part} ends before it starts")
            ports.update(range(first, last + 1))
        else:
            ports.add(_port(part, spec))
    return tuple(sorted(ports))


def top_ports(count: int) -> tuple[int, ...]:
    if not 1 <= count <= len(TOP_PORTS):
        raise UsageError(f"--top-ports must be from 1 to {len(TOP_PORTS)}")
    return tuple(sorted(TOP_PORTS[:count]))


def port_list(spec: str | None, top: int | None) -> tuple[int, ...]:
    """The union of `-p` and `--top-ports`; at least one must be given."""
    ports: set[int] = set()
    if spec:
        ports.update(parse_ports(spec))
    if top:
        ports.update(top_ports(top))
    if not ports:
        raise UsageError("name the ports: -p 80,443,8000-8100 and/or --top-ports N")
    return tuple(sorted(ports))
