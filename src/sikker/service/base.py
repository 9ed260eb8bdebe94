"""What every use case needs: the store, the keyring, the clock and the settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sikker.config import Settings
from sikker.core import permissions
from sikker.core.model import Principal, Project
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.crypto.keyring import Keyring
from sikker.errors import NotFound, StoreUnavailable
from sikker.storage import secrets as secret_store
from sikker.storage import vaults as vault_store
from sikker.storage.database import Connection, Database

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class Deps:
    db: Database
    keyring: Keyring
    settings: Settings
    clock: Clock = wall_clock_ms


def require(
    principal: Principal,
    action: str,
    vault_id: str | None,
    project_id: str | None = None,
    *,
    missing: str = "not found",
) -> None:
    """Raise what ``permissions.decide`` answers, if anything: the one check of every admin use case."""
    problem = permissions.decide(principal, action, vault_id, project_id, missing=missing)
    if problem is not None:
        raise problem


def project_key(deps: Deps, conn: Connection, project: Project, version: int) -> bytes:
    """Unwrap (through the keyring's cache) one version of a project's key."""
    wrapped = vault_store.get_project_key(conn, project.id, version)
    if wrapped is None:
        raise StoreUnavailable(f"project key version {version} is missing from the store")
    return deps.keyring.project_key(project.vault_id, project.id, version, wrapped)


def open_version(deps: Deps, conn: Connection, project: Project, secret_id: str, version: int) -> bytes:
    """Decrypt one stored version of a secret of ``project``; NotFound if it does not exist."""
    found = secret_store.get_sealed(conn, secret_id, version)
    if found is None:
        raise NotFound(f"secret {secret_id} has no version {version}")
    sealed, _ = found
    key = project_key(deps, conn, project, sealed.key_version)
    return envelope.open_value(key, Binding(project.vault_id, project.id, secret_id, version), sealed)
