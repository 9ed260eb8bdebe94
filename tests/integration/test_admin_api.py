"""The admin plane over real HTTP: secrets, versions, trash, tokens, bad input."""

from __future__ import annotations

import uuid

import pytest

from tests.support import Api, Server, init_and_unseal


@pytest.fixture
def root(server: Server) -> Api:
    _, token = init_and_unseal(server.url)
    return Api(server.url, token)


@pytest.fixture
def project(root: Api) -> str:
    vault = root.ok("POST", "/api/vaults", {"name": f"v-{uuid.uuid4().hex[:6]}"})["id"]
    return str(root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "app"})["id"])


def test_secret_versions_rollback_and_trash(root: Api, project: str) -> None:
    sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "DB", "value": "one"})["id"]
    assert root.ok("PUT", f"/api/secrets/{sid}", {"value": "two"})["version"] == 2
    assert root.ok("GET", f"/api/secrets/{sid}")["value"] == "two"
    assert root.ok("GET", f"/api/secrets/{sid}", params={"version": 1})["value"] == "one"
    versions = root.ok("GET", f"/api/secrets/{sid}/versions")["versions"]
    assert [v["version"] for v in versions] == [2, 1]
    assert root.ok("POST", f"/api/secrets/{sid}/rollback", {"version": 1})["version"] == 3
    assert root.ok("GET", f"/api/secrets/{sid}")["value"] == "one"

    root.ok("DELETE", f"/api/secrets/{sid}")
    assert root.call("GET", f"/api/secrets/{sid}")[0] == 404
    assert root.ok("GET", f"/api/projects/{project}/secrets")["secrets"] == []
    trash = root.ok("GET", f"/api/projects/{project}/secrets", params={"deleted": "true"})["secrets"]
    assert [s["id"] for s in trash] == [sid]
    root.ok("POST", f"/api/secrets/{sid}/restore")
    assert root.ok("GET", f"/api/secrets/{sid}")["value"] == "one"


def test_structured_secrets_keep_their_fields(root: Api, project: str) -> None:
    fields = {"username": "app", "password": "p@ss", "host": "db.internal"}
    sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "PG", "fields": fields})["id"]
    got = root.ok("GET", f"/api/secrets/{sid}")
    assert got["type"] == "structured" and got["fields"] == fields
    status, body = root.call("PUT", f"/api/secrets/{sid}", {"value": "plain"})
    assert status == 409 and "structured" in body["error"]


def test_names_are_unique_among_live_secrets_only(root: Api, project: str) -> None:
    sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "K", "value": "a"})["id"]
    status, body = root.call("POST", f"/api/projects/{project}/secrets", {"name": "K", "value": "b"})
    assert status == 409
    root.ok("DELETE", f"/api/secrets/{sid}")
    root.ok("POST", f"/api/projects/{project}/secrets", {"name": "K", "value": "b"})
    status, body = root.call("POST", f"/api/secrets/{sid}/restore")
    assert status == 409 and "already exists" in body["error"]


BAD_BODIES = [
    (b"not json", "not valid JSON"),
    (b"[1,2]", "must be a JSON object"),
    (b'{"name": "x", "value": "v", "extra": 1}', "unknown field"),
    (b'{"name": 5, "value": "v"}', "must be a string"),
    (b'{"name": "", "value": "v"}', "1 to 255"),
    (b'{"name": "' + b"n" * 256 + b'", "value": "v"}', "longer than 255"),
    (b'{"name": "x"}', "exactly one of"),
    (b'{"name": "x", "value": "v", "fields": {"a": "b"}}', "exactly one of"),
    (b'{"name": "x", "fields": {"a": 1}}', "must have a string value"),
    (
        b'{"name": "x", "fields": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "i"}}}}}}}}}',
        "nested deeper",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD_BODIES)
def test_bad_input_gets_a_clear_400_and_changes_nothing(
    root: Api, project: str, raw: bytes, message: str
) -> None:
    response = root.raw(
        "POST", f"/api/projects/{project}/secrets", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert list(response.json()) == ["error"] and message in response.json()["error"]
    assert root.ok("GET", f"/api/projects/{project}/secrets")["secrets"] == []


def test_oversized_body_and_value_are_refused(root: Api, project: str) -> None:
    big = {"name": "big", "value": "x" * (2 * 1024 * 1024)}
    status, body = root.call("POST", f"/api/projects/{project}/secrets", big)
    assert status == 413 and "exceeds" in body["error"]
    too_long_value = {"name": "big", "value": "x" * (64 * 1024 + 1)}
    status, body = root.call("POST", f"/api/projects/{project}/secrets", too_long_value)
    assert status == 413 and "65536" in body["error"]
    assert root.ok("GET", f"/api/projects/{project}/secrets")["secrets"] == []


@pytest.mark.parametrize(
    "path", ["/api/secrets/sk_nope", "/api/secrets/sk_0123456789abcdeF", "/api/secrets/..%2f..%2fetc"]
)
def test_malformed_ids_are_400_and_unknown_routes_404(root: Api, path: str) -> None:
    status, body = root.call("GET", path)
    assert status in (400, 404) and "error" in body
    if status == 400:
        assert "malformed secret id" in body["error"]
    assert root.call("GET", "/api/nothing-here") == (404, {"error": "no such route"})


def test_missing_or_wrong_token_is_401(server: Server, root: Api) -> None:
    assert Api(server.url).call("GET", "/api/vaults")[0] == 401
    status, body = Api(server.url, "sikker_wrong").call("GET", "/api/vaults")
    assert status == 401 and "invalid" in body["error"]


def test_admin_tokens_are_scoped_to_their_vault_and_revocable(server: Server, root: Api) -> None:
    mine = root.ok("POST", "/api/vaults", {"name": "mine"})["id"]
    other = root.ok("POST", "/api/vaults", {"name": "other"})["id"]
    other_project = root.ok("POST", f"/api/vaults/{other}/projects", {"name": "p"})["id"]
    created = root.ok("POST", "/api/tokens", {"vaultId": mine, "name": "ci"})
    admin = Api(server.url, created["token"])

    assert [v["id"] for v in admin.ok("GET", "/api/vaults")["vaults"]] == [mine]
    admin.ok("POST", f"/api/vaults/{mine}/projects", {"name": "p"})
    assert admin.call("POST", f"/api/vaults/{other}/projects", {"name": "x"})[0] == 404
    assert admin.call("GET", f"/api/projects/{other_project}/secrets")[0] == 404
    assert admin.call("POST", "/api/vaults", {"name": "nope"})[0] == 403
    assert admin.call("POST", "/api/tokens", {"vaultId": mine})[0] == 403

    root.ok("DELETE", f"/api/tokens/{created['id']}")
    assert admin.call("GET", "/api/vaults")[0] == 401


def test_project_delete_refuses_while_secrets_live(root: Api, project: str) -> None:
    sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "A", "value": "a"})["id"]
    status, body = root.call("DELETE", f"/api/projects/{project}")
    assert status == 409 and "delete them first" in body["error"]
    root.ok("DELETE", f"/api/secrets/{sid}")
    root.ok("DELETE", f"/api/projects/{project}")
    assert root.call("GET", f"/api/projects/{project}/secrets")[0] == 404


def test_key_rotation_keeps_every_version_readable(root: Api, project: str) -> None:
    sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "R", "value": "v1"})["id"]
    root.ok("PUT", f"/api/secrets/{sid}", {"value": "v2"})
    report = root.ok("POST", "/api/sys/rotate-keys", {"projectId": project})
    assert report == {"projects": 1, "rewrapped": 2}
    root.ok("PUT", f"/api/secrets/{sid}", {"value": "v3"})
    for version, expected in ((1, "v1"), (2, "v2"), (3, "v3")):
        assert root.ok("GET", f"/api/secrets/{sid}", params={"version": version})["value"] == expected


def test_a_body_is_looked_at_only_after_the_caller_authenticated(root: Api) -> None:
    """Broken JSON is 401 without a valid token (nothing is parsed for an anonymous caller) and
    400 with one, on routes that share ``authed_json``."""
    vault = root.ok("POST", "/api/vaults", {"name": "bodies"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "app"})["id"]
    secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "s", "value": "v"})["id"]
    anonymous = Api(root.url)
    broken = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    for method, path in (
        ("POST", f"/api/projects/{project}/secrets"),
        ("POST", f"/api/projects/{project}/canaries"),
        ("POST", f"/api/vaults/{vault}/enrollment-tokens"),
        ("POST", "/api/tokens"),
        ("POST", "/api/role-bindings"),
        ("PUT", f"/api/secrets/{secret}"),
        ("POST", f"/api/secrets/{secret}/rollback"),
        ("POST", "/api/vaults"),
        ("POST", f"/api/vaults/{vault}/projects"),
    ):
        assert anonymous.raw(method, path, **broken).status_code == 401, path
        refused = root.raw(method, path, **broken)
        assert refused.status_code == 400, (path, refused.text)
        assert "not valid JSON" in refused.json()["error"]
