"""Probes: the only code that touches sockets, aiodns and python-socks."""
