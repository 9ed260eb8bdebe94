"""Secrets as environment variables: flattening exports and rendering them for sh, .env or JSON."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from sikker.core.signing import flatten
from sikker.errors import InvalidInput, SikkerError

FORMATS = ("env", "dotenv", "json")
_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTENV_ESCAPES = {"\\": "\\\\", '"': '\\"', "$": "\\$", "\n": "\\n", "\r": "\\r"}


def flatten_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """Variables for one ``{name, value, fieldNames}`` entry; NUL bytes cannot live in an environment."""
    name, value, field_names = secret.get("name"), secret.get("value"), secret.get("fieldNames")
    if not isinstance(name, str) or not isinstance(value, str) or not isinstance(field_names, str | None):
        raise SikkerError("malformed secret entry from the server: needs string name and value")
    variables = flatten(name, value, field_names)
    if any("\0" in value for value in variables.values()):
        raise InvalidInput(f"secret {secret.get('id', name)} contains a NUL byte")
    return variables


def merge(per_secret: Iterable[dict[str, str]], warn: Callable[[str], None]) -> dict[str, str]:
    """One mapping from many; a later secret wins a name clash, with a warning."""
    merged: dict[str, str] = {}
    for variables in per_secret:
        for name, value in variables.items():
            if not name:
                warn("skipping a secret whose name has no letters or digits")
                continue
            if name in merged:
                warn(f"{name} is set by more than one secret; the last one wins")
            merged[name] = value
    return merged


def shell_quote(value: str) -> str:
    """POSIX sh single quoting: nothing inside is special except ', written as '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def dotenv_quote(value: str) -> str:
    return '"' + "".join(_DOTENV_ESCAPES.get(c, c) for c in value) + '"'


def render(variables: Mapping[str, str], fmt: str, warn: Callable[[str], None]) -> str:
    """The text ``export --format`` prints."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "json":
        return orjson.dumps(dict(variables), option=orjson.OPT_INDENT_2).decode() + "\n"
    lines = []
    for name, value in variables.items():
        if not _SHELL_NAME.fullmatch(name):
            warn(f"skipping {name}: not a valid shell variable name")
            continue
        if fmt == "env":
            lines.append(f"export {name}={shell_quote(value)}")
        else:
            lines.append(f"{name}={dotenv_quote(value)}")
    return "".join(line + "\n" for line in lines)
