from __future__ import annotations

import orjson
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


# -- control characters ------------------------------------------------------------------------
CONTROL = ["\x00", "\x01", "\x08", "\x0b", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]


def _api_schemas() -> list[tuple[str, str, schema.Field]]:
    """Every field of every request schema declared at module level in sikker.api."""
    import importlib
    import pkgutil

    import sikker.api

    found = []
    for info in pkgutil.iter_modules(sikker.api.__path__):
        module = importlib.import_module(f"sikker.api.{info.name}")
        for const, value in vars(module).items():
            if isinstance(value, dict) and value and all(isinstance(v, schema.Field) for v in value.values()):
                found += [(f"{info.name}.{const}", name, spec) for name, spec in value.items()]
    return found


API_FIELDS = _api_schemas()


def test_the_sweep_finds_the_api_schemas() -> None:
    assert len(API_FIELDS) > 50


@pytest.mark.parametrize("char", [*CONTROL, "\t", "\n", "\r"])
@pytest.mark.parametrize(
    ("where", "name", "spec"),
    [f for f in API_FIELDS if f[2].type in (str, list) and not f[2].opaque],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_text_field_refuses_control_characters(
    where: str, name: str, spec: schema.Field, char: str
) -> None:
    if spec.multiline and char in "\t\n\r":
        return
    text = f"a{char}b"
    body = {name: text if spec.type is str else [text]}
    with pytest.raises(InvalidInput, match="control characters"):
        schema.parse(orjson.dumps(body), {name: spec})


def test_only_secret_content_and_passwords_are_opaque() -> None:
    assert sorted((w, n) for w, n, s in API_FIELDS if s.opaque) == [
        ("admin.CREATE_SECRET_FIELDS", "fields"),  # {"name"} | VALUE_FIELDS
        ("admin.CREATE_SECRET_FIELDS", "value"),
        ("admin.VALUE_FIELDS", "fields"),
        ("admin.VALUE_FIELDS", "value"),
        ("people.LOGIN_FIELDS", "password"),
        ("people.USER_FIELDS", "password"),
    ]


@pytest.mark.parametrize("char", [*CONTROL, "\t", "\n", "\r"])
def test_opaque_fields_take_any_character(char: str) -> None:
    fields = {"value": schema.Field(str, opaque=True), "fields": schema.Field(dict, opaque=True)}
    body = {"value": f"a{char}", "fields": {f"k{char}": f"v{char}"}}
    assert schema.parse(orjson.dumps(body), fields) == body


def test_multiline_fields_take_tab_and_line_breaks_only() -> None:
    fields = {"reason": schema.Field(str, multiline=True)}
    assert schema.parse(orjson.dumps({"reason": "a\tb\r\nc"}), fields) == {"reason": "a\tb\r\nc"}
    with pytest.raises(InvalidInput):
        schema.parse(orjson.dumps({"reason": "a\x00"}), fields)


def test_control_characters_in_nested_keys_and_items_are_refused() -> None:
    fields = {"config": schema.Field(dict), "items": schema.Field(list)}
    for body in ({"config": {"k\x00": "v"}}, {"config": {"k": ["\x85"]}}, {"items": [["\x7f"]]}):
        with pytest.raises(InvalidInput, match="control characters"):
            schema.parse(orjson.dumps(body), fields)


# -- integers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, 7),
        ("", 7),
        ("0", 0),
        ("42", 42),
        ("999999999999999", 999_999_999_999_999),
        ("²", InvalidInput),
        ("¹²", InvalidInput),
        ("٣", InvalidInput),
        ("\uff11", InvalidInput),
        ("-1", InvalidInput),
        ("+1", InvalidInput),
        (" 1", InvalidInput),
        ("1e3", InvalidInput),
        ("1000000000000000", InvalidInput),
        ("9" * 5000, InvalidInput),
    ],
)
def test_query_int_takes_ascii_digits_in_bounds(raw: str | None, expected: int | type) -> None:
    params = {} if raw is None else {"n": raw}
    if expected is InvalidInput:
        with pytest.raises(InvalidInput, match="n must be an integer"):
            schema.query_int(params, "n", 7)
    else:
        assert schema.query_int(params, "n", 7) == expected


def test_query_int_applies_its_own_bounds() -> None:
    assert schema.query_int({"v": "5"}, "v", minimum=1, maximum=9) == 5
    for raw in ("0", "10", "2147483648"):
        with pytest.raises(InvalidInput):
            schema.query_int({"v": raw}, "v", minimum=1, maximum=9)


@pytest.mark.parametrize("value", [2**31, 2**63 - 1, 2**63, 2**64 - 1])
@pytest.mark.parametrize(
    ("where", "name", "spec"),
    [f for f in API_FIELDS if f[2].type is int],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_integer_field_is_bounded(where: str, name: str, spec: schema.Field, value: int) -> None:
    with pytest.raises(InvalidInput, match="at most"):
        schema.parse(orjson.dumps({name: value}), {name: spec})
