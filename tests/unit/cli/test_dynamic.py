"""The dynamic-secret and lease commands' own logic, without a server: statement files,
request bodies, variable names, and the lease ``sikker run --dynamic`` holds."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.cli.dynamic import definition_body, parse_statements
from sikker.cli.dynamic_run import DynamicLease, LeasedSource, env_prefix
from sikker.cli.identity import Identity
from sikker.cli.leases import lease
from sikker.cli.machine_client import MachineClient
from sikker.errors import InvalidInput

KEY = Ed25519PrivateKey.generate()
IDENTITY = Identity("m-1", "worker", "vault_abc", "http://localhost:8300/", Path("/unused/private.pem"))
NOW = 1_784_893_492.0


@pytest.fixture(autouse=True)
def _no_url_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIKKERKEY_API_URL", raising=False)


# -- statement files --------------------------------------------------------------------
def test_statements_are_one_per_line_without_comments_or_a_trailing_semicolon() -> None:
    text = "-- the user\nCREATE ROLE {{name}} LOGIN PASSWORD {{password}} ;\n\n  GRANT {{role}} TO {{name}}\n"
    assert parse_statements(text) == [
        "CREATE ROLE {{name}} LOGIN PASSWORD {{password}}",
        "GRANT {{role}} TO {{name}}",
    ]


@pytest.mark.parametrize("text", ["", "\n\n", ";\n-- only a comment\n"])
def test_a_file_without_statements_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_statements(text)


# -- request bodies -----------------------------------------------------------------------
def test_the_body_holds_only_what_was_given_with_durations_in_seconds(tmp_path: Path) -> None:
    statements = tmp_path / "create.sql"
    statements.write_text("CREATE USER x\n")
    body = definition_body(
        engine="postgresql",
        host="db",
        port=5432,
        database=None,
        admin_secret="sk_1",
        grant_role="app",
        default_ttl="1h",
        max_ttl="1d",
        username_template=None,
        creation_statements=str(statements),
        revocation_statements=None,
        max_leases_per_machine=None,
    )
    assert body == {
        "engine": "postgresql",
        "host": "db",
        "port": 5432,
        "adminSecret": "sk_1",
        "grantRole": "app",
        "defaultTtl": 3600,
        "maxTtl": 86400,
        "creationStatements": ["CREATE USER x"],
    }
    assert definition_body(max_ttl="2h") == {"maxTtl": 7200}


@pytest.mark.parametrize(
    ("given", "flag"), [({"default_ttl": "0"}, "--default-ttl"), ({"max_ttl": "-1h"}, "--max-ttl")]
)
def test_a_bad_duration_names_its_flag(given: dict[str, str], flag: str) -> None:
    with pytest.raises(InvalidInput, match=flag):
        definition_body(**given)


def test_a_default_ttl_beyond_the_max_is_refused_before_any_request() -> None:
    with pytest.raises(InvalidInput, match="--max-ttl"):
        definition_body(default_ttl="2d", max_ttl="1d")


# -- variable names -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "override", "prefix"),
    [("pg-ro", None, "PG_RO"), ("pg-ro", "db", "DB"), ("orders db", None, "ORDERS_DB")],
)
def test_variables_are_named_like_a_flattened_structured_secret(
    name: str, override: str | None, prefix: str
) -> None:
    assert env_prefix(name, override) == prefix


@pytest.mark.parametrize(("name", "override"), [("---", None), ("pg", "9lives")])
def test_a_prefix_that_cannot_name_a_variable_is_refused(name: str, override: str | None) -> None:
    with pytest.raises(InvalidInput, match="--dynamic-env"):
        env_prefix(name, override)


# -- the lease `run --dynamic` holds ----------------------------------------------------------
class FakePlane:
    """The three machine-plane lease routes, recording what was called."""

    def __init__(self, ttl: float = 3600, renew_status: int = 200) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.ttl = ttl
        self.renew_status = renew_status
        self.renewed = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.calls.append((request.method, request.url.path, body))
        expires = int((NOW + self.ttl) * 1000)
        if request.url.path == "/v1/dynamic/sk_dyn/leases":
            answer = {
                "leaseId": "lease_1",
                "username": "v_m1_abc",
                "password": "pw",
                "expiresAt": expires,
                "maxExpiresAt": expires + 10_000,
                "renewable": True,
            }
            return httpx.Response(200, json=answer)
        if request.url.path == "/v1/leases/lease_1/renew":
            self.renewed.set()
            if self.renew_status != 200:
                return httpx.Response(self.renew_status, json={"error": "database down"})
            return httpx.Response(200, json={"leaseId": "lease_1", "expiresAt": expires, "renewable": False})
        if request.method == "DELETE":
            return httpx.Response(200, json={"revoked": True})
        return httpx.Response(404, json={"error": "no route"})


def lease_for(plane: FakePlane, warnings: list[str]) -> DynamicLease:
    client = MachineClient(IDENTITY, KEY, transport=httpx.MockTransport(plane), clock=lambda: NOW)
    return DynamicLease(client, "sk_dyn", "PG", warnings.append, clock=lambda: NOW)


def test_the_lease_is_injected_renewed_and_revoked_on_close() -> None:
    plane, warnings = FakePlane(ttl=1.5), []
    held = lease_for(plane, warnings)
    assert held.open(ttl=60) == {"PG_USERNAME": "v_m1_abc", "PG_PASSWORD": "pw", "PG_LEASE_ID": "lease_1"}
    assert plane.renewed.wait(10), "no renewal at two thirds of the TTL"
    held.close()
    held.close()  # idempotent: one DELETE
    assert plane.calls[0] == ("POST", "/v1/dynamic/sk_dyn/leases", {"ttl": 60})
    assert ("POST", "/v1/leases/lease_1/renew", {}) in plane.calls
    assert [c for c in plane.calls if c[0] == "DELETE"] == [("DELETE", "/v1/leases/lease_1", None)]
    assert any("cannot be renewed further" in w for w in warnings)  # the renewal said renewable: false


def test_renewal_waits_two_thirds_of_the_time_left() -> None:
    held = lease_for(FakePlane(), [])
    held.renewable, held.expires_at = True, int((NOW + 900) * 1000)
    assert held.next_renewal() == pytest.approx(600)
    held.renewable = False
    assert held.next_renewal() is None


def test_a_failed_renewal_is_a_warning_and_close_still_revokes() -> None:
    plane, warnings = FakePlane(ttl=1.5, renew_status=503), []
    held = lease_for(plane, warnings)
    held.open()
    assert plane.renewed.wait(10)
    held.close()
    assert any("could not renew" in w and "database down" in w for w in warnings)
    assert ("DELETE", "/v1/leases/lease_1", None) in plane.calls


def test_a_malformed_lease_answer_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"leaseId": "x"})

    client = MachineClient(IDENTITY, KEY, transport=httpx.MockTransport(handler), clock=lambda: NOW)
    with pytest.raises(Exception, match="malformed lease"):
        DynamicLease(client, "sk_dyn", "PG", print).open()


def test_a_refused_revocation_on_close_is_a_warning() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, json={"error": "sealed"})

    client = MachineClient(IDENTITY, KEY, transport=httpx.MockTransport(handler), clock=lambda: NOW)
    warnings: list[str] = []
    held = DynamicLease(client, "sk_dyn", "PG", warnings.append)
    held.lease_id = "lease_1"
    held.close()
    assert warnings and "ends at its expiry" in warnings[0]


# -- lease command arguments ------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["revoke"], ["revoke", "lease_1", "--machine", "m-1"]],
)
def test_revoke_takes_a_lease_or_filters_not_both(args: list[str]) -> None:
    result = CliRunner().invoke(lease, [*args, "--addr", "http://127.0.0.1:9", "--token", "t"])
    assert result.exit_code != 0
    assert isinstance(result.exception, InvalidInput), result.output


def test_forget_asks_before_it_acts() -> None:
    result = CliRunner().invoke(
        lease,
        ["forget", "lease_1", "--reason", "db destroyed", "--addr", "http://127.0.0.1:9", "--token", "t"],
        input="n\n",
    )
    assert result.exit_code == 1 and "Forget lease lease_1?" in result.output


def test_the_run_environment_holds_the_secrets_and_the_lease() -> None:
    class Secrets:
        def ids(self) -> list[str]:
            return ["sk_1"]

        def env(self) -> dict[str, str]:
            return {"API_KEY": "k", "PG_USERNAME": "shadowed"}

        def poll(self, ids: list[str]) -> dict[str, Any]:
            return {}

        def refresh(self, changed: list[str]) -> None:
            pass

    warnings: list[str] = []
    source = LeasedSource(Secrets(), {"PG_USERNAME": "sk_ab_x", "PG_PASSWORD": "pw"}, warnings.append)
    assert source.env() == {"API_KEY": "k", "PG_USERNAME": "sk_ab_x", "PG_PASSWORD": "pw"}
    assert source.ids() == ["sk_1"] and warnings == [
        "PG_USERNAME is set by more than one secret; the last one wins"
    ]
