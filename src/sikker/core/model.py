"""Domain objects handed between layers (frozen, slotted; never database rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    role: str = "admin"  # an admin token's role (core/permissions.py); unused for root
    project_id: str | None = None  # an admin token bound to one project of its vault


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """A role held at a vault, or at one project of it (``project_id``)."""

    role: str  # owner | admin | developer | viewer | auditor (core/permissions.py)
    vault_id: str
    project_id: str | None = None  # None: the whole vault


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated admin-plane caller: the root token, an admin token, or a person."""

    kind: str  # "root" | "admin" (an admin token) | "user" (a person's session or token)
    token_id: str  # the token's or session's id
    vault_id: str | None  # None: every vault (root); an admin token's vault
    bindings: tuple[RoleBinding, ...] = ()  # what it may do where (root: everything)
    user_id: str | None = None  # a person's
    name: str | None = None  # a person's user name
    ceiling: str | None = None  # a personal token limited to what this role may do, too

    def __post_init__(self) -> None:
        # An admin token made without bindings is what it was before roles: admin of its vault.
        if self.kind == "admin" and self.vault_id is not None and not self.bindings:
            object.__setattr__(self, "bindings", (RoleBinding("admin", self.vault_id),))


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
    jwt_role_id: str | None = None  # the JWT role that created it (revoked with the role)


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
class JwtRole:
    """Workloads whose platform-issued JWT passes these bindings enroll as ephemeral machines
    (core/jwt_roles.py decides; service/jwt_login.py fetches keys and enrolls)."""

    id: str
    vault_id: str
    name: str
    issuer: str
    discovery_url: str | None
    jwks_url: str | None
    public_keys: tuple[str, ...] | None  # PEM
    bound_audiences: tuple[str, ...]
    bound_subject: str | None  # exact, or a glob with * and ?
    bound_claims: dict[str, tuple[str, ...]] | None  # claim path -> any of these values
    name_claim: str | None  # None: "sub"
    project_ids: tuple[str, ...]
    secret_ids: tuple[str, ...]
    machine_ttl_s: int
    source_cidrs: tuple[str, ...] | None
    kubernetes_mode: str | None  # "jwks" | "tokenreview"
    kubernetes_cluster: str | None  # a [kubernetes_clusters.NAME] of the server's config
    enabled: bool
    created_ms: int
    updated_ms: int

    @property
    def key_source(self) -> tuple[object, ...]:
        """Where the keys come from: a cache filled from another source is dropped."""
        return (self.discovery_url, self.jwks_url, self.public_keys)


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


@dataclass(frozen=True, slots=True)
class Sealed:
    """A secret version at rest: the value ciphertext and its wrapped data key."""

    ciphertext: bytes
    wrapped_dek: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class Canary:
    secret_id: str
    looks_like: str
    enabled: bool
    freeze_related: bool
    related_project_ids: list[str]
    created_ms: int


@dataclass(frozen=True, slots=True)
class Trip:
    secret_id: str
    project_id: str
    actor_kind: str
    actor_id: str
    source_ip: str
    time_ms: int
    frozen_projects: list[str]


@dataclass(frozen=True, slots=True)
class Policy:
    secret_id: str
    interval_s: int | None
    cron: str | None
    length: int
    charset: str
    fields: list[str] | None
    enabled: bool
    next_due_ms: int
    last_rotated_ms: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Managed:
    secret_id: str
    provider: str
    host: str
    port: int
    database: str
    admin_secret_id: str
    strategy: str
    base_username: str
    alt_username: str | None
    grace_s: int
    previous_username: str | None
    disable_previous_at_ms: int | None
    agent_status: str | None
    agent_error: str | None
    agent_seen_ms: int | None


@dataclass(frozen=True, slots=True)
class Rotation:
    id: str
    secret_id: str
    status: str
    trigger: str
    sealed: Sealed | None
    version: int | None
    error: str | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class AuditStream:
    id: str
    vault_id: str | None
    kind: str
    config: dict[str, Any]
    wrapped_secret: bytes | None
    actions: list[str] | None
    min_severity: str
    cursors: dict[str, int]
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    created_ms: int


@dataclass(frozen=True, slots=True)
class Filters:
    actor: str | None = None
    action: str | None = None
    secret: str | None = None
    severity: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class User:
    """A person's account. ``password_hash`` is Argon2id; ``totp_wrapped`` is wrapped by the
    root key; ``repr`` shows neither."""

    id: str
    name: str
    canonical: str
    email: str
    password_hash: str | None = field(repr=False)
    disabled_ms: int | None
    created_ms: int
    totp_wrapped: bytes | None = field(repr=False)
    totp_confirmed: bool
    totp_last_step: int | None
    oidc_issuer: str | None
    oidc_subject: str | None
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UserSession:
    """A sign-in session or a personal API token (``kind``)."""

    id: str
    user_id: str
    kind: str  # session | token
    name: str
    mfa: bool
    created_ms: int
    last_seen_ms: int
    expires_ms: int
    revoked_ms: int | None
    # A personal token can be narrower than its person: this role at most, in this scope.
    scope_role: str | None = None
    scope_vault: str | None = None
    scope_project: str | None = None


@dataclass(frozen=True, slots=True)
class BoundRole:
    """A role binding as stored: to a user, or to an identity-provider group."""

    id: str
    binding: RoleBinding
    user_id: str | None
    group_name: str | None
    created_ms: int
