"""Dynamic secrets against REAL databases: a private scram-sha-256 PostgreSQL cluster (it
checks passwords and VALID UNTIL, unlike the shared server, which trusts local logins), the
local MariaDB and the local Redis. With CI=true a missing service fails; otherwise it skips.

The server runs in-process (the real ASGI app over ``bootstrap``) with a clock the tests move,
so expiry and the SDK path's "two thirds of the TTL" are exact without sleeping. Signed
requests carry the moved clock's timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
import psycopg
import pymysql
import pytest
import redis
from nacl.signing import SigningKey
from psycopg import sql
from redis.backoff import NoBackoff
from redis.retry import Retry

from sikker.api.app import create_app
from sikker.config import Settings
from sikker.core import audit, signing
from sikker.engines.base import Connection, get_dynamic_provider
from sikker.service.bootstrap import Services, bootstrap
from tests.support import IN_CI, ScramCluster, scram_cluster

ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")
GROUP = "app_rw"
LOOPBACK = ("127.0.0.0/8",)


class Clock:
    def __init__(self) -> None:
        self.now = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.now


@dataclass
class Node:
    svc: Services
    app: Any
    clock: Clock
    token: str

    def http(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=("10.0.0.1", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://sikker") as client:
                return await client.request(
                    method, path, json=body, content=content, headers=headers, params=params
                )

        return asyncio.run(go())

    def admin(self, method: str, path: str, body: Any = None, **params: str) -> tuple[int, Any]:
        response = self.http(
            method, path, body, {"Authorization": f"Bearer {self.token}"}, params=params or None
        )
        return response.status_code, response.json()

    def ok(self, method: str, path: str, body: Any = None, **params: str) -> Any:
        status, data = self.admin(method, path, body, **params)
        assert 200 <= status < 300, (status, data)
        return data


@dataclass
class Bot:
    """A machine identity signing with the node's (movable) clock."""

    node: Node
    id: str
    key: SigningKey

    def call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        raw = b"" if body is None else httpx.Request("POST", "/", json=body).content
        ts, nonce = str(self.node.clock() // 1000), secrets.token_hex(16)
        sig = self.key.sign(signing.canonical(method, path, ts, nonce, raw)).signature
        headers = {
            "X-Machine-Id": self.id,
            "X-Timestamp": ts,
            "X-Nonce": nonce,
            "X-Signature": base64.b64encode(sig).decode(),
        }
        if raw:
            headers["Content-Type"] = "application/json"
        return self.node.http(method, path, headers=headers, content=raw or None)


@pytest.fixture(scope="module")
def node(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The server on each store in turn (SQLite, then PostgreSQL)."""
    directory = tmp_path_factory.mktemp("dyn")
    clock = Clock()
    # The databases are local: the operator opens loopback (refused by default).
    settings = Settings(database=module_database_url, data_dir=directory, dynamic_allowed_networks=LOOPBACK)
    svc = bootstrap(settings, clock)
    try:
        svc.deps.db.migrate()
        init = svc.seal.init(1, 1, ACTOR)
        svc.seal.submit_share(init.shares[0], ACTOR)
        yield Node(svc, create_app(svc), clock, init.root_token)
    finally:
        svc.close()


@dataclass
class Place:
    vault: str
    project: str


def place(node: Node) -> Place:
    vault = node.ok("POST", "/api/vaults", {"name": f"v-{uuid.uuid4().hex[:8]}"})["id"]
    project = node.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
    return Place(vault, project)


def admin_secret(node: Node, where: Place, user: str, password: str) -> str:
    body = {"name": f"admin-{uuid.uuid4().hex[:6]}", "fields": {"username": user, "password": password}}
    return str(node.ok("POST", f"/api/projects/{where.project}/secrets", body)["id"])


def define(node: Node, where: Place, **body: Any) -> dict[str, Any]:
    status, data = node.admin("POST", f"/api/projects/{where.project}/dynamic-secrets", body)
    assert status == 201, data
    return data  # type: ignore[no-any-return]


def machine(node: Node, where: Place, grants: list[str]) -> Bot:
    body = {"projectIds": [where.project], "secretIds": grants}
    token = node.ok("POST", f"/api/vaults/{where.vault}/enrollment-tokens", body)["token"]
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    made = node.svc.plane.enroll(where.vault, token, public, "h", None, "standard", "10.0.0.1", "t")
    return Bot(node, made.id, key)


def lease(bot: Bot, dynamic_id: str, **body: Any) -> dict[str, Any]:
    response = bot.call("POST", f"/v1/dynamic/{dynamic_id}/leases", body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def audit_actions(node: Node, vault: str) -> list[str]:
    records = node.ok("GET", f"/api/audit/{vault}", limit="1000")["records"]
    return [r["action"] for r in records]


@contextmanager
def allowed_networks(node: Node, *networks: str) -> Iterator[None]:
    """The operator's ``dynamic_allowed_networks`` changed (as after a restart with another
    setting); restored afterwards."""
    before = node.svc.deps.settings
    node.svc.deps.settings = replace(before, dynamic_allowed_networks=networks)
    try:
        yield
    finally:
        node.svc.deps.settings = before


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


# -- PostgreSQL (private scram cluster) ---------------------------------------------------------
@dataclass
class Pg:
    cluster: ScramCluster
    where: Place
    admin_secret: str

    def connect(self, user: str, password: str) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.cluster.port, dbname="postgres", user=user, password=password,
            connect_timeout=3, autocommit=True,
        )  # fmt: skip

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return self.connect(self.cluster.admin, self.cluster.password)

    def login(self, user: str, password: str) -> bool:
        try:
            with self.connect(user, password) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def roles(self, prefix: str) -> set[str]:
        with self.admin() as conn:
            rows = conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,))
            return {str(r[0]) for r in rows}

    def define(self, node: Node, **extra: Any) -> dict[str, Any]:
        body = {
            "name": f"pg-{uuid.uuid4().hex[:6]}",
            "engine": "postgresql",
            "host": "127.0.0.1",
            "port": self.cluster.port,
            "database": "postgres",
            "adminSecret": self.admin_secret,
            "grantRole": GROUP,
            "defaultTtl": 600,
            "maxTtl": 3600,
        } | extra
        return define(node, self.where, **body)


@pytest.fixture(scope="module")
def pg(node: Node) -> Iterator[Pg]:
    with scram_cluster() as cluster:
        target = Pg(cluster, place(node), "")
        with target.admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(GROUP)))
            conn.execute("CREATE TABLE items (id int)")
            conn.execute(sql.SQL("GRANT SELECT ON items TO {}").format(sql.Identifier(GROUP)))
            conn.execute("CREATE ROLE can_login LOGIN")
        target.admin_secret = admin_secret(node, target.where, cluster.admin, cluster.password)
        yield target


def test_postgresql_lease_logs_in_and_revocation_ends_the_open_session(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    got = lease(bot, d["id"])
    assert set(got) == {"leaseId", "username", "password", "expiresAt", "maxExpiresAt", "renewable"}
    assert got["username"].startswith("sk_") and got["renewable"] is True
    assert got["expiresAt"] == node.clock() + 600_000 and got["maxExpiresAt"] == node.clock() + 3600_000
    session = pg.connect(got["username"], got["password"])
    assert session.execute("SELECT count(*) FROM items").fetchone() == (0,)  # via the group role
    with pg.admin() as conn:
        row = conn.execute(
            "SELECT rolvaliduntil, rolcanlogin FROM pg_roles WHERE rolname = %s", (got["username"],)
        ).fetchone()
    assert row is not None and row[1] is True
    assert int(row[0].timestamp()) == got["expiresAt"] // 1000  # VALID UNTIL: the backstop
    shown = node.ok("GET", f"/api/leases/{got['leaseId']}")
    assert shown["state"] == "active" and "password" not in str(shown)

    revoked = node.ok("POST", f"/api/leases/{got['leaseId']}/revoke", {"reason": "test", "sync": True})
    assert revoked["state"] == "revoked" and revoked["revokeReason"] == "test"

    def session_gone() -> bool:
        try:
            session.execute("SELECT 1")
            return False
        except psycopg.Error:
            return True

    assert eventually(session_gone)
    assert not pg.login(got["username"], got["password"])
    assert got["username"] not in pg.roles("sk_")
    actions = audit_actions(node, pg.where.vault)
    assert "machine:lease:create" in actions and "admin:lease:revoke" in actions
    assert "system:lease:revoke" in actions
    assert got["password"] not in str(node.ok("GET", f"/api/audit/{pg.where.vault}", limit="1000"))


def test_renew_stops_exactly_at_issue_time_plus_max_ttl(node: Node, pg: Pg) -> None:
    d = pg.define(node, defaultTtl=60, maxTtl=120)
    bot = machine(node, pg.where, [d["id"]])
    got = lease(bot, d["id"])
    issued = node.clock()
    node.clock.now += 30_000
    renewed = bot.call("POST", f"/v1/leases/{got['leaseId']}/renew", {"ttl": 89})
    assert renewed.status_code == 200, renewed.text
    assert renewed.json() == {
        "leaseId": got["leaseId"],
        "expiresAt": issued + 119_000,
        "maxExpiresAt": issued + 120_000,
        "renewable": True,
    }
    renewed = bot.call("POST", f"/v1/leases/{got['leaseId']}/renew", {"ttl": 90})  # reaches max exactly
    assert renewed.json()["expiresAt"] == issued + 120_000 and renewed.json()["renewable"] is False
    again = bot.call("POST", f"/v1/leases/{got['leaseId']}/renew", {"ttl": 3000})
    assert again.json()["expiresAt"] == issued + 120_000  # never beyond
    with pg.admin() as conn:
        row = conn.execute(
            "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", (got["username"],)
        ).fetchone()
    assert row is not None and int(row[0].timestamp()) == (issued + 120_000) // 1000
    node.clock.now = issued + 120_000
    expired = bot.call("POST", f"/v1/leases/{got['leaseId']}/renew", {})
    assert expired.status_code == 409 and "expired" in expired.json()["error"]
    node.svc.leases.sweep()
    assert got["username"] not in pg.roles("sk_")
    assert node.ok("GET", f"/api/leases/{got['leaseId']}")["state"] == "revoked"
    again = bot.call("POST", f"/v1/leases/{got['leaseId']}/renew", {})
    assert again.status_code == 409  # a revoked lease is not renewed


def test_the_sweeper_expires_leases_and_drops_their_users(node: Node, pg: Pg) -> None:
    d = pg.define(node, defaultTtl=60, maxTtl=60)
    bot = machine(node, pg.where, [d["id"]])
    got = [lease(bot, d["id"]) for _ in range(3)]
    assert {g["username"] for g in got} <= pg.roles("sk_")
    node.clock.now += 59_000
    node.svc.leases.sweep()
    assert {g["username"] for g in got} <= pg.roles("sk_")  # not yet
    node.clock.now += 1_000
    node.svc.leases.sweep()
    assert not {g["username"] for g in got} & pg.roles("sk_")
    states = {node.ok("GET", f"/api/leases/{g['leaseId']}")["state"] for g in got}
    assert states == {"revoked"}
    assert "system:lease:expire" in audit_actions(node, pg.where.vault)


def test_one_sweep_revokes_many_due_leases_several_at_a_time(
    node: Node, pg: Pg, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = pg.define(node, defaultTtl=60, maxTtl=60)
    bot = machine(node, pg.where, [d["id"]])
    got = [lease(bot, d["id"]) for _ in range(24)]
    assert {g["username"] for g in got} <= pg.roles("sk_")
    targets = node.svc.leases.targets
    real_call = targets.call
    lock, second = threading.Lock(), threading.Event()
    in_flight, most = [0], [0]

    def call(*args: Any) -> Any:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            if in_flight[0] > 1:
                second.set()
        try:
            second.wait(10)  # the first call waits for a second one: proof they overlap
            return real_call(*args)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(targets, "call", call)
    node.clock.now += 60_000
    swept = node.svc.leases.sweep()
    assert swept.revoked == len(got) and not swept.more
    assert most[0] > 1
    assert not {g["username"] for g in got} & pg.roles("sk_")
    states = {node.ok("GET", f"/api/leases/{g['leaseId']}")["state"] for g in got}
    assert states == {"revoked"}


def test_a_deleted_or_changed_definition_still_revokes_from_the_lease_snapshot(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    first, second = lease(bot, d["id"]), lease(bot, d["id"])
    node.ok("PUT", f"/api/dynamic-secrets/{d['id']}", {"revocationStatements": ["DROP ROLE {{name}}"]})
    status, body = node.admin("DELETE", f"/api/dynamic-secrets/{d['id']}")
    assert status == 409 and "live lease" in body["error"]
    assert node.ok("DELETE", f"/api/dynamic-secrets/{d['id']}", revoke="true")["revoked"] == 2
    assert node.admin("GET", f"/api/dynamic-secrets/{d['id']}")[0] == 404
    node.svc.leases.sweep()
    assert not {first["username"], second["username"]} & pg.roles("sk_")


def test_a_database_that_is_down_fails_only_its_own_leases_and_revocation_resumes(
    node: Node, pg: Pg, rd: Redis
) -> None:
    d = pg.define(node)
    other = rd.define(node, pg.where)
    bot = machine(node, pg.where, [d["id"], other["id"]])
    live = lease(bot, d["id"])
    pg.cluster.stop()
    try:
        refused = bot.call("POST", f"/v1/dynamic/{d['id']}/leases", {})
        assert refused.status_code == 503
        assert f"database for dynamic secret {d['id']} is unreachable" in refused.json()["error"]
        assert pg.cluster.password not in refused.text
        served = lease(bot, other["id"])  # Redis still serves its own
        node.ok("POST", f"/api/leases/{served['leaseId']}/revoke", {"sync": True})
        assert node.ok("GET", f"/api/leases/{served['leaseId']}")["state"] == "revoked"
        revoking = node.ok("POST", f"/api/leases/{live['leaseId']}/revoke", {"sync": True})
        assert revoking["state"] == "revoking" and revoking["attempts"] == 1 and revoking["lastError"]
    finally:
        pg.cluster.start()
    node.clock.now += 2_000  # the backoff after one failure
    node.svc.leases.sweep()
    assert node.ok("GET", f"/api/leases/{live['leaseId']}")["state"] == "revoked"
    assert live["username"] not in pg.roles("sk_")
    # The refused creation could not even clean up: its job ran once the database was back.
    leases = node.ok("GET", f"/api/vaults/{pg.where.vault}/leases", dynamic=d["id"])["leases"]
    refused_lease = [x for x in leases if (x["revokeReason"] or "").startswith("creation failed")]
    assert len(refused_lease) == 1 and refused_lease[0]["state"] == "revoked"
    assert {x["state"] for x in leases} == {"revoked"}
    assert "system:lease:fail" in audit_actions(node, pg.where.vault)


def test_a_success_pulls_the_other_waiting_revocations_of_its_secret_forward(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    got = [lease(bot, d["id"]) for _ in range(3)]
    pg.cluster.stop()
    try:
        for g in got:
            node.ok("POST", f"/api/leases/{g['leaseId']}/revoke", {"sync": True})
        for _ in range(6):  # the backoff grows to its 30 s cap
            node.clock.now += 40_000
            node.svc.leases.sweep()
    finally:
        pg.cluster.start()
    shown = [node.ok("GET", f"/api/leases/{g['leaseId']}") for g in got]
    assert {s["state"] for s in shown} == {"revoking"} and min(s["attempts"] for s in shown) >= 6
    node.svc.leases.attempt(got[0]["leaseId"])  # the database answers again
    node.svc.leases.sweep()  # same instant: the others are due now, not after their backoff
    assert {node.ok("GET", f"/api/leases/{g['leaseId']}")["state"] for g in got} == {"revoked"}
    assert not {g["username"] for g in got} & pg.roles("sk_")


def test_a_lease_id_is_not_a_capability(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    owner, neighbour = machine(node, pg.where, [d["id"]]), machine(node, pg.where, [d["id"]])
    elsewhere = place(node)
    stranger = machine(node, elsewhere, [])
    got = lease(owner, d["id"])
    missing = "ls_" + "0" * 16
    for bot in (neighbour, stranger):
        for method, path in (
            ("POST", f"/v1/leases/{got['leaseId']}/renew"),
            ("DELETE", f"/v1/leases/{got['leaseId']}"),
        ):
            response = bot.call(method, path, {} if method == "POST" else None)
            assert response.status_code == 404, response.text
            nothing = bot.call(
                method, path.replace(got["leaseId"], missing), {} if method == "POST" else None
            )
            assert nothing.status_code == 404
            assert response.json()["error"].replace(got["leaseId"], missing) == nothing.json()["error"]
    assert stranger.call("POST", f"/v1/dynamic/{d['id']}/leases", {}).status_code == 404
    assert node.ok("GET", f"/api/leases/{got['leaseId']}")["state"] == "active"
    assert owner.call("DELETE", f"/v1/leases/{got['leaseId']}").json() == {"revoked": True}
    assert node.ok("GET", f"/api/leases/{got['leaseId']}")["state"] == "revoked"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"usernameTemplate": "x'; DROP ROLE admin; --{{random}}"}, "usernameTemplate"),
        ({"usernameTemplate": "{{name}}"}, "{{random}}"),
        ({"usernameTemplate": "{{password}}{{random}}"}, "unknown variable"),
        ({"usernameTemplate": "a" * 70 + "{{random}}"}, "longer than"),
        ({"creationStatements": ["CREATE ROLE {{name}}; DROP ROLE admin"]}, "semicolons"),
        ({"creationStatements": ["CREATE ROLE {{name}} PASSWORD 'x'"]}, "quotes"),
        ({"creationStatements": ["CREATE ROLE {{name}} PASSWORD E'\\\\x'"]}, "quotes"),
        ({"creationStatements": ["CREATE ROLE %s"]}, "%"),
        ({"creationStatements": ["CREATE ROLE {{name}} $$x$$"]}, "$"),
        ({"creationStatements": ["CREATE ROLE {{user}}"]}, "unknown placeholder"),
        ({"creationStatements": ["x" * 3000]}, "characters"),
        ({"grantRole": 'app"; DROP ROLE admin; --'}, "grantRole"),
        ({"grantRole": "missing_role"}, "does not exist"),
        ({"grantRole": "can_login"}, "can log in"),
        ({"defaultTtl": 0}, "defaultTtl"),
        ({"defaultTtl": -5}, "defaultTtl"),
        ({"defaultTtl": 7200, "maxTtl": 3600}, "defaultTtl"),
        ({"maxTtl": 31 * 86400}, "30 days"),
    ],
)
def test_hostile_definitions_are_refused_and_create_nothing(
    node: Node, pg: Pg, change: dict[str, Any], message: str
) -> None:
    before = pg.roles("")
    body = {
        "name": "hostile", "engine": "postgresql", "host": "127.0.0.1", "port": pg.cluster.port,
        "adminSecret": pg.admin_secret, "grantRole": GROUP, "defaultTtl": 60, "maxTtl": 3600,
    } | change  # fmt: skip
    status, data = node.admin("POST", f"/api/projects/{pg.where.project}/dynamic-secrets", body)
    assert status == 400 and message in data["error"], data
    assert pg.roles("") == before


def test_hostile_lease_requests_are_refused_and_create_nothing(node: Node, pg: Pg) -> None:
    d = pg.define(node, maxTtl=600, defaultTtl=60)
    bot = machine(node, pg.where, [d["id"]])
    before = pg.roles("sk_")
    for body in ({"ttl": 0}, {"ttl": -1}, {"ttl": 601}, {"ttl": "60"}, {"ttl": 60, "x": 1}):
        response = bot.call("POST", f"/v1/dynamic/{d['id']}/leases", body)
        assert response.status_code == 400, (body, response.text)
    assert pg.roles("sk_") == before


def test_custom_statements_fill_placeholders_as_quoted_values(node: Node, pg: Pg) -> None:
    d = pg.define(
        node,
        creationStatements=[
            "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}",
            "GRANT {{role}} TO {{name}}",
        ],
    )
    bot = machine(node, pg.where, [d["id"]])
    got = lease(bot, d["id"])
    with pg.connect(got["username"], got["password"]) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)
    node.ok("POST", f"/api/leases/{got['leaseId']}/revoke", {"sync": True})
    assert not pg.login(got["username"], got["password"])


def test_revoking_the_machine_or_its_grant_revokes_its_leases(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    revoked_bot, ungranted_bot = machine(node, pg.where, [d["id"]]), machine(node, pg.where, [d["id"]])
    first, second = lease(revoked_bot, d["id"]), lease(ungranted_bot, d["id"])
    node.ok("POST", f"/api/machines/{revoked_bot.id}/revoke")
    node.ok("POST", f"/api/machines/{ungranted_bot.id}/grants/remove", {"secretIds": [d["id"]]})
    for got in (first, second):  # queued in the same transaction as the change
        assert node.ok("GET", f"/api/leases/{got['leaseId']}")["state"] == "revoking"
    node.svc.leases.sweep()
    assert not {first["username"], second["username"]} & pg.roles("sk_")
    assert ungranted_bot.call("POST", f"/v1/dynamic/{d['id']}/leases", {}).status_code == 403


def test_the_sdk_read_reuses_the_lease_until_two_thirds_of_its_ttl(node: Node, pg: Pg) -> None:
    d = pg.define(node, defaultTtl=300, maxLeasesPerMachine=2)
    bot = machine(node, pg.where, [d["id"]])
    listed = bot.call("GET", "/v1/secrets").json()["secrets"]
    assert listed == [
        {"id": d["id"], "name": d["name"], "fieldNames": '["username","password","leaseId","expiresAt"]',
         "projectId": pg.where.project}
    ]  # fmt: skip
    assert [s["type"] for s in bot.call("GET", "/v1/cli/secrets").json()["secrets"]] == ["leased-secret"]

    def read() -> dict[str, str]:
        response = bot.call("GET", f"/v1/secret/{d['id']}")
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"value"}
        import json

        value: dict[str, str] = json.loads(response.json()["value"])
        return value

    first = read()
    assert set(first) == {"username", "password", "leaseId", "expiresAt"}
    assert all(isinstance(v, str) for v in first.values())
    assert pg.login(first["username"], first["password"])
    node.clock.now += 199_000
    assert read() == first
    node.clock.now += 1_000  # two thirds of 300 s
    second = read()
    assert second["leaseId"] != first["leaseId"] and pg.login(second["username"], second["password"])
    node.clock.now += 90_000  # both live: the limit of two is reached
    assert read()["leaseId"] == second["leaseId"]
    refused = bot.call("POST", f"/v1/dynamic/{d['id']}/leases", {})
    assert refused.status_code == 429 and "maxLeasesPerMachine" in refused.json()["error"]
    node.clock.now += 10_000  # the first lease ends: found at use, queued for revocation
    assert read()["leaseId"] == second["leaseId"]
    assert node.ok("GET", f"/api/leases/{first['leaseId']}")["state"] == "revoking"


def test_the_orphan_sweeper_lists_then_drops_users_without_a_lease(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    kept = lease(bot, d["id"])
    prefix = kept["username"][: len("sk_") + 9]
    orphan = prefix + "crashed_leftover"
    with pg.admin() as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(orphan)))
    dry = node.ok("POST", f"/api/dynamic-secrets/{d['id']}/orphans", {})
    assert dry == {"orphans": [orphan], "dropped": []}
    assert orphan in pg.roles(prefix)
    done = node.ok("POST", f"/api/dynamic-secrets/{d['id']}/orphans", {"dryRun": False})
    assert done == {"orphans": [orphan], "dropped": [orphan]}
    assert pg.roles(prefix) == {kept["username"]}


def test_bulk_revocation_by_machine_or_definition(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    first, second = machine(node, pg.where, [d["id"]]), machine(node, pg.where, [d["id"]])
    mine = [lease(first, d["id"]) for _ in range(3)]
    theirs = lease(second, d["id"])
    body = {"machine": first.id, "reason": "rotate the fleet", "sync": True}
    assert node.ok("POST", f"/api/vaults/{pg.where.vault}/leases/revoke", body) == {"revoked": 3}
    assert not {g["username"] for g in mine} & pg.roles("sk_")
    assert node.ok("GET", f"/api/leases/{theirs['leaseId']}")["state"] == "active"
    status, _ = node.admin("POST", f"/api/vaults/{pg.where.vault}/leases/revoke", {"reason": "all?"})
    assert status == 400  # say which leases
    done = node.ok("POST", f"/api/vaults/{pg.where.vault}/leases/revoke", {"dynamic": d["id"], "sync": True})
    assert done == {"revoked": 1} and theirs["username"] not in pg.roles("sk_")


def test_forget_needs_a_reason_and_is_critical(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    got = lease(machine(node, pg.where, [d["id"]]), d["id"])
    status, _ = node.admin("POST", f"/api/leases/{got['leaseId']}/forget", {"reason": " "})
    assert status == 400
    forgotten = node.ok("POST", f"/api/leases/{got['leaseId']}/forget", {"reason": "database gone"})
    assert forgotten["state"] == "forgotten"
    records = node.ok("GET", f"/api/audit/{pg.where.vault}", limit="1000")["records"]
    assert any(r["action"] == "admin:lease:forget" and r["severity"] == "critical" for r in records)
    node.ok("POST", f"/api/dynamic-secrets/{d['id']}/orphans", {"dryRun": False})  # clean up


def test_a_crash_between_creating_the_user_and_activating_the_lease_leaves_no_orphan(
    node: Node, pg: Pg, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    real = node.svc.leases.targets.call
    made: list[str] = []

    def crash_after(secret_id: str, snapshot: Any, admin: Any, step: Any) -> Any:
        real(secret_id, snapshot, admin, step)
        made.append(snapshot.username)
        raise RuntimeError("the server died here")

    monkeypatch.setattr(node.svc.leases.targets, "call", crash_after)
    with pytest.raises(RuntimeError):
        bot.call("POST", f"/v1/dynamic/{d['id']}/leases", {})
    monkeypatch.undo()
    assert made and made[0] in pg.roles("sk_")  # the user exists; its lease row says 'creating'
    (row,) = node.ok("GET", f"/api/vaults/{pg.where.vault}/leases", dynamic=d["id"])["leases"]
    assert row["state"] == "creating" and row["username"] == made[0]
    node.svc.leases.sweep()
    assert made[0] in pg.roles("sk_")  # a creation may still be in flight: left alone for a while
    node.clock.now += 61_000
    node.svc.leases.sweep()
    assert made[0] not in pg.roles("sk_")
    assert node.ok("GET", f"/api/leases/{row['id']}")["revokeReason"] == "creation interrupted"


def test_an_expired_machine_loses_its_leases(node: Node, pg: Pg) -> None:
    d = pg.define(node, defaultTtl=7200, maxTtl=7200)
    body = {"projectIds": [pg.where.project], "secretIds": [d["id"]], "machineLifetimeSeconds": 3600}
    token = node.ok("POST", f"/api/vaults/{pg.where.vault}/enrollment-tokens", body)["token"]
    key = SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    made = node.svc.plane.enroll(pg.where.vault, token, public, "h", None, "standard", "10.0.0.1", "t")
    got = lease(Bot(node, made.id, key), d["id"])
    node.clock.now += 3600_000
    node.svc.leases.sweep()
    shown = node.ok("GET", f"/api/leases/{got['leaseId']}")
    assert shown["state"] == "revoked" and shown["revokeReason"] == "machine expired"
    assert got["username"] not in pg.roles("sk_")


def test_a_revocation_stalled_for_15_minutes_raises_an_alert_once(node: Node, pg: Pg) -> None:
    d = pg.define(node)
    got = lease(machine(node, pg.where, [d["id"]]), d["id"])
    pg.cluster.stop()
    try:
        node.ok("POST", f"/api/leases/{got['leaseId']}/revoke", {"sync": True})
        for _ in range(12):  # retried with backoff, never given up
            node.clock.now += 100_000
            node.svc.leases.sweep()
        shown = node.ok("GET", f"/api/leases/{got['leaseId']}")
        assert shown["state"] == "revoking" and shown["attempts"] >= 8
    finally:
        pg.cluster.start()
    records = node.ok("GET", f"/api/audit/{pg.where.vault}", limit="1000")["records"]
    stalled = [r for r in records if r["action"] == "system:lease:stalled"]
    assert len(stalled) == 1 and stalled[0]["severity"] == "high"
    node.clock.now += 300_000
    node.svc.leases.sweep()
    assert node.ok("GET", f"/api/leases/{got['leaseId']}")["state"] == "revoked"


# -- where the server may connect (dynamic_allowed_networks) --------------------------------------
INTERNAL = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "localhost", "::1", "[::ffff:127.0.0.1]"]


@pytest.mark.parametrize("host", INTERNAL)
def test_a_definition_at_an_internal_address_is_refused_by_default(node: Node, pg: Pg, host: str) -> None:
    name = f"internal-{uuid.uuid4().hex[:6]}"
    body = {
        "name": name, "engine": "postgresql", "host": host, "port": pg.cluster.port, "database": "postgres",
        "adminSecret": pg.admin_secret, "grantRole": GROUP, "defaultTtl": 600, "maxTtl": 3600,
    }  # fmt: skip
    with allowed_networks(node):  # the default: nothing internal
        status, data = node.admin("POST", f"/api/projects/{pg.where.project}/dynamic-secrets", body)
    assert status == 400, data
    assert "is not allowed" in data["error"] and "dynamic_allowed_networks" in data["error"]
    listed = node.ok("GET", f"/api/projects/{pg.where.project}/dynamic-secrets")["dynamicSecrets"]
    assert name not in {d["name"] for d in listed}


@pytest.mark.parametrize("host", ["10.1.2.3", "169.254.169.254", "::1"])
def test_an_update_to_an_address_outside_the_allowed_networks_is_refused(
    node: Node, pg: Pg, host: str
) -> None:
    """Loopback IPv4 is open on this node; a private address is not, nor IPv6 loopback, and a
    cloud metadata address never is (even inside an allowed network)."""
    d = pg.define(node)
    with allowed_networks(node, "127.0.0.0/8", "169.254.0.0/16"):
        status, data = node.admin("PUT", f"/api/dynamic-secrets/{d['id']}", {"host": host})
    assert status == 400 and "dynamic_allowed_networks" in data["error"], data
    assert node.ok("GET", f"/api/dynamic-secrets/{d['id']}")["host"] == "127.0.0.1"


def test_narrowing_the_setting_stops_every_connection_and_revocations_wait_for_it(node: Node, pg: Pg) -> None:
    """The operator removed loopback after the definition was saved and a lease issued: no
    step connects any more; the lease's revocation stays queued (never marked revoked) and
    runs once the network is open again."""
    d = pg.define(node)
    bot = machine(node, pg.where, [d["id"]])
    live = lease(bot, d["id"])
    users = pg.roles("sk_")
    with allowed_networks(node):
        refused = bot.call("POST", f"/v1/dynamic/{d['id']}/leases", {})
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert f"database for dynamic secret {d['id']}: address 127.0.0.1 is not allowed" in error
        assert "dynamic_allowed_networks" in error and pg.cluster.password not in refused.text
        renew = bot.call("POST", f"/v1/leases/{live['leaseId']}/renew", {"ttl": 900})
        assert renew.status_code == 503 and "dynamic_allowed_networks" in renew.json()["error"]
        status, data = node.admin("POST", f"/api/dynamic-secrets/{d['id']}/orphans", {})
        assert status == 503 and "dynamic_allowed_networks" in data["error"]
        revoking = node.ok("POST", f"/api/leases/{live['leaseId']}/revoke", {"sync": True})
        assert revoking["state"] == "revoking" and "dynamic_allowed_networks" in revoking["lastError"]
        node.clock.now += 40_000
        node.svc.leases.sweep()
        shown = node.ok("GET", f"/api/leases/{live['leaseId']}")
        assert shown["state"] == "revoking" and shown["attempts"] >= 2
        assert pg.roles("sk_") == users and pg.login(live["username"], live["password"])
    leases = node.ok("GET", f"/api/vaults/{pg.where.vault}/leases", dynamic=d["id"])["leases"]
    (failed,) = [x for x in leases if x["id"] != live["leaseId"]]
    assert failed["state"] == "failed"  # no connection was opened: nothing to clean up
    records = node.ok("GET", f"/api/audit/{pg.where.vault}", limit="1000")["records"]
    fails = [r for r in records if r["action"] == "system:lease:fail" and r["target"]["secret"] == d["id"]]
    assert len(fails) >= 3 and all("dynamic_allowed_networks" in r["reason"] for r in fails)
    assert {r["result"] for r in fails} == {"error"}
    node.clock.now += 40_000
    node.svc.leases.sweep()
    assert node.ok("GET", f"/api/leases/{live['leaseId']}")["state"] == "revoked"
    assert live["username"] not in pg.roles("sk_")


def test_providers_connect_to_the_pinned_address_not_the_name(pg: Pg) -> None:
    """The server hands drivers the address it checked: a host name that cannot resolve
    (``.invalid``) still reaches the database at the pinned address, so the driver never
    looks the name up again (DNS rebinding)."""
    pinned = "sikker-pinned.invalid"
    cluster = pg.cluster
    postgres = Connection(pinned, cluster.port, "postgres", cluster.admin, cluster.password, 3, "127.0.0.1")
    assert get_dynamic_provider("postgresql", postgres).list_users("sk_none_") == []
    _mariadb_admin().close()  # skips (or fails in CI) without MariaDB
    assert (
        get_dynamic_provider("mysql", Connection(pinned, 3306, "", "root", "", 3, "127.0.0.1")).list_users(
            "sk_none_"
        )
        == []
    )
    rd = Connection(pinned, 6379, "0", "default", "", 3, "127.0.0.1")
    try:
        assert get_dynamic_provider("redis", rd).list_users("sk_none_") == []
    except Exception as e:
        if IN_CI:
            raise
        pytest.skip(f"Redis is not running: {type(e).__name__}")


# -- MariaDB --------------------------------------------------------------------------------------
def _mariadb_admin() -> pymysql.connections.Connection:  # type: ignore[type-arg]
    try:
        return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    except pymysql.err.OperationalError as e:
        if IN_CI:
            pytest.fail(f"MariaDB is not reachable at 127.0.0.1:3306 and CI=true: {e}")
        pytest.skip("MariaDB is not running")


def test_mariadb_lease_logs_in_and_revocation_kills_its_connections(node: Node) -> None:
    role = f"skdyn_{uuid.uuid4().hex[:8]}"
    with _mariadb_admin() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE ROLE `{role}`")
        cur.execute(f"GRANT SELECT ON mysql.db TO `{role}`")
    try:
        where = place(node)
        admin = admin_secret(node, where, "root", "")
        d = define(
            node, where, name="maria", engine="mysql", host="127.0.0.1", port=3306, adminSecret=admin,
            grantRole=role, defaultTtl=600, maxTtl=600,
        )  # fmt: skip
        got = lease(machine(node, where, [d["id"]]), d["id"])
        assert len(got["username"]) <= 32
        session = pymysql.connect(
            host="127.0.0.1", port=3306, user=got["username"], password=got["password"], connect_timeout=3
        )
        with session.cursor() as cur:
            cur.execute("SELECT CURRENT_ROLE()")
            assert cur.fetchone() == (role,)
        node.ok("POST", f"/api/leases/{got['leaseId']}/revoke", {"sync": True})
        with _mariadb_admin() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s", (got["username"],)
            )
            assert cur.fetchone() == (0,)
            cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = %s", (got["username"],))
            assert cur.fetchone() == (0,)
        with pytest.raises(pymysql.err.Error), session.cursor() as cur:
            cur.execute("SELECT 1")
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host="127.0.0.1", port=3306, user=got["username"], password=got["password"])
    finally:
        with _mariadb_admin() as conn, conn.cursor() as cur:
            cur.execute(f"DROP ROLE IF EXISTS `{role}`")


# -- Redis ----------------------------------------------------------------------------------------
@dataclass
class Redis:
    def define(self, node: Node, where: Place, **extra: Any) -> dict[str, Any]:
        admin = admin_secret(node, where, "default", "")
        body = {
            "name": f"rd-{uuid.uuid4().hex[:6]}", "engine": "redis", "host": "127.0.0.1", "port": 6379,
            "adminSecret": admin, "grantRole": "~dyn:* +@all -@admin -@dangerous", "defaultTtl": 600,
            "maxTtl": 600,
        } | extra  # fmt: skip
        return define(node, where, **body)


@pytest.fixture(scope="module")
def rd() -> Iterator[Redis]:
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as e:
        if IN_CI:
            pytest.fail(f"Redis is not reachable at 127.0.0.1:6379 and CI=true: {e}")
        pytest.skip("Redis is not running")
    yield Redis()
    client.close()


def test_redis_lease_logs_in_and_revocation_closes_its_connections(node: Node, rd: Redis) -> None:
    where = place(node)
    d = rd.define(node, where)
    got = lease(machine(node, where, [d["id"]]), d["id"])
    session = redis.Redis(
        host="127.0.0.1", port=6379, username=got["username"], password=got["password"], socket_timeout=3
    )
    assert session.set("dyn:x", "1") and session.get("dyn:x") == b"1"
    admin = redis.Redis(host="127.0.0.1", port=6379, decode_responses=True)
    assert any(c.get("user") == got["username"] for c in admin.client_list())
    node.ok("POST", f"/api/leases/{got['leaseId']}/revoke", {"sync": True})
    assert not any(c.get("user") == got["username"] for c in admin.client_list())
    assert got["username"] not in admin.acl_users()
    with pytest.raises(redis.RedisError):
        redis.Redis(
            host="127.0.0.1", port=6379, username=got["username"], password=got["password"],
            retry=Retry(NoBackoff(), 0), socket_timeout=3,
        ).ping()  # fmt: skip
    admin.delete("dyn:x")
    admin.close()
    session.close()


def test_redis_grant_rules_that_set_passwords_are_refused(node: Node, rd: Redis) -> None:
    where = place(node)
    for rules in ("nopass", ">secret", "+get reset", "#abc"):
        admin = admin_secret(node, where, "default", "")
        status, data = node.admin(
            "POST", f"/api/projects/{where.project}/dynamic-secrets",
            {"name": "r", "engine": "redis", "host": "127.0.0.1", "port": 6379, "adminSecret": admin,
             "grantRole": rules, "defaultTtl": 60, "maxTtl": 60},
        )  # fmt: skip
        assert status == 400 and "grantRole" in data["error"], data
