"""The ``sikker`` command as a user runs it, against a real server on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import Server


def run(
    server: Server, *args: str, token: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SIKKER_ADDR": server.url, "COLUMNS": "200"}
    env.pop("SIKKER_TOKEN", None)
    if token:
        env["SIKKER_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(server: Server, *args: str, token: str | None = None, stdin: str | None = None) -> str:
    result = run(server, *args, token=token, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def initialised(server: Server) -> Iterator[tuple[Server, list[str], str]]:
    out = json.loads(ok(server, "operator", "init", "--shares", "3", "--threshold", "2", "--json"))
    ok(server, "operator", "unseal", out["shares"][0], out["shares"][1])
    yield server, out["shares"], out["rootToken"]


def test_secret_written_by_the_cli_survives_restart_and_unseal_and_is_never_stored_in_clear(
    initialised: tuple[Server, list[str], str],
) -> None:
    server, shares, root = initialised
    marker = f"MARKER-{uuid.uuid4().hex}"
    vault = ok(server, "vault", "create", "prod", token=root)
    project = ok(server, "project", "create", "--vault", vault, "api", token=root)
    plain = ok(
        server,
        "secret",
        "create",
        "--project",
        project,
        "TOKEN",
        "--value-file",
        "-",
        token=root,
        stdin=marker,
    )
    structured = json.loads(
        ok(
            server,
            "secret",
            "create",
            "--project",
            project,
            "DB",
            "--field",
            "username=app",
            "--field",
            f"password={marker}-pw",
            "--json",
            token=root,
        )
    )["id"]

    server.restart()
    sealed = run(server, "secret", "get", plain, token=root)
    assert sealed.returncode == 7 and "sealed" in sealed.stderr
    status = run(server, "status")
    assert status.returncode == 2 and "Sealed (0/2" in status.stdout
    ok(server, "operator", "unseal", shares[2], shares[1])
    assert ok(server, "secret", "get", plain, token=root) == marker
    assert ok(server, "secret", "get", structured, "password", token=root) == f"{marker}-pw"

    assert marker.encode() not in stored_bytes(server)


def stored_bytes(server: Server) -> bytes:
    """Everything the store holds: the SQLite files, or every PostgreSQL row as text."""
    if server.database.startswith("sqlite"):
        db = Path(server.database.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    engine = sa.create_engine(server.database.replace("postgresql://", "postgresql+psycopg://"))
    dump = []
    with engine.connect() as conn:
        meta = sa.MetaData()
        meta.reflect(conn)
        for table in meta.sorted_tables:
            for row in conn.execute(sa.select(table)):
                dump.append(repr(tuple(row)).encode())
                dump.extend(bytes(v) for v in row if isinstance(v, bytes | memoryview))
    engine.dispose()
    assert dump, "expected rows in PostgreSQL"
    return b"\n".join(dump)


def test_cli_covers_the_secret_lifecycle_with_json_and_tables(
    initialised: tuple[Server, list[str], str],
) -> None:
    server, _, root = initialised
    vault = json.loads(ok(server, "vault", "create", "v", "--json", token=root))["id"]
    assert vault in ok(server, "vault", "list", token=root)
    project = ok(server, "project", "create", "--vault", vault, "p", token=root)
    assert [
        p["id"] for p in json.loads(ok(server, "project", "list", "--vault", vault, "--json", token=root))
    ] == [project]
    sid = ok(server, "secret", "create", "--project", project, "K", "--value", "one", token=root)
    ok(server, "secret", "update", sid, "--value", "two", token=root)
    versions = json.loads(ok(server, "secret", "versions", sid, "--json", token=root))
    assert [v["version"] for v in versions] == [2, 1]
    ok(server, "secret", "rollback", sid, "--version", "1", token=root)
    assert ok(server, "secret", "get", sid, token=root) == "one"
    assert ok(server, "secret", "get", sid, "--version", "2", token=root) == "two"
    assert "K" in ok(server, "secret", "list", "--project", project, token=root)
    ok(server, "secret", "delete", sid, token=root)
    assert (
        json.loads(ok(server, "secret", "list", "--project", project, "--deleted", "--json", token=root))[0][
            "id"
        ]
        == sid
    )
    ok(server, "secret", "restore", sid, token=root)
    assert ok(server, "secret", "get", sid, token=root) == "one"
    rotated = json.loads(ok(server, "operator", "rotate-keys", "--json", token=root))
    assert rotated == {"projects": 1, "rewrapped": 3}
    assert ok(server, "secret", "get", sid, token=root) == "one"


def test_admin_tokens_from_the_cli(initialised: tuple[Server, list[str], str]) -> None:
    server, _, root = initialised
    vault = ok(server, "vault", "create", "v", token=root)
    created = json.loads(ok(server, "token", "create", "--vault", vault, "--ttl", "1h", "--json", token=root))
    assert set(created) == {"id", "token"}
    assert vault in ok(server, "vault", "list", token=created["token"])
    assert created["id"] in ok(server, "token", "list", token=root)
    ok(server, "token", "revoke", created["id"], token=root)
    denied = run(server, "vault", "list", token=created["token"])
    assert denied.returncode == 3 and "invalid, revoked or expired" in denied.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("secret", "get", "sk_bad"), 2, "malformed secret id"),
        (("secret", "get", "sk_0123456789abcdef"), 4, "not found"),
        (("secret", "create", "--project", "proj_0123456789abcdef", "N"), 2, "exactly one of"),
        (("secret", "create", "--project", "proj_0123456789abcdef", "N", "--field", "nokey"), 2, "KEY=VALUE"),
        (("token", "create", "--vault", "vault_0123456789abcdef", "--ttl", "soon"), 2, "durations"),
    ],
)
def test_cli_errors_print_a_message_and_exit_non_zero(
    initialised: tuple[Server, list[str], str], args: tuple[str, ...], code: int, message: str
) -> None:
    server, _, root = initialised
    result = run(server, *args, token=root)
    assert result.returncode == code
    assert message in result.stderr and "Traceback" not in result.stderr


def test_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    env = os.environ | {"SIKKER_ADDR": "http://127.0.0.1:9"}
    result = subprocess.run(
        [sys.executable, "-m", "sikker", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 7 and "cannot reach" in result.stderr


def test_structured_fields_and_the_token_come_from_files_or_stdin(
    initialised: tuple[Server, list[str], str], tmp_path: Path
) -> None:
    server, _, root = initialised
    token_file = tmp_path / "token"
    token_file.write_text(root + "\n")
    auth = ("--token-file", str(token_file))  # no token in argv nor in the environment
    vault = ok(server, "vault", "create", "v", *auth)
    project = ok(server, "project", "create", "--vault", vault, "p", *auth)

    def fields(secret: str) -> dict[str, str]:
        return json.loads(ok(server, "secret", "get", secret, *auth))  # type: ignore[no-any-return]

    # One field from stdin, read verbatim; a plain one on the command line.
    db = ok(
        server, "secret", "create", "--project", project, "DB", "--field", "username=app",
        "--field-file", "password=-", *auth, stdin='p"w\\ $x=1',
    )  # fmt: skip
    assert fields(db) == {"username": "app", "password": 'p"w\\ $x=1'}
    # All fields from a KEY=VALUE file (comments and blank lines skipped, the first '=' splits).
    env_file = tmp_path / "db.env"
    env_file.write_text("# rotated by hand\nusername=app\n\npassword=a=b c\n")
    ok(server, "secret", "update", db, "--fields-file", str(env_file), *auth)
    assert fields(db) == {"username": "app", "password": "a=b c"}
    # ... or from a JSON object on stdin, and a field from a file.
    pw_file = tmp_path / "pw"
    pw_file.write_text("from-file")
    ok(
        server, "secret", "update", db, "--fields-file", "-", "--field-file", f"password={pw_file}", *auth,
        stdin='{"username": "app2", "port": "5432"}',
    )  # fmt: skip
    assert fields(db) == {"username": "app2", "port": "5432", "password": "from-file"}

    for bad, message in [
        (("--field", "password=x", "--field-file", f"password={pw_file}"), "password given twice"),
        (("--fields-file", "-", "--field-file", "password=-"), "stdin"),
        (("--value", "v", "--fields-file", str(env_file)), "exactly one of"),
        (("--field-file", f"password={tmp_path / 'missing'}"), "cannot read"),
    ]:
        refused = run(server, "secret", "update", db, *bad, *auth, stdin="{}")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    both = run(server, "vault", "list", "--token", root, *auth)
    assert both.returncode == 2 and "--token or --token-file" in both.stderr

    helps = run(server, "secret", "create", "--help").stdout + run(server, "vault", "list", "--help").stdout
    assert helps.count("process list") >= 2
