"""Every admin route, called by every role, over real HTTP (docs/operator/identity.md "Roles").

``ROUTES`` maps each authenticated route under /api to the principals allowed to call
it. A route the app serves that is missing from the table fails the test, so a new
route forces a decision. Each call is VALID (real ids, valid bodies, fresh objects for
destructive calls), so validation cannot mask authorization: an allowed principal gets
a 2xx, a denied one 403 or 404.

Principals: a token of each role at the vault, a developer bound to the project the
request is about (``developer@project``), and a developer bound to another project of
the same vault (``developer@other``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from sikker.api.app import create_app
from sikker.config import Settings
from sikker.service.bootstrap import bootstrap
from tests.support import Api, Machine, Server, init_and_unseal
from tests.workload import SigningKey

ROLES = ("owner", "admin", "developer", "viewer", "auditor")
PRINCIPALS = (*ROLES, "developer@project", "developer@other")
EVERYONE = frozenset(PRINCIPALS)
ROOT_ONLY: frozenset[str] = frozenset()
MANAGERS = frozenset({"owner", "admin"})
DEVELOPERS = frozenset({"owner", "admin", "developer"})
IN_PROJECT = DEVELOPERS | {"developer@project"}  # project-level developer actions
LISTERS = IN_PROJECT | {"viewer"}  # names and metadata, never values
AUDITORS = MANAGERS | {"auditor"}
LEASE_READERS = frozenset(ROLES)  # lease:read at the vault: every role, no project binding
UNAUTHENTICATED = {
    "/api/sys/status",
    "/api/sys/health",
    "/api/sys/health/live",
    "/api/sys/health/ready",
    "/api/sys/init",
    "/api/sys/unseal",
    "/api/auth/login",
    "/api/auth/oidc",
    "/api/auth/oidc/{provider}/start",
    "/api/auth/oidc/{provider}/finish",
    "/api/auth/oidc/{provider}/device",
    "/api/auth/oidc/{provider}/device/poll",
    "/api/openapi.json",
}
OWNERS = frozenset({"owner"})
PERSONS_ONLY: frozenset[str] = frozenset()  # a person's own session: no token principal may
HOOK = "http://127.0.0.1:9/hook"  # allowed by the server's stream_allowed_networks; never delivered


def _name() -> str:
    return f"n-{uuid.uuid4().hex[:10]}"


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    project: str  # what requests are about
    other: str  # developer@other is bound to this one
    secret: str
    canary: str
    machine: str
    stream: str
    tokens: dict[str, str] = field(default_factory=dict)

    def as_(self, principal: str, project: str | None) -> Api:
        """A token for ``principal``; developer@project is bound to ``project``."""
        key = f"{principal}:{project}" if principal == "developer@project" else principal
        if key not in self.tokens:
            body: dict[str, Any] = {"vaultId": self.vault, "name": principal}
            if principal == "developer@project":
                body |= {"role": "developer", "projectId": project or self.project}
            elif principal == "developer@other":
                body |= {"role": "developer", "projectId": self.other}
            else:
                body["role"] = principal
            self.tokens[key] = self.root.ok("POST", "/api/tokens", body)["token"]
        return Api(self.server.url, self.tokens[key])

    # -- fresh objects (made by root) -----------------------------------------------------
    def new_project(self) -> str:
        return str(self.root.ok("POST", f"/api/vaults/{self.vault}/projects", {"name": _name()})["id"])

    def new_secret(self, project: str | None = None, **value: Any) -> str:
        body = {"name": _name()} | (value or {"value": "v1"})
        return str(self.root.ok("POST", f"/api/projects/{project or self.project}/secrets", body)["id"])

    def new_machine(self) -> str:
        token = self.root.ok(
            "POST",
            f"/api/vaults/{self.vault}/enrollment-tokens",
            {"projectIds": [self.project], "secretIds": []},
        )["token"]
        return Machine.enroll(self.server, self.vault, token).id


@dataclass(frozen=True)
class Req:
    path: str
    body: Any = None
    params: dict[str, Any] | None = None
    project: str | None = None  # the project the request is about (developer@project's binding)


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # the route's path template, as the app declares it
    allowed: frozenset[str]
    prepare: Callable[[World], Req]
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}{' ' + self.variant if self.variant else ''}"


def _trashed(w: World) -> Req:
    sid = w.new_secret()
    w.root.ok("DELETE", f"/api/secrets/{sid}")
    return Req(f"/api/secrets/{sid}/restore", project=w.project)


def _frozen_project(w: World) -> Req:
    project = w.new_project()
    canary = w.root.ok("POST", f"/api/projects/{project}/canaries", {"name": _name()})["id"]
    w.root.ok("GET", f"/api/secrets/{canary}")  # reading a canary freezes its project
    return Req(f"/api/projects/{project}/unfreeze", {"reason": "investigated"}, project=project)


def _membership(w: World) -> Req:
    project = w.new_project()
    w.root.ok("POST", f"/api/machines/{w.machine}/projects", {"projectId": project})
    return Req(f"/api/machines/{w.machine}/projects/{project}", project=project)


def _granted(w: World) -> Req:
    sid = w.new_secret()
    w.root.ok("POST", f"/api/machines/{w.machine}/grants", {"secretIds": [sid]})
    return Req(f"/api/machines/{w.machine}/grants/remove", {"secretIds": [sid]}, project=w.project)


def _with_policy(w: World) -> Req:
    sid = w.new_secret()
    w.root.ok("PUT", f"/api/secrets/{sid}/rotation", {"intervalSeconds": 3600})
    return Req(f"/api/secrets/{sid}/rotation", project=w.project)


def _managed(w: World) -> Req:
    sid = w.new_secret(fields={"username": "app", "password": "p"})
    admin = w.new_secret(fields={"username": "root", "password": "r"})
    body = {"provider": "postgresql", "host": "db.internal", "port": 5432, "adminSecretId": admin}
    return Req(f"/api/secrets/{sid}/managed", body, project=w.project)


# Dynamic secrets mint on the local Redis (no password; ACL users named sk_<tag>_walkdyn_...).
def _dynamic(w: World) -> str:
    req = _new_dynamic_body(w)
    return str(w.root.ok("POST", req.path, req.body)["id"])


def _lease(w: World) -> str:
    dynamic = _dynamic(w)
    body = {"projectIds": [w.project], "secretIds": [dynamic]}
    token = w.root.ok("POST", f"/api/vaults/{w.vault}/enrollment-tokens", body)["token"]
    machine = Machine.enroll(w.server, w.vault, token)
    path = f"/v1/dynamic/{dynamic}/leases"
    response = machine.request("POST", path, b"{}")
    assert response.status_code == 200, response.text
    return str(response.json()["leaseId"])


def _new_dynamic_body(w: World) -> Req:
    admin = w.new_secret(fields={"username": "default", "password": ""})
    body = {
        "name": f"walkdyn-{uuid.uuid4().hex[:6]}",
        "engine": "redis",
        "host": "127.0.0.1",
        "port": 6379,
        "adminSecret": admin,
        "grantRole": "~walk:* +get",
        "defaultTtl": 300,
        "maxTtl": 600,
    }
    return Req(f"/api/projects/{w.project}/dynamic-secrets", body, project=w.project)


DYNAMIC: list[Case] = [
    Case("POST", "/api/projects/{project}/dynamic-secrets", IN_PROJECT, _new_dynamic_body),
    Case(
        "GET",
        "/api/projects/{project}/dynamic-secrets",
        LISTERS,
        lambda w: Req(f"/api/projects/{w.project}/dynamic-secrets", project=w.project),
    ),
    Case(
        "GET",
        "/api/dynamic-secrets/{id}",
        LISTERS,
        lambda w: Req(f"/api/dynamic-secrets/{_dynamic(w)}", project=w.project),
    ),
    Case(
        "PUT",
        "/api/dynamic-secrets/{id}",
        IN_PROJECT,
        lambda w: Req(f"/api/dynamic-secrets/{_dynamic(w)}", {"defaultTtl": 120}, project=w.project),
    ),
    Case(
        "DELETE",
        "/api/dynamic-secrets/{id}",
        IN_PROJECT,
        lambda w: Req(f"/api/dynamic-secrets/{_dynamic(w)}", project=w.project),
    ),
    Case(
        "POST",
        "/api/dynamic-secrets/{id}/orphans",
        IN_PROJECT,
        lambda w: Req(f"/api/dynamic-secrets/{_dynamic(w)}/orphans", {"dryRun": True}, project=w.project),
    ),
    Case(
        "GET",
        "/api/vaults/{vault}/leases",
        LEASE_READERS,
        lambda w: Req(f"/api/vaults/{w.vault}/leases"),
    ),
    Case(
        "POST",
        "/api/vaults/{vault}/leases/revoke",
        IN_PROJECT,
        lambda w: Req(f"/api/vaults/{w.vault}/leases/revoke", {"dynamic": _dynamic(w)}, project=w.project),
    ),
    Case(
        "GET",
        "/api/leases/{id}",
        LEASE_READERS | {"developer@project"},
        lambda w: Req(f"/api/leases/{_lease(w)}", project=w.project),
    ),
    Case(
        "POST",
        "/api/leases/{id}/renew",
        IN_PROJECT,
        lambda w: Req(f"/api/leases/{_lease(w)}/renew", {"ttl": 60}, project=w.project),
    ),
    Case(
        "POST",
        "/api/leases/{id}/revoke",
        IN_PROJECT,
        lambda w: Req(f"/api/leases/{_lease(w)}/revoke", {"reason": "walk", "sync": True}, project=w.project),
    ),
    Case(
        "POST",
        "/api/leases/{id}/forget",
        IN_PROJECT,
        lambda w: Req(f"/api/leases/{_lease(w)}/forget", {"reason": "walk"}, project=w.project),
    ),
]


def _stream(w: World) -> Req:
    made = w.root.ok("POST", "/api/audit-streams", {"vaultId": w.vault, "kind": "webhook", "url": HOOK})
    return Req(f"/api/audit-streams/{made['id']}")


def _enrollment(w: World) -> Req:
    body = {"projectIds": [w.project], "secretIds": []}
    made = w.root.ok("POST", f"/api/vaults/{w.vault}/enrollment-tokens", body)
    return Req(f"/api/enrollment-tokens/{made['id']}")


def _token(w: World) -> Req:
    made = w.root.ok("POST", "/api/tokens", {"vaultId": w.vault, "name": "victim"})
    return Req(f"/api/tokens/{made['id']}")


def _user(w: World) -> str:
    body = {"name": _name(), "email": "p@example.org", "password": "correct horse battery staple"}
    return str(w.root.ok("POST", "/api/users", body)["id"])


def _binding(w: World) -> Req:
    made = w.root.ok("POST", "/api/role-bindings", {"role": "viewer", "vaultId": w.vault, "group": _name()})
    return Req(f"/api/role-bindings/{made['id']}")


ISSUER_PEM = SigningKey("EdDSA").public_pem


def _jwt_role_body() -> dict[str, Any]:
    return {
        "name": _name(),
        "issuer": "https://issuer.example",
        "publicKeys": [ISSUER_PEM],
        "boundAudiences": ["a"],
    }


def _jwt_role(w: World) -> str:
    return str(w.root.ok("POST", f"/api/vaults/{w.vault}/jwt-roles", _jwt_role_body())["id"])


JWT_ROLES: list[Case] = [
    Case(
        "POST",
        "/api/vaults/{vault}/jwt-roles",
        MANAGERS,
        lambda w: Req(f"/api/vaults/{w.vault}/jwt-roles", _jwt_role_body()),
    ),
    Case("GET", "/api/vaults/{vault}/jwt-roles", MANAGERS, lambda w: Req(f"/api/vaults/{w.vault}/jwt-roles")),
    Case("GET", "/api/jwt-roles/{role}", MANAGERS, lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}")),
    Case(
        "PUT",
        "/api/jwt-roles/{role}",
        MANAGERS,
        lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}", {"boundSubject": "repo:acme/*"}),
    ),
    Case("DELETE", "/api/jwt-roles/{role}", MANAGERS, lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}")),
    Case(
        "POST",
        "/api/jwt-roles/{role}/disable",
        MANAGERS,
        lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}/disable"),
    ),
    Case(
        "POST",
        "/api/jwt-roles/{role}/enable",
        MANAGERS,
        lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}/enable"),
    ),
    Case(
        "POST",
        "/api/jwt-roles/{role}/test",
        MANAGERS,
        lambda w: Req(f"/api/jwt-roles/{_jwt_role(w)}/test", {"jwt": "not-a-jwt"}),
    ),
]

PEOPLE: list[Case] = [
    Case("GET", "/api/auth/whoami", EVERYONE, lambda w: Req("/api/auth/whoami")),
    Case("POST", "/api/auth/logout", PERSONS_ONLY, lambda w: Req("/api/auth/logout")),
    Case("POST", "/api/users/me/totp", PERSONS_ONLY, lambda w: Req("/api/users/me/totp")),
    Case(
        "POST",
        "/api/users/me/totp/confirm",
        PERSONS_ONLY,
        lambda w: Req("/api/users/me/totp/confirm", {"code": "123456"}),
    ),
    Case(
        "POST",
        "/api/users/me/tokens",
        PERSONS_ONLY,
        lambda w: Req("/api/users/me/tokens", {"name": "ci", "ttlSeconds": 3600}),
    ),
    Case(
        "POST",
        "/api/users",
        ROOT_ONLY,
        lambda w: Req(
            "/api/users", {"name": _name(), "email": "n@example.org", "password": "a b c d e f g h"}
        ),
    ),
    Case("GET", "/api/users", ROOT_ONLY, lambda w: Req("/api/users")),
    Case("GET", "/api/users/{user}", ROOT_ONLY, lambda w: Req(f"/api/users/{_user(w)}")),
    Case("DELETE", "/api/users/{user}", ROOT_ONLY, lambda w: Req(f"/api/users/{_user(w)}")),
    Case("POST", "/api/users/{user}/{change}", ROOT_ONLY, lambda w: Req(f"/api/users/{_user(w)}/disable")),
    Case(
        "PUT",
        "/api/vaults/{vault}/mfa",
        OWNERS,
        lambda w: Req(f"/api/vaults/{w.vault}/mfa", {"required": False}),
    ),
    Case(
        "POST",
        "/api/role-bindings",
        OWNERS,
        lambda w: Req("/api/role-bindings", {"role": "viewer", "vaultId": w.vault, "group": _name()}),
    ),
    Case(
        "POST",
        "/api/role-bindings",
        OWNERS,
        lambda w: Req("/api/role-bindings", {"role": "viewer", "projectId": w.project, "group": _name()}),
        "at a project",
    ),
    Case("GET", "/api/role-bindings", OWNERS, lambda w: Req("/api/role-bindings", params={"vault": w.vault})),
    Case("DELETE", "/api/role-bindings/{binding}", OWNERS, _binding),
]

C = Case
# Destructive server-wide calls come last (a wrongly allowed seal would stop the walk).
CASES: list[Case] = [
    # vaults and projects
    C("POST", "/api/vaults", ROOT_ONLY, lambda w: Req("/api/vaults", {"name": _name()})),
    C("GET", "/api/vaults", EVERYONE, lambda w: Req("/api/vaults")),
    C(
        "POST",
        "/api/vaults/{vault}/projects",
        MANAGERS,
        lambda w: Req(f"/api/vaults/{w.vault}/projects", {"name": _name()}),
    ),
    C("GET", "/api/vaults/{vault}/projects", EVERYONE, lambda w: Req(f"/api/vaults/{w.vault}/projects")),
    C(
        "DELETE",
        "/api/projects/{project}",
        MANAGERS,
        lambda w: (lambda p: Req(f"/api/projects/{p}", project=p))(w.new_project()),
    ),
    # secrets
    C(
        "POST",
        "/api/projects/{project}/secrets",
        IN_PROJECT,
        lambda w: Req(
            f"/api/projects/{w.project}/secrets", {"name": _name(), "value": "x"}, project=w.project
        ),
    ),
    C(
        "GET",
        "/api/projects/{project}/secrets",
        LISTERS,
        lambda w: Req(f"/api/projects/{w.project}/secrets", project=w.project),
    ),
    C(
        "GET",
        "/api/secrets/{secret}",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}", project=w.project),
    ),
    C(
        "PUT",
        "/api/secrets/{secret}",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}", {"value": "v2"}, project=w.project),
    ),
    C(
        "DELETE",
        "/api/secrets/{secret}",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.new_secret()}", project=w.project),
    ),
    C(
        "GET",
        "/api/secrets/{secret}/versions",
        LISTERS,
        lambda w: Req(f"/api/secrets/{w.secret}/versions", project=w.project),
    ),
    C(
        "POST",
        "/api/secrets/{secret}/rollback",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}/rollback", {"version": 1}, project=w.project),
    ),
    C("POST", "/api/secrets/{secret}/restore", IN_PROJECT, _trashed),
    # admin tokens: root only (listing: whoever may see the vault's tokens)
    C(
        "POST",
        "/api/tokens",
        ROOT_ONLY,
        lambda w: Req("/api/tokens", {"vaultId": w.vault, "role": "viewer"}),
    ),
    C("GET", "/api/tokens", MANAGERS, lambda w: Req("/api/tokens")),
    C("DELETE", "/api/tokens/{token}", ROOT_ONLY, _token),
    # audit
    C("GET", "/api/audit/public-key", EVERYONE, lambda w: Req("/api/audit/public-key")),
    C("GET", "/api/audit/{chain}", AUDITORS, lambda w: Req(f"/api/audit/{w.vault}")),
    C("GET", "/api/audit/{chain}", ROOT_ONLY, lambda w: Req("/api/audit/system"), "system chain"),
    C("GET", "/api/audit/{chain}/export", AUDITORS, lambda w: Req(f"/api/audit/{w.vault}/export")),
    C(
        "GET",
        "/api/audit/{chain}/export",
        ROOT_ONLY,
        lambda w: Req("/api/audit/system/export"),
        "system chain",
    ),
    C("GET", "/api/audit/{chain}/checkpoints", AUDITORS, lambda w: Req(f"/api/audit/{w.vault}/checkpoints")),
    C(
        "GET",
        "/api/audit/{chain}/proof/inclusion",
        AUDITORS,
        lambda w: Req(f"/api/audit/{w.vault}/proof/inclusion", params={"seq": 1, "treeSize": 2}),
    ),
    C(
        "GET",
        "/api/audit/{chain}/proof/consistency",
        AUDITORS,
        lambda w: Req(f"/api/audit/{w.vault}/proof/consistency", params={"first": 1, "second": 2}),
    ),
    # audit streams
    C(
        "POST",
        "/api/audit-streams",
        MANAGERS,
        lambda w: Req("/api/audit-streams", {"vaultId": w.vault, "kind": "webhook", "url": HOOK}),
    ),
    C(
        "POST",
        "/api/audit-streams",
        ROOT_ONLY,
        lambda w: Req(
            "/api/audit-streams", {"vaultId": w.vault, "kind": "jsonl", "path": f"{_name()}.jsonl"}
        ),
        "file stream",
    ),
    C(
        "POST",
        "/api/audit-streams",
        ROOT_ONLY,
        lambda w: Req("/api/audit-streams", {"kind": "webhook", "url": HOOK}),
        "every vault",
    ),
    C("GET", "/api/audit-streams", MANAGERS, lambda w: Req("/api/audit-streams", params={"vault": w.vault})),
    C("DELETE", "/api/audit-streams/{stream}", MANAGERS, _stream),
    C(
        "GET",
        "/api/audit-streams/{stream}/deliveries",
        MANAGERS,
        lambda w: Req(f"/api/audit-streams/{w.stream}/deliveries"),
    ),
    # canaries
    C(
        "POST",
        "/api/projects/{project}/canaries",
        MANAGERS,
        lambda w: Req(f"/api/projects/{w.project}/canaries", {"name": _name()}, project=w.project),
    ),
    C("POST", "/api/projects/{project}/unfreeze", MANAGERS, _frozen_project),
    C("GET", "/api/vaults/{vault}/canaries", MANAGERS, lambda w: Req(f"/api/vaults/{w.vault}/canaries")),
    C(
        "GET",
        "/api/canaries/{secret}",
        MANAGERS,
        lambda w: Req(f"/api/canaries/{w.canary}", project=w.project),
    ),
    C(
        "POST",
        "/api/canaries/{secret}/disable",
        MANAGERS,
        lambda w: Req(f"/api/canaries/{w.canary}/disable", project=w.project),
    ),
    C(
        "POST",
        "/api/canaries/{secret}/enable",
        MANAGERS,
        lambda w: Req(f"/api/canaries/{w.canary}/enable", project=w.project),
    ),
    # machines: vault-level, except membership and grants (per project)
    C("GET", "/api/vaults/{vault}/machines", DEVELOPERS, lambda w: Req(f"/api/vaults/{w.vault}/machines")),
    C(
        "POST",
        "/api/machines/{machine}/rename",
        DEVELOPERS,
        lambda w: Req(f"/api/machines/{w.machine}/rename", {"name": _name()}),
    ),
    C(
        "POST",
        "/api/machines/{machine}/projects",
        IN_PROJECT,
        lambda w: (lambda p: Req(f"/api/machines/{w.machine}/projects", {"projectId": p}, project=p))(
            w.new_project()
        ),
    ),
    C("DELETE", "/api/machines/{machine}/projects/{project}", IN_PROJECT, _membership),
    C(
        "POST",
        "/api/machines/{machine}/grants",
        IN_PROJECT,
        lambda w: Req(
            f"/api/machines/{w.machine}/grants", {"secretIds": [w.new_secret()]}, project=w.project
        ),
    ),
    C(
        "GET",
        "/api/machines/{machine}/grants",
        DEVELOPERS,
        lambda w: Req(f"/api/machines/{w.machine}/grants"),
    ),
    C("POST", "/api/machines/{machine}/grants/remove", IN_PROJECT, _granted),
    *[
        C(
            "POST",
            "/api/machines/{machine}/{change:str}",
            DEVELOPERS,
            lambda w, change=change: Req(f"/api/machines/{w.machine}/{change}"),
            change,
        )
        for change in ("disable", "enable", "approve")
    ],
    C(
        "POST",
        "/api/machines/{machine}/{change:str}",
        DEVELOPERS,
        lambda w: Req(f"/api/machines/{w.new_machine()}/revoke"),
        "revoke",
    ),
    C(
        "GET",
        "/api/secrets/{secret}/grants",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}/grants", project=w.project),
    ),
    C(
        "POST",
        "/api/vaults/{vault}/enrollment-tokens",
        DEVELOPERS,
        lambda w: Req(
            f"/api/vaults/{w.vault}/enrollment-tokens", {"projectIds": [w.project], "secretIds": [w.secret]}
        ),
    ),
    C(
        "GET",
        "/api/vaults/{vault}/enrollment-tokens",
        DEVELOPERS,
        lambda w: Req(f"/api/vaults/{w.vault}/enrollment-tokens"),
    ),
    C("DELETE", "/api/enrollment-tokens/{token}", DEVELOPERS, _enrollment),
    # rotation
    C(
        "PUT",
        "/api/secrets/{secret}/rotation",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}/rotation", {"intervalSeconds": 3600}, project=w.project),
    ),
    C(
        "GET",
        "/api/secrets/{secret}/rotation",
        LISTERS,
        lambda w: Req(f"/api/secrets/{w.secret}/rotation", project=w.project),
    ),
    C(
        "POST",
        "/api/secrets/{secret}/rotate",
        IN_PROJECT,
        lambda w: Req(f"/api/secrets/{w.secret}/rotate", project=w.project),
    ),
    C("DELETE", "/api/secrets/{secret}/rotation", IN_PROJECT, _with_policy),
    C("PUT", "/api/secrets/{secret}/managed", IN_PROJECT, _managed),
    *DYNAMIC,
    # server-wide, root only; seal last
    C(
        "POST",
        "/api/sys/rotate-keys",
        ROOT_ONLY,
        lambda w: Req("/api/sys/rotate-keys", {"projectId": w.project}),
    ),
    *PEOPLE,
    *JWT_ROLES,
    C("POST", "/api/sys/backup", ROOT_ONLY, lambda w: Req("/api/sys/backup")),
    C("POST", "/api/sys/seal", ROOT_ONLY, lambda w: Req("/api/sys/seal")),
]


def _router(app: Any) -> Starlette:
    """The Starlette router inside the middleware stack of ``create_app``."""
    while not isinstance(app, Starlette):
        app = app.app
    return app


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path template) of every authenticated route the app serves under /api."""
    services = bootstrap(Settings(database=f"sqlite:///{tmp_path / 'routes.db'}", data_dir=tmp_path))
    try:
        router = _router(create_app(services))
    finally:
        services.close()
    found = set()
    for route in router.routes:
        path = getattr(route, "path", "")
        if path.startswith("/api/") and path not in UNAUTHENTICATED:
            found |= {(m, path) for m in getattr(route, "methods", None) or () if m != "HEAD"}
    return found


def test_every_admin_route_is_in_the_table(tmp_path: Path) -> None:
    """A new route fails here until someone decides who may call it."""
    table = {(c.method, c.route) for c in CASES}
    served = app_routes(tmp_path)
    assert served - table == set(), "routes with no decision in CASES"
    assert table - served == set(), "CASES names routes the app does not serve"


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One vault with a target project, another project, a secret, a canary, a machine
    and a stream, on each store in turn."""
    directory = tmp_path_factory.mktemp("permissions")
    server = Server(
        module_database_url,
        directory / "data",
        env={
            "SIKKER_STREAM_ALLOWED_NETWORKS": "127.0.0.0/8",
            "SIKKER_DYNAMIC_ALLOWED_NETWORKS": "127.0.0.0/8",
        },
    ).start()
    try:
        _, token = init_and_unseal(server.url, 1, 1)
        root = Api(server.url, token)
        vault = root.ok("POST", "/api/vaults", {"name": "walk"})["id"]
        project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "target"})["id"]
        other = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "other"})["id"]
        secret = root.ok("POST", f"/api/projects/{project}/secrets", {"name": "S", "value": "v1"})["id"]
        canary = root.ok("POST", f"/api/projects/{project}/canaries", {"name": "C"})["id"]
        stream = root.ok("POST", "/api/audit-streams", {"vaultId": vault, "kind": "webhook", "url": HOOK})[
            "id"
        ]
        w = World(server, root, vault, project, other, secret, canary, "", stream)
        w.machine = w.new_machine()
        yield w
    finally:
        server.stop()
        _drop_walk_users()


def _drop_walk_users() -> None:
    """The walk's leases minted ACL users on the local Redis; forgotten ones stay: drop them."""
    import redis

    try:
        client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=3)
        for name in client.acl_users():
            text = name.decode() if isinstance(name, bytes) else str(name)
            if text.startswith("sk_") and "_walkdyn_" in text:
                client.acl_deluser(text)
        client.close()
    except redis.RedisError:
        pass


def test_tokens_carry_their_role_and_project(world: World) -> None:
    body = {"vaultId": world.vault, "role": "viewer", "projectId": world.project, "name": "ro"}
    made = world.root.ok("POST", "/api/tokens", body)
    assert (made["role"], made["projectId"], made["vaultId"]) == ("viewer", world.project, world.vault)
    listed = {t["id"]: t for t in world.root.ok("GET", "/api/tokens")["tokens"]}
    assert listed[made["id"]]["role"] == "viewer" and "token" not in listed[made["id"]]
    owner_sees = {t["id"] for t in world.as_("owner", None).ok("GET", "/api/tokens")["tokens"]}
    assert made["id"] in owner_sees


@pytest.mark.parametrize(
    ("extra", "status", "message"),
    [
        ({"role": "superuser"}, 400, "role must be one of"),
        ({"projectId": "proj_0123456789abcdef"}, 404, "not found"),
        ({"projectId": "nope"}, 400, "malformed project id"),
    ],
)
def test_token_roles_and_projects_are_checked(
    world: World, extra: dict[str, str], status: int, message: str
) -> None:
    got, body = world.root.call("POST", "/api/tokens", {"vaultId": world.vault} | extra)
    assert got == status and message in body["error"], body


def test_a_project_token_sees_its_project_only_and_dies_with_it(world: World) -> None:
    project = world.new_project()
    api = world.as_("developer@project", project)
    names = {p["id"] for p in api.ok("GET", f"/api/vaults/{world.vault}/projects")["projects"]}
    assert names == {project}
    assert [v["id"] for v in api.ok("GET", "/api/vaults")["vaults"]] == [world.vault]
    assert api.call("GET", f"/api/projects/{world.project}/secrets")[0] == 404
    world.root.ok("DELETE", f"/api/projects/{project}")
    assert api.call("GET", "/api/vaults")[0] == 401  # never widened to the vault


def test_a_denial_names_the_role_and_the_action(world: World) -> None:
    status, body = world.as_("viewer", None).call("GET", f"/api/secrets/{world.secret}")
    assert status == 403 and body["error"] == "role viewer may not secret:read"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_each_role_may_call_exactly_the_routes_its_role_allows(world: World, case: Case) -> None:
    wrong = []
    for principal in PRINCIPALS:
        req = case.prepare(world)
        api = world.as_(principal, req.project)
        response = api.raw(case.method, req.path, json=req.body, params=req.params)
        status, body = response.status_code, response.text[:300]
        allowed = principal in case.allowed
        if (allowed and not 200 <= status < 300) or (not allowed and status not in (403, 404)):
            wrong.append(f"{principal}: {'allowed' if allowed else 'denied'} but got {status} {body}")
    assert not wrong, "\n".join(wrong)
