"""``sikker agent start|test`` wired to a fake server and a fake database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.cli import agent as agent_cli
from sikker.cli import identity as identities
from sikker.cli.machine_client import MachineClient
from sikker.engines.base import Connection, Provider
from sikker.errors import NotFound, SikkerError
from tests.unit.agent.fakes import FakeDatabase, FakeServer, creds


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeServer, FakeDatabase]:
    monkeypatch.setenv("SIKKERKEY_HOME", str(tmp_path / "home"))
    for var in ("SIKKERKEY_IDENTITY", "SIKKERKEY_VAULT", "SIKKERKEY_API_URL"):
        monkeypatch.delenv(var, raising=False)
    identities.write("vault_abc", "m-1", "db-host", "http://localhost:8300", Ed25519PrivateKey.generate())
    db = FakeDatabase()
    db.add("app", "old-pw")
    server = FakeServer(creds("app", "old-pw"), FakeServer.base_config())

    def open_client(vault: str | None, ca_cert: str | None = None) -> MachineClient:
        identity, key = identities.load(identities.resolve(vault))
        return MachineClient(identity, key, transport=httpx.MockTransport(server))

    def providers(kind: str, connection: Connection) -> Provider:
        return db

    monkeypatch.setattr(agent_cli, "open_client", open_client)
    monkeypatch.setattr(agent_cli, "get_provider", providers)
    return server, db


def invoke(*args: str) -> Result:
    return CliRunner().invoke(agent_cli.agent, list(args))


def test_start_once_rotates_and_exits_zero(setup: tuple[FakeServer, FakeDatabase]) -> None:
    server, db = setup
    server.pend("rot_1", creds("app", "new-pw"))
    result = invoke("start", "--secret", "sk_db", "--once")
    assert result.exit_code == 0, result.output
    assert server.posts("/confirm-rotation") == [{"rotationId": "rot_1"}]
    assert db.users["app"].passwords == {"new-pw"}


def test_start_once_fails_when_a_secret_reports_an_error(setup: tuple[FakeServer, FakeDatabase]) -> None:
    server, _ = setup
    server.status_for["/sync-config"] = 500
    result = invoke("start", "--secret", "sk_db", "--once")
    assert isinstance(result.exception, SikkerError)
    assert "1 of 1 secrets reported errors: sk_db" in str(result.exception)


def test_start_raises_the_terminal_error_when_no_secret_is_left(
    setup: tuple[FakeServer, FakeDatabase],
) -> None:
    server, _ = setup
    server.status_for["/sync-config"] = 404
    result = invoke("start", "--secret", "sk_db")
    assert isinstance(result.exception, NotFound)


def test_start_refuses_an_invalid_secret_id(setup: Any) -> None:
    result = invoke("start", "--secret", "../etc", "--once")
    assert isinstance(result.exception, SikkerError) and "invalid secret id" in str(result.exception)


def test_test_prints_ok_without_secrets(setup: tuple[FakeServer, FakeDatabase]) -> None:
    result = invoke("test", "--secret", "sk_db")
    assert result.exit_code == 0, result.output
    assert "fake at db:5432/app, admin 'admin'" in result.output and "OK" in result.output
    assert "adm" not in result.output.replace("admin", "")


def test_test_lists_problems_and_fails(setup: tuple[FakeServer, FakeDatabase]) -> None:
    _, db = setup
    db.admin_problems = ["admin role 'admin' needs CREATEROLE or SUPERUSER"]
    result = invoke("test", "--secret", "sk_db")
    assert "problem: admin role 'admin' needs CREATEROLE or SUPERUSER" in result.output
    assert isinstance(result.exception, SikkerError) and result.exception.exit_code == 1


def test_every_command_has_a_docstring() -> None:
    for command in [agent_cli.agent, *agent_cli.agent.commands.values()]:
        assert command.help and len(command.help) > 20
