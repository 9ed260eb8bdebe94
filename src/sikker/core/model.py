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
    frozen_ms: int | None = None
    frozen_by: str | None = None


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


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    vault_id: str
    name: str
    public_key: bytes
    kind: str  # "standard" | "ephemeral"
    approved: bool
    enabled: bool
    hostname: str
    allowed_cidr: str | None
    enrollment_token_id: str | None
    created_ms: int
    expires_ms: int | None
    revoked_ms: int | None
    last_poll_ms: int | None


@dataclass(frozen=True, slots=True)
class EnrollmentToken:
    id: str
    vault_id: str
    name: str
    project_ids: tuple[str, ...]
    secret_ids: tuple[str, ...]
    max_uses: int
    uses: int
    approval: str  # "auto" | "manual"
    machine_ttl_s: int | None
    hostname_pattern: str | None
    name_pattern: str | None
    source_cidr: str | None
    created_ms: int
    expires_ms: int
    revoked_ms: int | None


@dataclass(frozen=True, slots=True)
class GrantedSecret:
    """A secret a machine may read, with what the machine plane shows of it."""

    id: str
    name: str
    project_id: str
    project_name: str
    kind: str
    current_version: int
    field_names: str | None
