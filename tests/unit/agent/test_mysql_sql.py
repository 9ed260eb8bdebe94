"""MySQL 8 paths that MariaDB (the live test server) cannot run: dual passwords.

A recording connection replaces pymysql.connect; statements are rendered with PyMySQL's
own client-side escaping to show what the server would receive.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from sikker.engines import mysql
from sikker.engines.base import Connection, UnsupportedStrategy
from tests.unit.agent.recording import RecordingConnection

CONNECTION = Connection("db", 3306, "", "root", "adm")


def render(sql: str, params: Any) -> str:
    if params is None:
        return sql
    return sql % tuple(pymysql.converters.escape_item(p, "utf8mb4") for p in params)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"version": "8.0.36", "users": {"app"}, "log": []}

    def answer(sql: str, params: Any) -> list[tuple[Any, ...]]:
        if sql == "SELECT VERSION()":
            return [(state["version"],)]
        if "FROM mysql.user" in sql:
            return [(1 if params[0] in state["users"] else 0,)]
        return []

    monkeypatch.setattr(mysql.pymysql, "connect", lambda **kw: RecordingConnection(state["log"], answer))
    return state


def statements(state: dict[str, Any]) -> list[str]:
    return [render(sql, params) for sql, params in state["log"] if not sql.startswith("SELECT")]


def test_dual_on_mysql_8_retains_the_current_password(server: dict[str, Any]) -> None:
    mysql.MySQLProvider(CONNECTION).apply("dual", "app", "n'ew\\pw", "app")
    assert statements(server) == ["ALTER USER 'app'@'%' IDENTIFIED BY 'n\\'ew\\\\pw' RETAIN CURRENT PASSWORD"]


def test_dual_rollback_puts_the_old_password_back_then_discards_the_retained_one(
    server: dict[str, Any],
) -> None:
    mysql.MySQLProvider(CONNECTION).rollback("dual", "app", "app", "old", "new")
    assert statements(server) == [
        "ALTER USER 'app'@'%' IDENTIFIED BY 'old'",
        "ALTER USER 'app'@'%' DISCARD OLD PASSWORD",
    ]


def test_discard_old_after_grace(server: dict[str, Any]) -> None:
    mysql.MySQLProvider(CONNECTION).discard_old("app", "current")
    assert statements(server) == ["ALTER USER 'app'@'%' DISCARD OLD PASSWORD"]


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            "10.11.19-MariaDB-0+deb12u1",
            "dual password is not supported by MariaDB; use the alternating strategy",
        ),
        ("8.0.13", "dual password needs MySQL 8.0.14 or later"),
        ("5.7.44-log", "dual password needs MySQL 8.0.14 or later"),
    ],
)
def test_dual_is_refused_where_it_does_not_exist(server: dict[str, Any], version: str, message: str) -> None:
    server["version"] = version
    with pytest.raises(UnsupportedStrategy, match=message):
        mysql.MySQLProvider(CONNECTION).apply("dual", "app", "pw", "app")
    assert statements(server) == []
