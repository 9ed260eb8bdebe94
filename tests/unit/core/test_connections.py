"""ConnectionCaps and source_of: which connections the HTTP edge admits (table tests)."""

from __future__ import annotations

import pytest

from sikker.core.connections import ConnectionCaps, source_of


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        ("", ""),
    ],
)
def test_source_of_groups_ipv6_by_64(host: str, source: str) -> None:
    assert source_of(host) == source


# (steps, expected results): "+a" admits from a, "-a" releases one from a.
CASES = [
    (["+a", "+a", "+a"], [True, True, False]),  # per source 2
    (["+a", "+a", "+b", "+c"], [True, True, True, False]),  # total 3
    (["+a", "+a", "-a", "+a"], [True, True, None, True]),  # a release frees a place
    (["+a", "+b", "+c", "-b", "+d"], [True, True, True, None, True]),
    (["+a", "+a", "+a", "-a", "+a", "+a"], [True, True, False, None, True, False]),  # refusals uncounted
]


@pytest.mark.parametrize(("steps", "expected"), CASES)
def test_caps_admit_within_total_and_per_source(steps: list[str], expected: list[bool | None]) -> None:
    caps = ConnectionCaps(total=3, per_source=2)
    results: list[bool | None] = []
    for step in steps:
        if step[0] == "+":
            results.append(caps.admit(step[1:]))
        else:
            caps.release(step[1:])
            results.append(None)
    assert results == expected


def test_released_sources_are_forgotten() -> None:
    caps = ConnectionCaps(total=10, per_source=5)
    for source in ("a", "b", "a"):
        assert caps.admit(source)
    for source in ("a", "b", "a"):
        caps.release(source)
    assert caps.open == 0
    assert caps.held_by("a") == 0
    assert not caps._by_source
