"""Which addresses an audit stream may connect to (pure: no resolution, no sockets).

A stream is configured by a vault admin but connects from the server, so by default it may
reach only public addresses: loopback, private (RFC 1918, ULA, CGNAT), link-local,
unspecified, multicast, reserved and documentation ranges are denied, as is anything else
Python's ``ipaddress`` does not call global. The operator opens networks with
``stream_allowed_networks``. Cloud metadata endpoints stay denied even then: no collector
lives there, and they hand out the server's cloud credentials.

IPv6 forms that carry an IPv4 address (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96`` and 6to4
``2002::/16``) are judged by the IPv4 address too, so they cannot smuggle ``127.0.0.1``.
"""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address

METADATA_ADDRESSES = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud Classic
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")


def embedded_ipv4(ip: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if isinstance(ip, IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is an ordinary Internet address (no special-purpose range)."""
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_reserved
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_private
        or ip.is_unspecified
        or (isinstance(ip, IPv6Address) and ip.is_site_local)
    )


def address_allowed(ip: IPAddress | str, allowed_networks: Iterable[str] = ()) -> bool:
    """Whether a stream may connect to ``ip``, given the operator's allowed networks (CIDRs).

    Raises ValueError for a string that is not an IP address or a network that is not a CIDR.
    """
    address = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, IPv6Address) and address.scope_id:
        address = IPv6Address(address.compressed.split("%", 1)[0])
    v4 = embedded_ipv4(address)
    if address in METADATA_ADDRESSES or v4 in METADATA_ADDRESSES:
        return False
    networks: list[IPv4Network | IPv6Network] = [ip_network(n, strict=False) for n in allowed_networks]
    if any(c in n for n in networks for c in (address, v4) if c is not None and c.version == n.version):
        return True
    if v4 is None:
        return is_public(address)
    # Mapped and NAT64 addresses are just the IPv4 address; 6to4 must be public both ways.
    is_6to4 = isinstance(address, IPv6Address) and address.sixtofour is not None
    return is_public(v4) and (is_public(address) or not is_6to4)


def inside(ip: IPAddress | str, networks: Iterable[str]) -> bool:
    """Whether ``ip`` (or the IPv4 address it carries) lies in one of ``networks`` (CIDRs)."""
    address = ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(address, IPv6Address) and address.scope_id:
        address = IPv6Address(address.compressed.split("%", 1)[0])
    candidates = [c for c in (address, embedded_ipv4(address)) if c is not None]
    parsed = [ip_network(n, strict=False) for n in networks]
    return any(c in n for n in parsed for c in candidates if c.version == n.version)
