"""The anonymous JWT login cannot be used to flood: a per-address budget of attempts
(``jwt_login_attempts_per_minute``) and the shared authentication-failure throttle
(``auth_lockout_failures``) answer 429 before any key is fetched or any row is written."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sikker.config import Settings
from sikker.core import audit
from sikker.core.model import Filters, Principal
from sikker.errors import RateLimited, Unauthenticated
from sikker.service.bootstrap import Services, bootstrap
from tests.workload import SigningKey, github_claims

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")
PUBLIC = base64.b64encode(
    Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
)


def _services(tmp_path: Path, **settings: int) -> Services:
    services = bootstrap(Settings(database=f"sqlite:///{tmp_path / 's.db'}", data_dir=tmp_path, **settings))
    services.deps.db.migrate()
    shares = services.seal.init(1, 1, ACTOR).shares
    services.seal.submit_share(shares[0], ACTOR)
    return services


@pytest.fixture
def budgeted(tmp_path: Path) -> Iterator[tuple[Services, str]]:
    services = _services(tmp_path, jwt_login_attempts_per_minute=3, auth_lockout_failures=1000)
    vault = services.vaults.create_vault(ROOT, ACTOR, "v").id
    yield services, vault
    services.close()


def _login(services: Services, vault: str, token: str, ip: str = "192.0.2.7") -> None:
    services.jwt.login(vault, "ci", token, PUBLIC.decode(), "host", None, ip, "pytest")


def test_an_address_gets_its_budget_of_attempts_then_429(budgeted: tuple[Services, str]) -> None:
    services, vault = budgeted
    token = SigningKey("RS256").sign(github_claims())
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            _login(services, vault, token)
    with pytest.raises(RateLimited):
        _login(services, vault, token)
    with pytest.raises(Unauthenticated):  # another address has its own budget
        _login(services, vault, token, ip="192.0.2.8")


def test_refused_logins_count_as_authentication_failures(tmp_path: Path) -> None:
    services = _services(tmp_path, jwt_login_attempts_per_minute=1000, auth_lockout_failures=2)
    try:
        vault = services.vaults.create_vault(ROOT, ACTOR, "v").id
        for _ in range(2):
            with pytest.raises(Unauthenticated):
                _login(services, vault, "garbage")
        with pytest.raises(RateLimited):
            _login(services, vault, "garbage")
        records = services.audit.query(ROOT, "system", Filters(), None, 10)
        assert "machine:auth:lockout" in {r.entry.action for r in records}
    finally:
        services.close()
