"""Where a network stream connects: resolve the host once, check every address, pin one.

Webhook, syslog and email sinks call ``resolve`` at the start of every delivery and then
connect to ``Destination.pinned``, the address that was checked, never to the host name
again: a second lookup could answer differently (DNS rebinding). The decision itself is
``sikker.core.netpolicy.address_allowed``; the stream service asks the same question when a
stream is added.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import ip_address

from sikker.core.netpolicy import IPAddress, address_allowed
from sikker.errors import SikkerError

# host, port -> IP address strings, in the order to try them.
Resolver = Callable[[str, int], Sequence[str]]


class DeliveryError(SikkerError):
    """A sink could not hand a batch over; the caller should retry later."""

    default_message = "audit stream delivery failed"


class DeliveryRefused(DeliveryError):
    """The destination is not allowed (network policy, file confinement): retrying will not
    help until the stream or the operator's settings change."""

    default_message = "audit stream destination not allowed"


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host``, duplicates removed."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class Destination:
    host: str
    port: int
    addresses: tuple[IPAddress, ...]
    refused: tuple[IPAddress, ...]

    @property
    def pinned(self) -> IPAddress:
        """The address to connect to (the first one the resolver gave)."""
        return self.addresses[0]

    def refusal(self, label: str) -> str:
        """Why the destination is refused: safe to show (no path, query or credentials)."""
        address = self.refused[0]
        what = f"address {address}" if self.host.strip("[]") == str(address) else f"{self.host} ({address})"
        return (
            f"{label}: {what} is not allowed for audit streams (loopback, private, link-local, "
            "multicast, reserved and cloud metadata addresses are refused); an operator can "
            "open a network with stream_allowed_networks (SIKKER_STREAM_ALLOWED_NETWORKS)"
        )


def resolve(
    label: str, host: str, port: int, allowed_networks: Sequence[str], resolver: Resolver
) -> Destination:
    """Resolve ``host`` once and check every address. Raises DeliveryError when it does not
    resolve; a refused address is reported in ``Destination.refused``, not raised."""
    literal = host.strip("[]")
    try:
        found: Sequence[str] = [str(ip_address(literal))]
    except ValueError:
        try:
            found = resolver(host, port)
        except (OSError, UnicodeError) as e:
            raise DeliveryError(f"{label}: cannot resolve {host}: {type(e).__name__}") from e
    try:
        addresses = tuple(dict.fromkeys(ip_address(a) for a in found))
    except ValueError as e:
        raise DeliveryError(f"{label}: {host} resolved to something that is not an address") from e
    if not addresses:
        raise DeliveryError(f"{label}: cannot resolve {host}: no address")
    refused = tuple(a for a in addresses if not address_allowed(a, allowed_networks))
    return Destination(host, port, addresses, refused)


def checked(
    label: str, host: str, port: int, allowed_networks: Sequence[str], resolver: Resolver
) -> Destination:
    """``resolve``, raising DeliveryRefused unless every address is allowed."""
    destination = resolve(label, host, port, allowed_networks, resolver)
    if destination.refused:
        raise DeliveryRefused(destination.refusal(label))
    return destination
