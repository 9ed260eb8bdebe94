"""Secret values and names: what is allowed, and how a value is encoded.

A *standard* secret holds one string. A *structured* secret holds a JSON object
whose keys and values are strings; it is stored as its JSON text and its field
names are kept (in clear) as a JSON-encoded list, like the SikkerKey wire
contract's ``fieldNames``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

from sikker.errors import InvalidInput, PayloadTooLarge

NAME_MAX = 255
FIELD_NAME_MAX = 255
MAX_FIELDS = 100
DEFAULT_VALUE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SecretValue:
    """A validated plaintext value, ready to encrypt. ``repr`` never shows it."""

    kind: str  # "standard" | "structured"
    plaintext: bytes
    field_names: str | None  # JSON list as text, None for standard secrets

    def __repr__(self) -> str:
        return f"SecretValue(kind={self.kind!r}, plaintext=<redacted>, field_names={self.field_names!r})"


# C0 controls, DEL and C1 controls; the second set spares tab, LF and CR (multi-line text).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_WHITESPACE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def has_control(text: str, multiline: bool = False) -> bool:
    """True when ``text`` holds a control character (tab, LF and CR pass if ``multiline``)."""
    return (_CONTROL_BUT_WHITESPACE if multiline else _CONTROL).search(text) is not None


def check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str) or not (1 <= len(name) <= NAME_MAX):
        raise InvalidInput(f"{what} must be a string of 1 to {NAME_MAX} characters")
    if has_control(name):
        raise InvalidInput(f"{what} must not contain control characters")
    return name


def standard(value: object, max_bytes: int = DEFAULT_VALUE_MAX_BYTES) -> SecretValue:
    if not isinstance(value, str):
        raise InvalidInput("value must be a string")
    data = value.encode()
    _check_size(data, max_bytes)
    return SecretValue("standard", data, None)


def structured(fields: object, max_bytes: int = DEFAULT_VALUE_MAX_BYTES) -> SecretValue:
    if not isinstance(fields, dict) or not fields:
        raise InvalidInput("fields must be a non-empty object of string values")
    if len(fields) > MAX_FIELDS:
        raise InvalidInput(f"a structured secret has at most {MAX_FIELDS} fields")
    for key, val in fields.items():
        if not isinstance(key, str) or not (1 <= len(key) <= FIELD_NAME_MAX):
            raise InvalidInput(f"field names must be strings of 1 to {FIELD_NAME_MAX} characters")
        if not isinstance(val, str):
            # Never echo the value: only the field name goes in the message.
            raise InvalidInput(f"field {key!r} must have a string value")
    data = orjson.dumps(fields)
    _check_size(data, max_bytes)
    return SecretValue("structured", data, orjson.dumps(list(fields)).decode())


def from_plaintext(kind: str, plaintext: bytes) -> SecretValue:
    """Rebuild a SecretValue from decrypted bytes (e.g. for a rollback)."""
    if kind == "structured":
        names = list(orjson.loads(plaintext))
        return SecretValue(kind, plaintext, orjson.dumps(names).decode())
    return SecretValue(kind, plaintext, None)


def _check_size(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"secret value exceeds the limit of {max_bytes} bytes")
