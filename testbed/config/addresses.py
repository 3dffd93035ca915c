"""`HOST:PORT` addresses in the config (`registry.listen`, `registry.advertise`):
what a well-formed one is."""

from __future__ import annotations


def host_port_problem(text: str, min_port: int = 0) -> str | None:
    """None for `HOST:PORT` (an IPv6 host in brackets) with a port ≥ `min_port`, else
    what was expected."""
    host, sep, port = text.rpartition(":")
    want = f"expected HOST:PORT with a port in [{min_port}, 65535], got {text!r}"
    if not sep or not host or not port.isdigit() or not min_port <= int(port) <= 65535:
        return want
    return None
