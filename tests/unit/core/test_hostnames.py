"""Hostname patterns run by RE2 (core/hostnames.py): linear time, whole-name matches."""

from __future__ import annotations

import pytest

from sikker.core import hostnames
from sikker.errors import InvalidInput


@pytest.mark.parametrize(
    ("pattern", "hostname", "matches"),
    [
        ("web-[0-9]+", "web-12", True),
        ("web-[0-9]+", "web-12.evil", False),  # the whole hostname must match
        ("web", "xweb", False),
        (r"ci-runner-\d{1,4}\.example\.com", "ci-runner-42.example.com", True),
        ("(a|a)+b", "a" * 255, False),  # catastrophic for a backtracking engine
        ("(a|a)+b", "a" * 254 + "b", True),
        ("a+", "a" * 256, False),  # longer than any hostname may be
    ],
)
def test_matches(pattern: str, hostname: str, matches: bool) -> None:
    assert hostnames.matches(pattern, hostname) is matches


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)a", "(", "x" * 513])
def test_patterns_re2_cannot_run_are_refused(pattern: str) -> None:
    with pytest.raises(InvalidInput, match="hostname pattern"):
        hostnames.check(pattern)


def test_a_stored_pattern_re2_cannot_compile_matches_nothing() -> None:
    assert not hostnames.matches(r"(a)\1", "aa")
