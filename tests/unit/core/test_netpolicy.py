from __future__ import annotations

import pytest

from sikker.core.netpolicy import address_allowed

LOOPBACK = ("127.0.0.0/8", "::1/128")

# (address, allowed networks, expected)
CASES = [
    # public addresses: allowed
    ("93.184.216.34", (), True),
    ("8.8.8.8", (), True),
    ("2606:4700::1111", (), True),
    ("::ffff:8.8.8.8", (), True),  # mapped: judged as the IPv4 address
    ("64:ff9b::808:808", (), True),  # NAT64 of a public address
    ("2002:808:808::1", (), True),  # 6to4 of a public address
    # loopback
    ("127.0.0.1", (), False),
    ("127.8.9.10", (), False),
    ("::1", (), False),
    ("::ffff:127.0.0.1", (), False),
    ("64:ff9b::7f00:1", (), False),
    ("2002:7f00:1::", (), False),
    ("::127.0.0.1", (), False),  # IPv4-compatible (deprecated)
    # private: RFC 1918, ULA, CGNAT
    ("10.0.0.1", (), False),
    ("172.16.5.4", (), False),
    ("172.31.255.255", (), False),
    ("192.168.1.1", (), False),
    ("fd12:3456::1", (), False),
    ("fc00::1", (), False),
    ("100.64.0.1", (), False),
    ("::ffff:10.1.2.3", (), False),
    # link-local and the cloud metadata addresses
    ("169.254.1.1", (), False),
    ("169.254.169.254", (), False),
    ("fe80::1", (), False),
    ("fe80::1%eth0", (), False),
    ("fd00:ec2::254", (), False),
    ("100.100.100.200", (), False),
    ("192.0.0.192", (), False),
    # unspecified, multicast, broadcast, reserved, documentation, site-local
    ("0.0.0.0", (), False),
    ("0.1.2.3", (), False),
    ("::", (), False),
    ("224.0.0.1", (), False),
    ("239.255.255.250", (), False),
    ("ff02::1", (), False),
    ("255.255.255.255", (), False),
    ("240.0.0.1", (), False),
    ("192.0.2.10", (), False),
    ("2001:db8::1", (), False),
    ("fec0::1", (), False),
    # the operator's allowlist opens exactly the networks it names
    ("127.0.0.1", LOOPBACK, True),
    ("::1", LOOPBACK, True),
    ("::ffff:127.0.0.1", LOOPBACK, True),
    ("10.0.0.1", LOOPBACK, False),
    ("10.20.30.40", ("10.20.0.0/16",), True),
    ("10.21.0.1", ("10.20.0.0/16",), False),
    ("fd12:3456::1", ("fd12:3456::/32",), True),
    ("8.8.8.8", LOOPBACK, True),  # the allowlist adds, it does not restrict
    # ... but never the metadata endpoints
    ("169.254.169.254", ("169.254.0.0/16",), False),
    ("169.254.169.254", ("0.0.0.0/0",), False),
    ("::ffff:169.254.169.254", ("::/0", "0.0.0.0/0"), False),
    ("169.254.10.1", ("169.254.0.0/16",), True),
]


@pytest.mark.parametrize(("address", "allowed", "expected"), CASES)
def test_address_allowed(address: str, allowed: tuple[str, ...], expected: bool) -> None:
    assert address_allowed(address, allowed) is expected


def test_a_non_address_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        address_allowed("localhost")
