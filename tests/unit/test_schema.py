from __future__ import annotations

import pytest

from sikker.api import schema
from sikker.errors import InvalidInput

FIELDS = {
    "name": schema.Field(str, required=True, max_len=5),
    "count": schema.Field(int, min_value=1, max_value=10),
    "flag": schema.Field(bool),
}


def test_valid_body_passes_and_null_means_absent() -> None:
    assert schema.parse(b'{"name": "ab", "count": 3, "flag": null}', FIELDS) == {"name": "ab", "count": 3}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"count": 1}', "missing field 'name'"),
        (b'{"name": "abcdef"}', "longer than 5"),
        (b'{"name": "a", "count": true}', "must be an integer"),
        (b'{"name": "a", "count": 0}', "at least 1"),
        (b'{"name": "a", "count": 11}', "at most 10"),
        (b'{"name": "a", "zzz": 1}', "unknown field"),
        (b'{"name": "a", "flag": "yes"}', "must be a boolean"),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_invalid_bodies_are_refused_with_a_message(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        schema.parse(raw, FIELDS)


def test_depth_is_bounded() -> None:
    deep = b'{"name": "a", "x": ' + b"[" * 20 + b"]" * 20 + b"}"
    with pytest.raises(InvalidInput, match=r"deeper|unknown"):
        schema.parse(deep, FIELDS | {"x": schema.Field(list)})
