"""Hostname patterns of enrollment tokens: regular expressions run by RE2.

RE2 matches in time linear in the hostname, whatever the pattern (no catastrophic
backtracking: ``(a|a)+b`` against 255 ``a``\\ s takes microseconds). Patterns that need
backtracking features (backreferences, lookaround) are refused when the token is created; a
stored pattern RE2 cannot compile matches nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import re2  # type: ignore[import-untyped]

from sikker.errors import InvalidInput

PATTERN_MAX = 512
HOSTNAME_MAX = 255

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is our error to report, not a line on stderr
_OPTIONS.max_mem = 1 << 20  # bounds the compiled program of an admin-supplied pattern


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return re2.compile(pattern, options=_OPTIONS)


def check(pattern: str) -> str:
    """The pattern, if RE2 can run it; InvalidInput otherwise."""
    if len(pattern) > PATTERN_MAX:
        raise InvalidInput(f"hostname pattern must be at most {PATTERN_MAX} characters")
    try:
        _compiled(pattern)
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else e
        raise InvalidInput(f"hostname pattern is not a valid RE2 regular expression: {reason}") from e
    return pattern


def matches(pattern: str, hostname: str) -> bool:
    """True when the whole hostname matches the pattern."""
    if len(hostname) > HOSTNAME_MAX or len(pattern) > PATTERN_MAX:
        return False
    try:
        compiled = _compiled(pattern)
    except re2.error:
        return False
    return compiled.fullmatch(hostname) is not None
