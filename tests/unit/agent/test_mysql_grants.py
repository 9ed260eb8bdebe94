"""Replaying SHOW GRANTS lines for another account (MySQL/MariaDB alternating strategy)."""

from __future__ import annotations

import pytest

from sikker.engines.base import ProviderError
from sikker.engines.mysql import parse_version
from sikker.engines.mysql_grants import account, copy_statements, retarget


def test_account_quoting_doubles_backticks_only() -> None:
    assert account("a`b'c\\") == "`a``b'c\\`@`%`"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`", "GRANT SELECT, INSERT ON `shop`.* TO `app_b`@`%`"),
        (
            "GRANT ALL PRIVILEGES ON `shop`.`t` TO `app`@`%` WITH GRANT OPTION",
            "GRANT ALL PRIVILEGES ON `shop`.`t` TO `app_b`@`%` WITH GRANT OPTION",
        ),
        ("GRANT `reader` TO `app`@`%`", "GRANT `reader` TO `app_b`@`%`"),
        ("SET DEFAULT ROLE `reader` FOR `app`@`%`", "SET DEFAULT ROLE `reader` FOR `app_b`@`%`"),
        # A database whose name looks like a grantee: only the real (last) grantee changes.
        (
            "GRANT SELECT ON `x TO ``app``@``%```.* TO `app`@`%`",
            "GRANT SELECT ON `x TO ``app``@``%```.* TO `app_b`@`%`",
        ),
        ("GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*ABCDEF'", None),
        ("GRANT USAGE ON *.* TO `app`@`%`", None),
    ],
)
def test_retarget(line: str, expected: str | None) -> None:
    assert retarget(line, "app", "app_b") == expected


def test_hostile_names_are_requoted() -> None:
    base, new = 'a"; DROP ROLE x; --', "x]`; DROP USER root; --"
    line = f"GRANT SELECT ON `db`.* TO {account(base)}"
    assert retarget(line, base, new) == "GRANT SELECT ON `db`.* TO `x]``; DROP USER root; --`@`%`"


@pytest.mark.parametrize(
    "line",
    [
        "GRANT USAGE ON *.* TO `app`@`%` REQUIRE SSL",
        "GRANT USAGE ON *.* TO `app`@`%` WITH MAX_QUERIES_PER_HOUR 5",
        "GRANT SELECT ON `db`.* TO `app`@`localhost`",
        "GRANT SELECT ON `db`.* TO `app`@`%` WITH MAX_USER_CONNECTIONS 2",
        "REVOKE SELECT ON `db`.* FROM `app`@`%`",
    ],
)
def test_lines_that_cannot_be_copied_faithfully_raise_without_echoing_the_line(line: str) -> None:
    with pytest.raises(ProviderError) as caught:
        retarget(line, "app", "app_b")
    assert "`" not in caught.value.message


def test_copy_statements_skips_the_account_line() -> None:
    lines = [
        "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB'",
        "GRANT SELECT ON `d`.* TO `app`@`%`",
    ]
    assert copy_statements(lines, "app", "b") == ["GRANT SELECT ON `d`.* TO `b`@`%`"]


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("8.0.36-log", (8, 0, 36)), ("10.11.19-MariaDB-0+deb12u1", (10, 11, 19)), ("weird", ())],
)
def test_parse_version(version: str, parsed: tuple[int, ...]) -> None:
    assert parse_version(version) == parsed
