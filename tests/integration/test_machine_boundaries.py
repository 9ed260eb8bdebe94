"""Machine-plane trust boundaries, each tried over real HTTP by the role that would cross it
(docs/security.md): enrollment-token holders, anonymous clients sharing an address, machines
asking about other vaults."""

from __future__ import annotations

import base64
import json
import secrets
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support import Api, Machine, Server, init_and_unseal

PUBLIC_KEY = base64.b64encode(bytes(range(32))).decode()


@dataclass
class Setup:
    server: Server
    root: Api
    vault: str
    project: str
    secret: str

    def token(self, **body: object) -> str:
        base: dict[str, object] = {"projectIds": [self.project], "secretIds": [self.secret], "maxUses": 100}
        created = self.root.ok("POST", f"/api/vaults/{self.vault}/enrollment-tokens", base | body)
        return str(created["token"])

    def register(self, token: str, **body: object) -> httpx.Response:
        payload = {"token": token, "publicKey": PUBLIC_KEY, "hostname": "h"} | body
        return httpx.post(f"{self.server.url}/v1/{self.vault}/enroll/register", json=payload, timeout=30)

    def audit_count(self) -> int:
        """Records in the system chain (unknown machines) and this vault's chain."""
        chains = ("system", self.vault)
        return sum(len(self.root.ok("GET", f"/api/audit/{c}?limit=1000")["records"]) for c in chains)


def _setup(database: str, data: Path, env: dict[str, str]) -> Iterator[Setup]:
    server = Server(database, data, env=env).start()
    try:
        _, root_token = init_and_unseal(server.url)
        root = Api(server.url, root_token)
        vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "hunter2"})["id"]
        yield Setup(server, root, vault, project, secret)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def setup(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A server whose failure throttle starts after 3 failures (all test traffic is 127.0.0.1)."""
    base = tmp_path_factory.mktemp("boundaries")
    env = {"SIKKER_AUTH_LOCKOUT_FAILURES": "3"}
    yield from _setup(module_database_url, base / "data", env)


# -- failures of others never lock a legitimate machine out (review item 3) ------------------
def test_failures_from_the_same_address_never_refuse_a_correctly_signed_request(setup: Setup) -> None:
    legit = Machine.enroll(setup.server, setup.vault, setup.token())
    ghost = Machine(setup.server.url, "00000000-0000-4000-8000-000000000000", Ed25519PrivateKey.generate())
    forger = Machine(setup.server.url, legit.id, Ed25519PrivateKey.generate())  # claims legit's id
    statuses = []
    for _ in range(4):
        statuses.append(ghost.request("GET", f"/v1/secret/{setup.secret}").status_code)
        statuses.append(forger.request("GET", f"/v1/secret/{setup.secret}").status_code)
        statuses.append(legit.request("GET", "/v1/secrets", timestamp=int(time.time()) - 3600).status_code)
        statuses.append(setup.register("garbage-token").status_code)
    assert set(statuses) == {401, 429}, statuses  # refused, then throttled
    assert legit.request("GET", f"/v1/secret/{setup.secret}").json() == {"value": "hunter2"}
    # A valid enrollment token from the same address still enrolls, and its machine reads.
    newcomer = Machine.enroll(setup.server, setup.vault, setup.token())
    assert newcomer.request("GET", f"/v1/secret/{setup.secret}").status_code == 200


def test_losers_of_an_enrollment_race_do_not_lock_out_the_winner(setup: Setup) -> None:
    token = setup.token(maxUses=2)

    def enroll(_: int) -> httpx.Response:
        key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        return setup.register(token, publicKey=base64.b64encode(key).decode())

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(enroll, range(24)))
    winners = [r.json()["machineId"] for r in answers if r.status_code == 200]
    assert len(winners) == 2 and {r.status_code for r in answers} <= {200, 401, 429}
    machine = Machine.enroll(setup.server, setup.vault, setup.token())
    assert machine.request("GET", f"/v1/secret/{setup.secret}").status_code == 200


def test_throttled_failures_write_no_audit_record_each(setup: Setup) -> None:
    ghost = Machine(setup.server.url, "00000000-0000-4000-8000-00000000dead", Ed25519PrivateKey.generate())
    for _ in range(5):  # past the threshold of 3
        ghost.request("GET", f"/v1/secret/{setup.secret}")
    before = setup.audit_count()
    statuses = [ghost.request("GET", f"/v1/secret/{setup.secret}").status_code for _ in range(50)]
    assert statuses == [429] * 50
    assert setup.audit_count() == before


# -- enrollment (review items 2, 4, 13) --------------------------------------------------------
def test_a_catastrophic_hostname_pattern_cannot_stall_the_server(setup: Setup) -> None:
    token = setup.token(hostnamePattern="(a|a)+b")
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(setup.register, token, hostname="a" * 250)
        health = httpx.get(f"{setup.server.url}/api/sys/health", timeout=30)
        refused = slow.result()
    assert health.status_code == 200
    assert refused.status_code == 403 and "hostname" in refused.json()["error"]
    assert setup.register(token, hostname="a" * 250 + "b").status_code == 200


def test_hostname_patterns_re2_cannot_run_are_refused_at_creation(setup: Setup) -> None:
    status, body = setup.root.call(
        "POST",
        f"/api/vaults/{setup.vault}/enrollment-tokens",
        {"projectIds": [], "secretIds": [], "hostnamePattern": r"(a)\1"},
    )
    assert status == 400 and "RE2" in body["error"]


def test_manual_approval_applies_to_ephemeral_machines_and_they_expire(setup: Setup) -> None:
    manual = setup.token(approval="manual")
    r = setup.register(manual, kind="ephemeral")  # what the SDK's bootstrap_in_memory sends
    assert r.status_code == 200
    machine_id = r.json()["machineId"]
    assert r.json()["expiresAt"] > time.time() * 1000  # no machine TTL on the token: a default
    listed = setup.root.ok("GET", f"/api/vaults/{setup.vault}/machines")["machines"]
    assert [m["approved"] for m in listed if m["id"] == machine_id] == [False]
    auto = setup.register(setup.token(), kind="ephemeral")
    assert auto.status_code == 200 and "expiresAt" in auto.json()


def test_an_ephemeral_machine_waits_for_approval_before_it_reads(setup: Setup) -> None:
    machine = Machine.enroll(setup.server, setup.vault, setup.token(approval="manual"), kind="ephemeral")
    r = machine.request("GET", f"/v1/secret/{setup.secret}")
    assert r.status_code == 403 and "pending approval" in r.json()["error"]
    setup.root.ok("POST", f"/api/machines/{machine.id}/approve")
    assert machine.request("GET", f"/v1/secret/{setup.secret}").json() == {"value": "hunter2"}


@pytest.mark.parametrize(
    "field", [{"name": "evil\x1b[31m"}, {"hostname": "h\x1b]0;pwned\x07"}, {"name": "c1\x9bm"}]
)
def test_terminal_escapes_in_enrollment_names_are_refused(setup: Setup, field: dict[str, str]) -> None:
    r = setup.register(setup.token(), **field)
    assert r.status_code == 400 and "control characters" in r.json()["error"]


def test_terminal_escapes_in_a_name_pattern_are_refused(setup: Setup) -> None:
    status, body = setup.root.call(
        "POST",
        f"/api/vaults/{setup.vault}/enrollment-tokens",
        {"projectIds": [], "secretIds": [], "namePattern": "w-{uuid8}\x1b[2J"},
    )
    assert status == 400 and "control characters" in body["error"]


# -- no existence oracle across vaults (review item 15) -----------------------------------------
def test_poll_answers_the_same_for_another_vaults_secret_and_a_missing_one(setup: Setup) -> None:
    other_vault = setup.root.ok("POST", "/api/vaults", {"name": f"other-{secrets.token_hex(3)}"})["id"]
    other_project = setup.root.ok("POST", f"/api/vaults/{other_vault}/projects", {"name": "p"})["id"]
    foreign = setup.root.ok("POST", f"/api/projects/{other_project}/secrets", {"name": "f", "value": "x"})[
        "id"
    ]
    machine = Machine.enroll(setup.server, setup.vault, setup.token())
    body = json.dumps({"watch": [foreign, "sk_0000000000000000"]}).encode()
    r = machine.request("POST", "/v1/secrets/poll", body)
    assert r.status_code == 200
    changes = r.json()["changes"]
    assert changes[foreign] == changes["sk_0000000000000000"] == {"status": "deleted"}


# -- files on disk (review item 16) -----------------------------------------------------------
def test_the_database_and_its_wal_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    server = Server("", data).start()
    try:
        init_and_unseal(server.url)
        files = [data / "sikker.db", data / "sikker.db-wal", data / "sikker.db-shm"]
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files), [
            oct(f.stat().st_mode) for f in files
        ]
    finally:
        server.stop()


def test_a_data_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    server = Server("", data)
    try:
        with pytest.raises(RuntimeError, match=r"open to\s+other\s+users"):
            server.start()
    finally:
        server.stop()  # had it started, it must not outlive the test
