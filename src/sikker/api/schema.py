"""Request input: JSON bodies (parsed once, depth bounded, unknown fields and wrong types
refused) and integer query parameters (``query_int``, the one parser for them).

Integers have bounds: a JSON integer field without ``max_value`` is at most ``INT_MAX`` (the
store's integer columns); a query integer is ASCII digits only (``"²".isdigit()`` is true).

Every string in a field (also inside lists and objects) is refused if it holds a control
character (C0, DEL, C1; ``multiline`` fields allow tab, LF and CR), except in ``opaque``
fields: secret values and structured fields, which are encrypted and may hold anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from sikker.core.values import has_control
from sikker.errors import InvalidInput

MAX_DEPTH = 8
INT_MAX = 2**31 - 1  # a 32-bit INTEGER column on PostgreSQL
QUERY_INT_MAX = 10**15 - 1  # epoch milliseconds and audit sequence numbers fit


@dataclass(frozen=True, slots=True)
class Field:
    type: type | tuple[type, ...]
    required: bool = False
    max_len: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    multiline: bool = False  # tab, LF and CR allowed
    opaque: bool = False  # secret content: any character


def _strings(value: Any) -> list[str]:
    """Every string in ``value``: itself, or the keys and items of its lists and objects."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _depth(value: Any) -> int:
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "a boolean", dict: "an object", list: "a list"}


def parse(raw: bytes, fields: dict[str, Field]) -> dict[str, Any]:
    """Return the validated JSON object in ``raw``; raise InvalidInput with a clear message."""
    if not raw.strip():
        data: Any = {}
    else:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise InvalidInput("request body is not valid JSON") from e
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise InvalidInput(f"request body is nested deeper than {MAX_DEPTH} levels")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InvalidInput(f"unknown field(s): {', '.join(repr(u)[:40] for u in unknown[:5])}")
    for name, spec in fields.items():
        if name not in data or data[name] is None:
            if spec.required:
                raise InvalidInput(f"missing field {name!r}")
            data.pop(name, None)
            continue
        value = data[name]
        types = spec.type if isinstance(spec.type, tuple) else (spec.type,)
        # bool is an int in Python; do not let true pass as 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise InvalidInput(f"field {name!r} must be {expected}")
        if spec.max_len is not None and isinstance(value, str | list | dict) and len(value) > spec.max_len:
            raise InvalidInput(f"field {name!r} is longer than {spec.max_len}")
        if not spec.opaque and any(has_control(text, spec.multiline) for text in _strings(value)):
            raise InvalidInput(f"field {name!r} must not contain control characters")
        if isinstance(value, int) and not isinstance(value, bool):
            if spec.min_value is not None and value < spec.min_value:
                raise InvalidInput(f"field {name!r} must be at least {spec.min_value}")
            maximum = INT_MAX if spec.max_value is None else spec.max_value
            if value > maximum:
                raise InvalidInput(f"field {name!r} must be at most {maximum}")
    return data


def query_int(
    params: Mapping[str, str],
    name: str,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = QUERY_INT_MAX,
) -> int | None:
    """The integer query parameter ``name`` (absent or empty: ``default``), in bounds."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(maximum)):
        raise InvalidInput(f"{name} must be an integer from {minimum} to {maximum}")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{name} must be an integer from {minimum} to {maximum}")
    return value
