"""Export formatting: values must survive sh, .env and JSON exactly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sikker.cli.environment import dotenv_quote, flatten_secret, merge, render, shell_quote
from sikker.errors import InvalidInput, SikkerError

NASTY = [
    "plain",
    "",
    "it's",
    "'''",
    'say "hi"',
    "$HOME and ${PATH} and $(id) and `id`",
    "back\\slash\\",
    "line one\nline two\n",
    "tab\there; rm -rf / #",
    "\\'\"$\n",
    "ünïcödé ✓",
    "-n",
]


def no_warnings(message: str) -> None:
    raise AssertionError(message)


@pytest.mark.parametrize("value", NASTY)
def test_env_format_survives_sh_eval(tmp_path: Path, value: str) -> None:
    script = tmp_path / "exported.sh"
    script.write_text(render({"NAME": value}, "env", no_warnings))
    out = subprocess.run(
        ["sh", "-c", 'eval "$(cat "$1")"; printf %s "$NAME"', "sh", str(script)],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    # $(...) strips trailing newlines from the file, not from inside the quoted value.
    assert out.stdout.decode() == value


def test_env_format_is_one_export_line_per_variable() -> None:
    assert render({"A": "x", "B": "it's"}, "env", no_warnings) == "export A='x'\nexport B='it'\\''s'\n"


def test_shell_quote_always_quotes() -> None:
    assert shell_quote("") == "''"
    assert shell_quote("abc") == "'abc'"


def test_dotenv_escapes_backslash_quote_dollar_and_newline() -> None:
    assert dotenv_quote('a\\b"c$d\ne') == '"a\\\\b\\"c\\$d\\ne"'
    assert render({"A": "x y"}, "dotenv", no_warnings) == 'A="x y"\n'


def test_json_format_is_one_object() -> None:
    assert json.loads(render({"A": "1", "B": "line\n"}, "json", no_warnings)) == {"A": "1", "B": "line\n"}


def test_names_that_are_not_shell_identifiers_are_skipped_with_a_warning() -> None:
    warnings: list[str] = []
    assert render({"1ST": "x", "OK": "y"}, "env", warnings.append) == "export OK='y'\n"
    assert warnings and "1ST" in warnings[0]


def test_unknown_format_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        render({}, "yaml", no_warnings)


def test_structured_entries_flatten_to_name_field() -> None:
    entry = {
        "id": "sk_a",
        "name": "db",
        "value": '{"user":"u","password":"p"}',
        "fieldNames": '["user","password"]',
    }
    assert flatten_secret(entry) == {"DB_USER": "u", "DB_PASSWORD": "p"}


def test_plain_json_looking_value_with_null_field_names_stays_one_variable() -> None:
    assert flatten_secret({"name": "cfg", "value": '{"a":"b"}', "fieldNames": None}) == {"CFG": '{"a":"b"}'}


def test_nul_bytes_cannot_be_exported() -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        flatten_secret({"id": "sk_a", "name": "x", "value": "a\0b", "fieldNames": None})


@pytest.mark.parametrize(
    "entry", [{"name": "x"}, {"name": 1, "value": "v"}, {"name": "x", "value": "v", "fieldNames": 3}]
)
def test_malformed_entries_are_errors(entry: dict[str, object]) -> None:
    with pytest.raises(SikkerError, match="malformed"):
        flatten_secret(entry)


def test_merge_warns_on_clashes_and_nameless_secrets_last_one_wins() -> None:
    warnings: list[str] = []
    merged = merge([{"A": "1"}, {"A": "2", "": "x"}], warnings.append)
    assert merged == {"A": "2"}
    assert len(warnings) == 2
