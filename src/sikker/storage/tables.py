"""The schema, one for SQLite and PostgreSQL (SQLAlchemy Core).

Secret values exist here only as ciphertext. Changes go through Alembic
migrations under ``migrations/versions``; keep both in step.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

seal_config = Table(
    "seal_config",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),  # shamir | keyfile
    Column("shares", Integer, nullable=False),
    Column("threshold", Integer, nullable=False),
    Column("wrapped_root_key", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Bumped by every seal: a node whose unseal predates the current epoch seals itself.
    Column("seal_epoch", BigInteger, nullable=False, server_default=text("0")),
)

# Bumped (by triggers, migration 0008) on every change that can alter a machine read's outcome.
access_epoch = Table(
    "access_epoch",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)

vaults = Table(
    "vaults",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    # People need a session signed in with a second factor to act in this vault.
    Column("require_mfa", Boolean, nullable=False, server_default=text("false")),
)

projects = Table(
    "projects",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), ForeignKey("vaults.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("frozen_ms", BigInteger, nullable=True),  # set when a canary is read
    Column("frozen_by", String(32), nullable=True),  # the canary secret id
    UniqueConstraint("vault_id", "name", name="uq_projects_vault_name"),
)

project_keys = Table(
    "project_keys",
    metadata,
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

secrets = Table(
    "secrets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), ForeignKey("vaults.id"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # standard | structured | dynamic
    Column("current_version", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Column("deleted_ms", BigInteger, nullable=True),
    # Partial: live names are unique, deleted ones may repeat. Migration 0001 makes it so on
    # both stores; here only ``sqlite_where`` is spelt out, because naming a dialect's option
    # imports that dialect, and PostgreSQL's costs a SQLite server ~25 ms of its start-up.
    Index("uq_secrets_live_name", "project_id", "name", unique=True, sqlite_where=text("deleted_ms IS NULL")),
    Index("ix_secrets_deleted_ms", "deleted_ms"),
)

secret_versions = Table(
    "secret_versions",
    metadata,
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("key_version", Integer, nullable=False),
    Column("field_names", Text, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(16), nullable=False),  # root | admin
    Column("vault_id", String(32), ForeignKey("vaults.id"), nullable=True),
    Column("name", String(255), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("role", String(16), nullable=False, server_default="admin"),  # core/permissions.py ROLES
    # A token bound to one project dies with it (never widens to the vault).
    Column(
        "project_id",
        String(32),
        ForeignKey("projects.id", ondelete="CASCADE", name="fk_tokens_project_id_projects"),
        nullable=True,
    ),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("chain", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("user_agent", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("result", String(16), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
    # Denormalised for filtering; the canonical record is still the target JSON.
    Column("secret_id", String(32), nullable=True),
    Column("leaf_hash", LargeBinary(32), nullable=True),  # RFC 6962 leaf of canonical(entry)
    UniqueConstraint("chain", "seq", name="uq_audit_chain_seq"),
    Index("ix_audit_time", "chain", "time_ms"),
    Index("ix_audit_action_seq", "chain", "action", "seq"),
    Index("ix_audit_actor", "chain", "actor_id", "seq"),
    Index("ix_audit_secret", "chain", "secret_id", "seq"),
    Index("ix_audit_severity", "chain", "severity", "seq"),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# -- machine plane ----------------------------------------------------------------

machines = Table(
    "machines",
    metadata,
    Column("id", String(36), primary_key=True),  # UUID, lower-case
    Column("vault_id", String(32), ForeignKey("vaults.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("kind", String(16), nullable=False),  # standard | ephemeral
    Column("approved", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("hostname", String(255), nullable=False),
    Column("allowed_cidr", String(64), nullable=True),
    Column("enrollment_token_id", String(32), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("last_poll_ms", BigInteger, nullable=True),
    Column("jwt_role_id", String(32), nullable=True),  # no FK: a deleted role's machines stay listed
    Index("ix_machines_vault", "vault_id"),
    Index("ix_machines_jwt_role", "jwt_role_id"),
)

machine_projects = Table(
    "machine_projects",
    metadata,
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
)

grants = Table(
    "grants",
    metadata,
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_grants_secret", "secret_id"),
)

enrollment_tokens = Table(
    "enrollment_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), ForeignKey("vaults.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("project_ids", Text, nullable=False),  # JSON list
    Column("secret_ids", Text, nullable=False),  # JSON list
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("approval", String(16), nullable=False),  # auto | manual (standard machines)
    Column("machine_ttl_s", BigInteger, nullable=True),
    Column("hostname_pattern", String(255), nullable=True),
    Column("name_pattern", String(255), nullable=True),
    Column("source_cidr", String(64), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
)

# Nonces seen per machine inside the signature window (replay protection).
nonces = Table(
    "nonces",
    metadata,
    Column("machine_id", String(36), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_nonces_expires", "expires_ms"),
)

# The version of each secret last delivered to each machine (for poll).
deliveries = Table(
    "deliveries",
    metadata,
    Column("machine_id", String(36), ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True),
    Column("secret_id", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
)

# -- tamper evidence and streams ---------------------------------------------------------

# The Ed25519 key that signs checkpoints; its private half is wrapped by the root key.
audit_keys = Table(
    "audit_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("wrapped_private_key", LargeBinary, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("tree_size", BigInteger, primary_key=True),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
)

# Incremental Merkle state per chain (perfect-subtree roots) at the last checkpoint.
audit_frontiers = Table(
    "audit_frontiers",
    metadata,
    Column("chain", String(32), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("nodes", LargeBinary, nullable=False),
)

audit_sinks = Table(
    "audit_sinks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), nullable=True),  # None: every chain (root only)
    Column("kind", String(16), nullable=False),  # webhook | syslog | jsonl
    Column("config", Text, nullable=False),  # JSON: url | host, port, protocol | path
    Column("wrapped_secret", LargeBinary, nullable=True),  # webhook HMAC key, wrapped by the root key
    Column("actions", Text, nullable=True),  # JSON list or NULL for all
    Column("min_severity", String(16), nullable=False),
    Column("cursors", Text, nullable=False),  # JSON {chain: last delivered seq}
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_error", String(500), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)

audit_deliveries = Table(
    "audit_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sink_id", String(32), ForeignKey("audit_sinks.id", ondelete="CASCADE"), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("chain", String(32), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("result", String(16), nullable=False),  # ok | error
    Column("error", String(500), nullable=True),
    Index("ix_audit_deliveries_sink", "sink_id", "id"),
)

# -- rotation ----------------------------------------------------------------------------

rotation_policies = Table(
    "rotation_policies",
    metadata,
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("interval_s", BigInteger, nullable=True),
    Column("cron", String(120), nullable=True),
    Column("length", Integer, nullable=False),
    Column("charset", String(16), nullable=False),
    Column("fields", Text, nullable=True),  # JSON list: structured fields that rotate
    Column("enabled", Boolean, nullable=False),
    Column("next_due_ms", BigInteger, nullable=False),
    Column("last_rotated_ms", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Index("ix_rotation_due", "enabled", "next_due_ms"),
)

# A secret whose value is a live database credential, rotated by `sikker agent`.
managed_secrets = Table(
    "managed_secrets",
    metadata,
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("provider", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("database", String(255), nullable=False),
    Column("admin_secret_id", String(32), ForeignKey("secrets.id"), nullable=False),
    Column("strategy", String(16), nullable=False),  # single | dual | alternating
    Column("base_username", String(255), nullable=False),
    Column("alt_username", String(255), nullable=True),
    Column("grace_s", BigInteger, nullable=False),
    Column("previous_username", String(255), nullable=True),
    Column("disable_previous_at_ms", BigInteger, nullable=True),
    Column("agent_status", String(16), nullable=True),
    Column("agent_error", String(500), nullable=True),
    Column("agent_seen_ms", BigInteger, nullable=True),
)

rotations = Table(
    "rotations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),  # pending | current | rejected
    Column("trigger", String(16), nullable=False),  # schedule | manual
    Column("ciphertext", LargeBinary, nullable=True),  # the pending value, sealed (slot = rotation id)
    Column("wrapped_dek", LargeBinary, nullable=True),
    Column("key_version", Integer, nullable=True),
    Column("version", Integer, nullable=True),  # the secret version it became
    Column("error", String(500), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_rotations_secret", "secret_id", "status"),
)

# -- canaries ------------------------------------------------------------------------------

# A decoy secret: to machines it is a secret like any other (this row is the only mark).
canaries = Table(
    "canaries",
    metadata,
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("looks_like", String(32), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("freeze_related", Boolean, nullable=False),
    Column("related_project_ids", Text, nullable=False),  # JSON list
    Column("created_ms", BigInteger, nullable=False),
)

canary_trips = Table(
    "canary_trips",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False),
    Column("source_ip", String(64), nullable=False),
    Column("time_ms", BigInteger, nullable=False),
    Column("frozen_projects", Text, nullable=False),  # JSON list
    Index("ix_canary_trips_secret", "secret_id", "time_ms"),
)

# -- people ----------------------------------------------------------------------------------

# A person. ``canonical`` is the name compared for uniqueness (NFKC, case-folded).
users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("canonical", String(255), nullable=False, unique=True),
    Column("email", String(320), nullable=False),
    Column("password_hash", Text, nullable=True),  # Argon2id; NULL: single sign-on only
    Column("disabled_ms", BigInteger, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    # TOTP: the secret wrapped by the root key; confirmed once a first code matched.
    Column("totp_wrapped", LargeBinary, nullable=True),
    Column("totp_confirmed", Boolean, nullable=False, server_default=text("false")),
    Column("totp_last_step", BigInteger, nullable=True),  # a code's time step is used once
    # Single sign-on: the provider's issuer and subject; groups as of the last login.
    Column("oidc_issuer", String(255), nullable=True),
    Column("oidc_subject", String(255), nullable=True),
    Column("groups", Text, nullable=False, server_default=text("'[]'")),  # JSON list
    UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc"),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("code_hash", LargeBinary(32), primary_key=True),
    Column("used_ms", BigInteger, nullable=True),
)

# Failed sign-ins per canonical user name, known or not (core/people.after_failure): in the
# store, so that every worker and node counts toward one lock.
login_failures = Table(
    "login_failures",
    metadata,
    Column("canonical", String(255), primary_key=True),
    Column("window_start_ms", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until_ms", BigInteger, nullable=False),
    Index("ix_login_failures_window", "window_start_ms"),
)

# Sessions (``sikker login``) and personal API tokens, stored as SHA-256 of the bearer.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # session | token
    Column("name", String(255), nullable=False),
    Column("mfa", Boolean, nullable=False),  # signed in with a second factor
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("scope_role", String(16), nullable=True),
    Column("scope_vault", String(32), nullable=True),
    Column("scope_project", String(32), nullable=True),
    Index("ix_user_sessions_user", "user_id"),
)

# A role held by a user, or by everyone in an identity provider's group, at a vault or project.
role_bindings = Table(
    "role_bindings",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("vault_id", String(32), ForeignKey("vaults.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", String(32), ForeignKey("projects.id", ondelete="CASCADE"), nullable=True),
    Column("user_id", String(32), ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("group_name", String(255), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Index("ix_role_bindings_user", "user_id"),
    Index("ix_role_bindings_group", "group_name"),
)

# Workload identity: JWT roles (lists and maps as JSON text) and the JWTs already used.
jwt_roles = Table(
    "jwt_roles",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), ForeignKey("vaults.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("issuer", String(512), nullable=False),
    Column("discovery_url", String(2048), nullable=True),
    Column("jwks_url", String(2048), nullable=True),
    Column("public_keys", Text, nullable=True),
    Column("bound_audiences", Text, nullable=False),
    Column("bound_subject", String(256), nullable=True),
    Column("bound_claims", Text, nullable=True),
    Column("name_claim", String(128), nullable=True),
    Column("project_ids", Text, nullable=False),
    Column("secret_ids", Text, nullable=False),
    Column("machine_ttl_s", BigInteger, nullable=False),
    Column("source_cidrs", Text, nullable=True),
    Column("kubernetes_mode", String(16), nullable=True),
    Column("kubernetes_cluster", String(64), nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    UniqueConstraint("vault_id", "name", name="uq_jwt_roles_vault_name"),
)
jwt_uses = Table(
    "jwt_uses",
    metadata,
    Column("vault_id", String(32), primary_key=True),
    Column("digest", LargeBinary(32), primary_key=True),  # sha256 of (iss, jti), or of the token
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_jwt_uses_expires", "expires_ms"),
)

# -- dynamic secrets -------------------------------------------------------------------------

# How to mint users for a dynamic secret (a secrets row of kind 'dynamic'). The admin credential
# is another (structured) secret, referenced by id; statements are JSON lists (not secret).
dynamic_secrets = Table(
    "dynamic_secrets",
    metadata,
    Column("secret_id", String(32), ForeignKey("secrets.id", ondelete="CASCADE"), primary_key=True),
    Column("engine", String(16), nullable=False),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("database", String(255), nullable=False),
    Column("admin_secret_id", String(32), nullable=False),
    Column("grant_role", String(1000), nullable=False),
    Column("default_ttl_s", BigInteger, nullable=False),
    Column("max_ttl_s", BigInteger, nullable=False),
    Column("username_template", String(64), nullable=False),
    Column("creation_statements", Text, nullable=False),
    Column("revocation_statements", Text, nullable=False),
    Column("max_leases_per_machine", Integer, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# One minted database user. No foreign keys on purpose: a lease outlives its definition (the
# sealed snapshot says how to revoke it) and is only ever deleted by nobody (history).
leases = Table(
    "leases",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("vault_id", String(32), nullable=False),
    Column("project_id", String(32), nullable=False),
    Column("dynamic_secret_id", String(32), nullable=False),
    Column("machine_id", String(36), nullable=True),
    Column("username", String(128), nullable=False),
    # The password and the revocation snapshot, each sealed with the project key (AAD slot
    # "lease|<id>|password" / "lease|<id>|snapshot"); the password is dropped once revoked.
    Column("password_ct", LargeBinary, nullable=True),
    Column("password_dek", LargeBinary, nullable=True),
    Column("password_key_version", Integer, nullable=True),
    Column("snapshot_ct", LargeBinary, nullable=False),
    Column("snapshot_dek", LargeBinary, nullable=False),
    Column("snapshot_key_version", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # core/dynamic.py STATES
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("max_expires_ms", BigInteger, nullable=False),
    Column("revoke_requested_ms", BigInteger, nullable=True),
    Column("revoked_ms", BigInteger, nullable=True),
    Column("revoke_reason", String(500), nullable=True),
    Column("revoked_by", String(100), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_ms", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("claimed_by", String(64), nullable=True),
    Column("claim_until_ms", BigInteger, nullable=True),
    Column("alerted_ms", BigInteger, nullable=True),
    Index("ix_leases_state_expires", "state", "expires_ms"),
    Index("ix_leases_state_next", "state", "next_attempt_ms"),
    Index("ix_leases_machine", "machine_id", "dynamic_secret_id", "state"),
    Index("ix_leases_dynamic", "dynamic_secret_id", "state"),
    Index("ix_leases_vault", "vault_id", "id"),
)
