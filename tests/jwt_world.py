"""Workload identity test world: a loopback issuer (pytest-httpserver) serving JWKS, discovery
documents and a Kubernetes TokenReview endpoint, and a Sikker server (a second node on
PostgreSQL) allowed to fetch from loopback. Test modules wrap ``serve_issuers`` and
``start_world`` in module-scoped fixtures."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.support import Api, Machine, Server, init_and_unseal
from tests.workload import (
    GITHUB_ISSUER,
    SigningKey,
    jwks,
)

QUIET = {
    "SIKKER_JWKS_ALLOWED_NETWORKS": "127.0.0.1/32",
    "SIKKER_JWKS_TIMEOUT_SECONDS": "1",
    "SIKKER_AUTH_LOCKOUT_FAILURES": "100000",  # the matrix below refuses many logins from 127.0.0.1
    "SIKKER_JWT_LOGIN_ATTEMPTS_PER_MINUTE": "100000",
}
LOGIN_KEYS = {"machineId", "machineName", "vaultId", "expiresAt", "apiUrl"}


@dataclass
class Issuers:
    """What the loopback issuer serves; tests change it while the server runs."""

    http: HTTPServer
    documents: dict[str, Any] = field(default_factory=dict)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return self.http.url_for(path)

    def serve(self, path: str, document: Any) -> str:
        self.documents[path] = document
        return self.url(path)


@dataclass
class World:
    server: Server
    root: Api
    vault: str
    project: str
    secret: str
    issuers: Issuers
    reviewer_token: Path
    nodes: list[Server]
    gh: SigningKey = field(default_factory=lambda: SigningKey("RS256"))

    def new_vault(self) -> tuple[str, str, str]:
        vault = self.root.ok("POST", "/api/vaults", {"name": f"v-{uuid.uuid4().hex[:6]}"})["id"]
        project = self.root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "p"})["id"]
        secret = self.root.ok("POST", f"/api/projects/{project}/secrets", {"name": "DB", "value": "s3cret"})[
            "id"
        ]
        return vault, project, secret

    def role(self, vault: str | None = None, **spec: Any) -> dict[str, Any]:
        body = {
            "name": f"r-{uuid.uuid4().hex[:8]}",
            "issuer": GITHUB_ISSUER,
            "jwksUrl": self.issuers.url("/gh/jwks"),
            "boundAudiences": ["sikker"],
            "projects": [self.project],
            "secrets": [self.secret],
        } | spec
        return dict(self.root.ok("POST", f"/api/vaults/{vault or self.vault}/jwt-roles", body))

    def login(self, role: str, token: str, vault: str | None = None, **extra: Any) -> tuple[int, Any, Any]:
        """(status, body, private key) of a login."""
        key = Ed25519PrivateKey.generate()
        public = base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
        body = {"role": role, "jwt": token, "publicKey": public, "hostname": "runner-1"} | extra
        response = httpx.post(
            f"{self.server.url}/v1/{vault or self.vault}/auth/jwt/login", json=body, timeout=30
        )
        return response.status_code, response.json(), key

    def machine(self, answer: dict[str, Any], key: Any, node: Server | None = None) -> Machine:
        return Machine((node or self.server).url, answer["machineId"], key)

    def last_login_record(self, chain: str | None = None) -> dict[str, Any]:
        found = self.root.ok(
            "GET", f"/api/audit/{chain or self.vault}", params={"action": "machine:jwt:login", "limit": 1}
        )["records"]
        return dict(found[0])


@contextmanager
def serve_issuers() -> Iterator[Issuers]:
    """The loopback issuer: documents by path (GET), a JWKS that hangs until released, and a
    TokenReview endpoint that records what it was sent."""
    http = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    http.start()
    state = Issuers(http)

    def document(request: Request) -> Response:
        found = state.documents.get(request.path)
        if found is None:
            return Response("not found", status=404)
        return Response(json.dumps(found), content_type="application/json")

    def hang(_request: Request) -> Response:
        state.entered.set()
        state.release.wait(20)
        return Response(json.dumps({"keys": []}), content_type="application/json")

    def review(request: Request) -> Response:
        body = request.get_json()
        state.reviews.append({"authorization": request.headers.get("Authorization"), "body": body})
        token = body["spec"]["token"]
        status = {"authenticated": token not in state.revoked, "audiences": body["spec"]["audiences"]}
        return Response(
            json.dumps({"kind": "TokenReview", "status": status}), content_type="application/json"
        )

    # Handlers match in the order they were added: the catch-all document server goes last.
    http.expect_request("/slow/jwks").respond_with_handler(hang)
    http.expect_request("/apis/authentication.k8s.io/v1/tokenreviews", method="POST").respond_with_handler(
        review
    )
    http.expect_request(re.compile(r"/.*"), method="GET").respond_with_handler(document)
    try:
        yield state
    finally:
        state.release.set()
        http.clear()
        http.stop()


@contextmanager
def start_world(database_url: str, directory: Path, issuers: Issuers) -> Iterator[World]:
    """A server allowed to fetch keys from loopback, with two TokenReview clusters configured
    ("test": a reviewer token file; "self": the presented token is its own bearer)."""
    reviewer = directory / "reviewer-token"
    reviewer.write_text("reviewer-1\n")
    config = directory / "sikker.toml"
    config.write_text(
        f'[kubernetes_clusters.test]\napi_url = "{issuers.url("")}"\ntoken_file = "{reviewer}"\n'
        f'[kubernetes_clusters.self]\napi_url = "{issuers.url("")}"\n'
    )
    extra = ["--config", str(config)]
    server = Server(database_url, directory / "node1", extra, QUIET).start()
    nodes = [server]
    try:
        shares, token = init_and_unseal(server.url, 1, 1)
        if database_url.startswith("postgresql"):
            second = Server(database_url, directory / "node2", extra, QUIET).start()
            nodes.append(second)
            Api(second.url).ok("POST", "/api/sys/unseal", {"share": shares[0]})
        root = Api(server.url, token)
        w = World(server, root, "", "", "", issuers, reviewer, nodes)
        w.vault, w.project, w.secret = w.new_vault()
        issuers.serve("/gh/jwks", jwks(w.gh))
        yield w
    finally:
        for node in nodes:
            node.stop()
