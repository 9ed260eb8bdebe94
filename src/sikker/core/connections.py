"""Which new connections the HTTP edge admits: a cap in total and per source (pure, no I/O).

A source is an IPv4 address, or the /64 prefix of an IPv6 address (one host usually holds a
whole /64, so counting single IPv6 addresses would not cap anything).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


def source_of(host: str) -> str:
    """The key a peer address is counted under (IPv4-mapped IPv6 counts as its IPv4)."""
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


@dataclass(slots=True)
class ConnectionCaps:
    """At most ``total`` open connections, at most ``per_source`` from one source."""

    total: int
    per_source: int
    open: int = 0
    _by_source: dict[str, int] = field(default_factory=dict)

    def admit(self, source: str) -> bool:
        """Count a new connection from ``source``; False (and nothing counted) over a cap."""
        if self.open >= self.total:
            return False
        held = self._by_source.get(source, 0)
        if held >= self.per_source:
            return False
        self._by_source[source] = held + 1
        self.open += 1
        return True

    def release(self, source: str) -> None:
        """Forget a connection that ``admit`` counted."""
        self.open -= 1
        held = self._by_source[source] - 1
        if held:
            self._by_source[source] = held
        else:
            del self._by_source[source]

    def held_by(self, source: str) -> int:
        return self._by_source.get(source, 0)
