from __future__ import annotations

import pytest

from sikker.core import ids, values
from sikker.errors import InvalidInput, PayloadTooLarge


def test_structured_values_keep_field_order_and_names() -> None:
    v = values.structured({"user": "a", "password": "b"})
    assert v.kind == "structured" and v.field_names == '["user","password"]'
    assert values.from_plaintext("structured", v.plaintext) == v


def test_repr_never_shows_the_value() -> None:
    assert "s3cr3t" not in repr(values.standard("s3cr3t"))


@pytest.mark.parametrize("fields", [{}, {"a": 1}, {"": "x"}, {"a": None}, ["a"], "a"])
def test_structured_values_must_be_objects_of_strings(fields: object) -> None:
    with pytest.raises(InvalidInput):
        values.structured(fields)


def test_error_messages_do_not_echo_values() -> None:
    with pytest.raises(InvalidInput) as info:
        values.structured({"password": 123456789})
    assert "123456789" not in str(info.value)


def test_value_size_limit_is_enforced() -> None:
    values.standard("x" * 10, max_bytes=10)
    with pytest.raises(PayloadTooLarge):
        values.standard("x" * 11, max_bytes=10)


@pytest.mark.parametrize("name", ["", "a" * 256, "bad\nname", 5])
def test_bad_names(name: object) -> None:
    with pytest.raises(InvalidInput):
        values.check_name(name)


def test_ids_have_prefix_and_16_lowercase_alphanumerics() -> None:
    for kind, prefix in ids.PREFIXES.items():
        new = ids.new_id(kind)
        assert new.startswith(prefix) and len(new) == len(prefix) + 16 and ids.is_valid(kind, new)
    for bad in ["sk_ABCDEFGHIJKLMNOP", "sk_short", "proj_0123456789abcdef", "sk_0123456789abcdef0"]:
        assert not ids.is_valid("secret", bad)
