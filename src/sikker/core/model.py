"""Domain objects handed between layers (frozen, slotted; never database rows)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SealConfig:
    kind: str  # "shamir" | "keyfile"
    shares: int
    threshold: int
    wrapped_root_key: bytes


@dataclass(frozen=True, slots=True)
class Vault:
    id: str
    name: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    vault_id: str
    name: str
    key_version: int
    created_ms: int


@dataclass(frozen=True, slots=True)
class Secret:
    id: str
    vault_id: str
    project_id: str
    name: str
    kind: str  # "standard" | "structured"
    current_version: int
    created_ms: int
    updated_ms: int
    deleted_ms: int | None


@dataclass(frozen=True, slots=True)
class VersionInfo:
    version: int
    created_ms: int
    created_by: str
    field_names: str | None


@dataclass(frozen=True, slots=True)
class Token:
    id: str
    kind: str  # "root" | "admin"
    vault_id: str | None
    name: str
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated admin-plane caller."""

    kind: str  # "root" | "admin"
    token_id: str
    vault_id: str | None  # None: every vault (root)

    def can_access(self, vault_id: str) -> bool:
        return self.vault_id is None or self.vault_id == vault_id
