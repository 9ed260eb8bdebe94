"""Workload identity in tests: issuers with real keys, and tokens shaped like the ones GitHub
Actions and Kubernetes hand their workloads (documented claim sets), signed in the test.

GitHub Actions' OIDC token: https://docs.github.com/en/actions/security-for-github-actions/
security-hardening-your-deployments/about-security-hardening-with-openid-connect
Kubernetes projected service-account token: ``kubernetes.io`` claim with namespace, pod and
serviceaccount (no jti).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
KUBERNETES_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass
class SigningKey:
    """A private key of an issuer, with its kid and JWT algorithm."""

    alg: str  # RS256 | ES256 | EdDSA
    kid: str | None = field(default_factory=lambda: uuid.uuid4().hex[:16])
    private: Any = None

    def __post_init__(self) -> None:
        if self.private is None:
            self.private = {
                "RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
                "EdDSA": ed25519.Ed25519PrivateKey.generate,
            }[self.alg]()

    @property
    def public_pem(self) -> str:
        return str(
            self.private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self) -> dict[str, Any]:
        """The public JWK, as an issuer's JWKS publishes it."""
        algorithm = jwt.get_algorithm_by_name(self.alg)
        found: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        found |= {"use": "sig", "alg": self.alg}
        if self.kid is not None:
            found["kid"] = self.kid
        return found

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        headers = ({"kid": self.kid} if self.kid is not None else {}) | header
        return jwt.encode(claims, self.private, algorithm=self.alg, headers=headers)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


def github_claims(
    audience: str = "sikker", repo: str = "acme/api", now: float | None = None, **extra: Any
) -> dict[str, Any]:
    """Claims of a GitHub Actions job's OIDC token (push to main, environment production)."""
    now = time.time() if now is None else now
    owner = repo.split("/")[0]
    claims = {
        "jti": str(uuid.uuid4()),
        "sub": f"repo:{repo}:ref:refs/heads/main",
        "aud": audience,
        "ref": "refs/heads/main",
        "sha": "e5ab8a3a0b3c6c0d6c9bd7f4d7b0c2a1f5e6d7c8",
        "repository": repo,
        "repository_owner": owner,
        "repository_owner_id": "4242",
        "repository_id": "8484",
        "repository_visibility": "private",
        "run_id": "7123456789",
        "run_number": "42",
        "run_attempt": "1",
        "actor": "octocat",
        "actor_id": "583231",
        "workflow": "deploy",
        "workflow_ref": f"{repo}/.github/workflows/deploy.yml@refs/heads/main",
        "job_workflow_ref": f"{repo}/.github/workflows/deploy.yml@refs/heads/main",
        "event_name": "push",
        "ref_type": "branch",
        "environment": "production",
        "runner_environment": "github-hosted",
        "iss": GITHUB_ISSUER,
        "nbf": int(now) - 5,
        "iat": int(now) - 5,
        "exp": int(now) + 300,
    }
    return claims | extra


def kubernetes_claims(
    audience: str = "sikker",
    namespace: str = "payments",
    account: str = "api",
    now: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Claims of a projected service-account token (bound to a pod; no jti)."""
    now = time.time() if now is None else now
    claims = {
        "aud": [audience],
        "exp": int(now) + 600,
        "iat": int(now) - 5,
        "nbf": int(now) - 5,
        "iss": KUBERNETES_ISSUER,
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": str(uuid.uuid4())},
            "pod": {"name": f"{account}-7d9f8c-x2x4z", "uid": str(uuid.uuid4())},
            "serviceaccount": {"name": account, "uid": "0c9a2f3e-8d1b-4f5a-9c6e-2b7d4e1f0a3c"},
        },
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }
    return claims | extra


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """An ``alg: none`` token."""

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'} | header)}.{b64(claims)}."


def hmac_with_public_key(key: SigningKey, claims: dict[str, Any]) -> str:
    """The classic confusion attack: HS256 with the issuer's PUBLIC key (PEM) as the secret."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(key.public_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"
