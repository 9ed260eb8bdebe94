"""People over real HTTP: accounts, sign-in, sessions, TOTP, lockout, and what never leaks."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.support import Api, Server, init_and_unseal

PASSWORD = "correct horse battery staple"


@pytest.fixture
def root(server: Server) -> Iterator[Api]:
    _, token = init_and_unseal(server.url)
    yield Api(server.url, token)


def create(root: Api, name: str = "Alice", password: str | None = PASSWORD) -> dict[str, Any]:
    body = {"name": name, "email": f"{name.lower()}@example.org"} | (
        {"password": password} if password else {}
    )
    return dict(root.ok("POST", "/api/users", body))


def login(root: Api, name: str, password: str = PASSWORD, totp: str | None = None) -> tuple[int, Any]:
    body = {"user": name, "password": password} | ({"totp": totp} if totp else {})
    return Api(root.url).call("POST", "/api/auth/login", body)


def system_audit(root: Api) -> list[dict[str, Any]]:
    return list(root.ok("GET", "/api/audit/system?limit=1000")["records"])


def test_a_person_signs_in_sees_who_they_are_and_signs_out(root: Api) -> None:
    user = create(root)
    status, session = login(root, "alice")  # names ignore case
    assert status == 201 and session["user"] == {"id": user["id"], "name": "Alice"}
    me = Api(root.url, session["token"])
    assert me.ok("GET", "/api/auth/whoami")["id"] == user["id"]
    me.ok("POST", "/api/auth/logout")
    assert me.call("GET", "/api/auth/whoami")[0] == 401
    actions = [(r["action"], r["actor_id"]) for r in system_audit(root)]
    assert ("user:auth:login", user["id"]) in actions and ("user:auth:logout", user["id"]) in actions


@pytest.mark.parametrize("spelling", ["alice", "ALICE", "\uff21\uff4c\uff49\uff43\uff45"])
def test_user_names_are_one_account_whatever_the_case_or_width(root: Api, spelling: str) -> None:
    create(root)
    status, body = root.call(
        "POST", "/api/users", {"name": spelling, "email": "x@example.org", "password": PASSWORD}
    )
    assert status == 409 and "exists" in body["error"]


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw", "12"),
        ("password1234", "common"),
        ("Alice-is-my-name", "user name"),
        ("qwertyuiop12", "common"),
    ],
)
def test_weak_passwords_are_refused_without_echoing_them(root: Api, password: str, why: str) -> None:
    status, body = root.call(
        "POST", "/api/users", {"name": "Alice", "email": "a@example.org", "password": password}
    )
    assert status == 400 and why in body["error"] and password not in body["error"]


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_and_are_audited(root: Api) -> None:
    create(root)
    wrong = login(root, "alice", "not the right one at all")
    unknown = login(root, "mallory", "not the right one at all")
    assert wrong == unknown == (401, {"error": "invalid user name or password"})
    reasons = [r["reason"] for r in system_audit(root) if r["action"] == "user:auth:fail"]
    assert "wrong password" in reasons and "unknown user" in reasons


def test_failures_lock_the_canonical_name_not_the_spelling(root: Api) -> None:
    create(root)
    for spelling in ("alice", "ALICE", "Alice", "aLiCe", "alice"):
        assert login(root, spelling, "wrong wrong wrong")[0] == 401
    status, body = login(root, "Alice")  # the right password, but the name is locked
    assert status == 429 and "password" not in body["error"]
    # An unknown name locks the same way: the lock tells nothing about who exists.
    for _ in range(5):
        login(root, "nobody-here", "wrong wrong wrong")
    assert login(root, "nobody-here", "wrong wrong wrong")[0] == 429


def test_disabling_a_user_ends_their_sessions_and_tokens_at_once(root: Api) -> None:
    user = create(root)
    session = Api(root.url, login(root, "alice")[1]["token"])
    personal = session.ok("POST", "/api/users/me/tokens", {"name": "ci", "ttlSeconds": 3600})
    script = Api(root.url, personal["token"])
    assert script.ok("GET", "/api/auth/whoami")["id"] == user["id"]
    root.ok("POST", f"/api/users/{user['id']}/disable")
    assert session.call("GET", "/api/auth/whoami")[0] == 401
    assert script.call("GET", "/api/auth/whoami")[0] == 401
    assert login(root, "alice")[0] == 401
    root.ok("POST", "/api/users/alice/enable")
    assert login(root, "alice")[0] == 201
    assert session.call("GET", "/api/auth/whoami")[0] == 401  # ended sessions stay ended


def test_totp_codes_work_once_and_recovery_codes_once(root: Api) -> None:
    create(root)
    me = Api(root.url, login(root, "alice")[1]["token"])
    enrolled = me.ok("POST", "/api/users/me/totp")
    assert enrolled["uri"].startswith("otpauth://totp/") and "issuer=Sikker" in enrolled["uri"]
    totp = pyotp.TOTP(enrolled["secret"])
    codes = me.ok("POST", "/api/users/me/totp/confirm", {"code": totp.now()})["recoveryCodes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    status, body = login(root, "alice")
    assert status == 401 and "second factor" in body["error"]
    # The code that confirmed the enrolment is used up; the next step's code (within the
    # one-step drift allowed) works once.
    code = totp.at(time.time() + 30)
    assert login(root, "alice", totp=code)[0] == 201
    assert login(root, "alice", totp=code)[0] == 401  # replayed
    assert login(root, "alice", totp="000000")[0] == 401
    assert login(root, "alice", totp=codes[0])[0] == 201
    assert login(root, "alice", totp=codes[0])[0] == 401  # each recovery code once
    audit = json.dumps(system_audit(root))
    assert enrolled["secret"] not in audit and codes[1] not in audit and PASSWORD not in audit


def test_an_idle_session_ends(tmp_path: Path, database_url: str) -> None:
    server = Server(database_url, tmp_path / "data", env={"SIKKER_SESSION_IDLE_SECONDS": "1"}).start()
    try:
        _, token = init_and_unseal(server.url)
        root = Api(server.url, token)
        create(root)
        me = Api(server.url, login(root, "alice")[1]["token"])
        time.sleep(2.5)
        status, body = me.call("GET", "/api/auth/whoami")
        assert status == 401 and "sign in again" in body["error"]
    finally:
        server.stop()


def test_no_password_or_token_reaches_the_server_log_or_error_bodies(root: Api, server: Server) -> None:
    create(root)
    token = login(root, "alice")[1]["token"]
    status, body = login(root, "alice", "hunter2-hunter2-wrong")
    assert "hunter2" not in json.dumps(body)
    Api(root.url, token).ok("POST", "/api/auth/logout")
    status, body = Api(root.url, token).call("GET", "/api/auth/whoami")
    assert status == 401 and token not in json.dumps(body)
    log = server.output()
    assert PASSWORD not in log and "hunter2" not in log and token not in log


def sikker(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sikker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=60,
        check=False,
    )


def test_the_cli_creates_a_user_and_signs_in_without_prompts(root: Api, tmp_path: Path) -> None:
    admin_env = {"SIKKER_ADDR": root.url, "SIKKER_TOKEN": root.headers["authorization"][7:]}
    made = sikker("user", "create", "bob", "--email", "bob@example.org", "--password-file", "-",
                  env=admin_env, stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    person = {"SIKKER_ADDR": root.url, "SIKKER_CONFIG_DIR": str(tmp_path / "cfg")}
    signed = sikker("login", "--user", "Bob", "--password-file", "-", env=person, stdin=PASSWORD)
    assert signed.returncode == 0, signed.stderr
    saved = tmp_path / "cfg" / "session.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    who = sikker("whoami", "--json", env=person)
    assert who.returncode == 0 and json.loads(who.stdout)["name"] == "bob"
    assert sikker("logout", env=person).returncode == 0
    assert not saved.exists()
    assert sikker("whoami", env=person).returncode == 3  # not signed in: authentication error


def test_a_vault_that_requires_mfa_is_invisible_to_sessions_without_it(root: Api) -> None:
    create(root)
    vault = root.ok("POST", "/api/vaults", {"name": "prod"})["id"]
    root.ok("POST", "/api/role-bindings", {"role": "viewer", "vaultId": vault, "user": "alice"})
    plain = Api(root.url, login(root, "alice")[1]["token"])
    assert [b["vaultId"] for b in plain.ok("GET", "/api/auth/whoami")["bindings"]] == [vault]
    root.ok("PUT", f"/api/vaults/{vault}/mfa", {"required": True})
    assert plain.ok("GET", "/api/auth/whoami")["bindings"] == []
    enrolled = plain.ok("POST", "/api/users/me/totp")
    plain.ok("POST", "/api/users/me/totp/confirm", {"code": pyotp.TOTP(enrolled["secret"]).now()})
    code = pyotp.TOTP(enrolled["secret"]).at(time.time() + 30)
    strong = Api(root.url, login(root, "alice", totp=code)[1]["token"])
    assert [b["vaultId"] for b in strong.ok("GET", "/api/auth/whoami")["bindings"]] == [vault]


def test_unbinding_and_deleting_take_effect_at_once_and_are_audited(root: Api) -> None:
    user = create(root)
    vault = root.ok("POST", "/api/vaults", {"name": "dev"})["id"]
    binding = root.ok("POST", "/api/role-bindings", {"role": "developer", "vaultId": vault, "user": "ALICE"})
    assert binding["userId"] == user["id"]
    me = Api(root.url, login(root, "alice")[1]["token"])
    assert len(me.ok("GET", "/api/auth/whoami")["bindings"]) == 1
    root.ok("DELETE", f"/api/role-bindings/{binding['id']}")
    assert me.ok("GET", "/api/auth/whoami")["bindings"] == []
    root.ok("DELETE", "/api/users/alice")
    assert me.call("GET", "/api/auth/whoami")[0] == 401
    assert root.call("GET", f"/api/users/{user['id']}")[0] == 404
    vault_actions = [r["action"] for r in root.ok("GET", f"/api/audit/{vault}?limit=100")["records"]]
    assert "admin:role:bind" in vault_actions and "admin:role:unbind" in vault_actions
    assert "admin:user:delete" in [r["action"] for r in system_audit(root)]


def test_only_the_root_token_manages_people(root: Api) -> None:
    create(root)
    me = Api(root.url, login(root, "alice")[1]["token"])
    body = {"name": "mallory", "email": "m@example.org", "password": PASSWORD}
    assert me.call("POST", "/api/users", body)[0] == 403
    assert me.call("GET", "/api/users")[0] == 403
    assert me.call("POST", "/api/users/alice/disable")[0] == 403
    vault = root.ok("POST", "/api/vaults", {"name": "x"})["id"]
    grant = {"role": "owner", "vaultId": vault, "user": "alice"}
    assert me.call("POST", "/api/role-bindings", grant)[0] in (403, 404)


def test_a_personal_token_can_be_narrower_than_its_person(root: Api) -> None:
    create(root)
    vault = root.ok("POST", "/api/vaults", {"name": "team"})["id"]
    web = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "web"})["id"]
    batch = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "batch"})["id"]
    web_secret = root.ok("POST", f"/api/projects/{web}/secrets", {"name": "S", "value": "w"})["id"]
    batch_secret = root.ok("POST", f"/api/projects/{batch}/secrets", {"name": "S", "value": "b"})["id"]
    root.ok("POST", "/api/role-bindings", {"role": "developer", "vaultId": vault, "user": "alice"})
    me = Api(root.url, login(root, "alice")[1]["token"])
    assert me.ok("GET", f"/api/secrets/{batch_secret}")["value"] == "b"  # the person: developer
    body = {"name": "ci", "ttlSeconds": 3600, "role": "viewer", "projectId": web}
    narrow = Api(root.url, me.ok("POST", "/api/users/me/tokens", body)["token"])
    assert narrow.call("GET", f"/api/secrets/{web_secret}/versions")[0] == 200  # viewer in web
    status, error = narrow.call("GET", f"/api/secrets/{web_secret}")  # ... never values
    assert status == 403 and "limited to role viewer" in error["error"]
    assert narrow.call("GET", f"/api/secrets/{batch_secret}/versions")[0] == 404  # not its project
    # Never wider than the person: an owner ceiling on a developer person adds nothing.
    wide = {"name": "wide", "ttlSeconds": 3600, "role": "owner"}
    owner_token = Api(root.url, me.ok("POST", "/api/users/me/tokens", wide)["token"])
    binding = {"role": "owner", "vaultId": vault, "group": "g"}
    assert owner_token.call("POST", "/api/role-bindings", binding)[0] == 403
