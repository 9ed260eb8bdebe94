"""Audit records: action names, severities and the hash chain (pure logic).

Each vault has its own chain (server-wide events use the ``system`` chain):
``h_i = SHA-256(h_{i-1} || canonical(entry_i))`` with ``h_0`` = 32 zero bytes.
``canonical`` is JSON with sorted keys and no whitespace, so a verifier can
recompute it from an export. Records never carry a secret value or a token.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

import orjson

from sikker.errors import InvalidInput

GENESIS = bytes(32)
SYSTEM_CHAIN = "system"


class Action(enum.StrEnum):
    """Every auditable action, named ``source:subject:action``."""

    OPERATOR_INIT = "operator:seal:init"
    OPERATOR_UNSEAL = "operator:seal:unseal"
    OPERATOR_UNSEAL_RESET = "operator:seal:reset"
    OPERATOR_SEAL = "operator:seal:seal"
    OPERATOR_ROTATE_KEYS = "operator:keys:rotate"
    ADMIN_AUTH_FAIL = "admin:auth:fail"
    ADMIN_VAULT_CREATE = "admin:vault:create"
    ADMIN_PROJECT_CREATE = "admin:project:create"
    ADMIN_PROJECT_DELETE = "admin:project:delete"
    ADMIN_SECRET_CREATE = "admin:secret:create"
    ADMIN_SECRET_UPDATE = "admin:secret:update"
    ADMIN_SECRET_READ = "admin:secret:read"
    ADMIN_SECRET_ROLLBACK = "admin:secret:rollback"
    ADMIN_SECRET_DELETE = "admin:secret:delete"
    ADMIN_SECRET_RESTORE = "admin:secret:restore"
    ADMIN_TOKEN_CREATE = "admin:token:create"
    ADMIN_TOKEN_REVOKE = "admin:token:revoke"
    SYSTEM_SECRET_PURGE = "system:secret:purge"
    ADMIN_MACHINE_APPROVE = "admin:machine:approve"
    ADMIN_MACHINE_DISABLE = "admin:machine:disable"
    ADMIN_MACHINE_ENABLE = "admin:machine:enable"
    ADMIN_MACHINE_REVOKE = "admin:machine:revoke"
    ADMIN_MACHINE_RENAME = "admin:machine:rename"
    ADMIN_MEMBERSHIP_ADD = "admin:membership:add"
    ADMIN_MEMBERSHIP_REMOVE = "admin:membership:remove"
    ADMIN_GRANT_ADD = "admin:grant:add"
    ADMIN_GRANT_REMOVE = "admin:grant:remove"
    ADMIN_ENROLL_TOKEN_CREATE = "admin:enroll-token:create"
    ADMIN_ENROLL_TOKEN_REVOKE = "admin:enroll-token:revoke"
    MACHINE_ENROLL = "machine:machine:enroll"
    MACHINE_AUTH_FAIL = "machine:auth:fail"
    MACHINE_AUTH_LOCKOUT = "machine:auth:lockout"
    MACHINE_SECRET_READ = "machine:secret:read"
    MACHINE_SECRET_LIST = "machine:secret:list"
    MACHINE_SECRET_EXPORT = "machine:secret:export"
    MACHINE_SECRET_POLL = "machine:secret:poll"
    MACHINE_PROJECT_LIST = "machine:project:list"
    ADMIN_ROTATION_SET = "admin:rotation:set"
    ADMIN_ROTATION_DISABLE = "admin:rotation:disable"
    ADMIN_MANAGED_SET = "admin:managed:set"
    ADMIN_SECRET_ROTATE = "admin:secret:rotate"
    SYSTEM_SECRET_ROTATE = "system:secret:rotate"
    SYSTEM_ROTATION_START = "system:rotation:start"
    SYSTEM_ROTATION_FAIL = "system:rotation:fail"
    MACHINE_AGENT_SYNC = "machine:agent:sync"
    MACHINE_AGENT_HEARTBEAT = "machine:agent:heartbeat"
    MACHINE_ROTATION_CONFIRM = "machine:rotation:confirm"
    MACHINE_ROTATION_REJECT = "machine:rotation:reject"
    CANARY_TRIP = "canary:secret:trip"
    ADMIN_CANARY_ENABLE = "admin:canary:enable"
    ADMIN_CANARY_DISABLE = "admin:canary:disable"
    ADMIN_PROJECT_UNFREEZE = "admin:project:unfreeze"
    ADMIN_STREAM_ADD = "admin:audit-stream:add"
    ADMIN_STREAM_REMOVE = "admin:audit-stream:remove"
    ADMIN_USER_CREATE = "admin:user:create"
    ADMIN_USER_DISABLE = "admin:user:disable"
    ADMIN_USER_ENABLE = "admin:user:enable"
    ADMIN_USER_DELETE = "admin:user:delete"
    ADMIN_ROLE_BIND = "admin:role:bind"
    ADMIN_ROLE_UNBIND = "admin:role:unbind"
    ADMIN_VAULT_MFA = "admin:vault:mfa"
    USER_LOGIN = "user:auth:login"
    USER_LOGIN_FAIL = "user:auth:fail"
    USER_LOGOUT = "user:auth:logout"
    USER_MFA_ENROL = "user:mfa:enrol"
    USER_MFA_CONFIRM = "user:mfa:confirm"
    USER_MFA_RECOVERY = "user:mfa:recovery"
    USER_TOKEN_CREATE = "user:token:create"
    ADMIN_DYNAMIC_CREATE = "admin:dynamic:create"
    ADMIN_DYNAMIC_UPDATE = "admin:dynamic:update"
    ADMIN_DYNAMIC_DELETE = "admin:dynamic:delete"
    ADMIN_DYNAMIC_ORPHANS = "admin:dynamic:orphans"
    MACHINE_LEASE_CREATE = "machine:lease:create"
    MACHINE_LEASE_RENEW = "machine:lease:renew"
    MACHINE_LEASE_REVOKE = "machine:lease:revoke"
    ADMIN_LEASE_RENEW = "admin:lease:renew"
    ADMIN_LEASE_REVOKE = "admin:lease:revoke"
    ADMIN_LEASE_FORGET = "admin:lease:forget"
    SYSTEM_LEASE_EXPIRE = "system:lease:expire"
    SYSTEM_LEASE_REVOKE = "system:lease:revoke"
    SYSTEM_LEASE_FAIL = "system:lease:fail"
    SYSTEM_LEASE_STALLED = "system:lease:stalled"


class Severity(enum.StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


_RANK = {s: i for i, s in enumerate(Severity)}


SEVERITY = {
    Action.ADMIN_USER_CREATE: Severity.MEDIUM,
    Action.ADMIN_USER_DISABLE: Severity.HIGH,
    Action.ADMIN_USER_DELETE: Severity.HIGH,
    Action.ADMIN_ROLE_BIND: Severity.MEDIUM,
    Action.ADMIN_ROLE_UNBIND: Severity.MEDIUM,
    Action.ADMIN_VAULT_MFA: Severity.MEDIUM,
    Action.USER_LOGIN_FAIL: Severity.MEDIUM,
    Action.USER_MFA_RECOVERY: Severity.HIGH,
    Action.OPERATOR_INIT: Severity.HIGH,
    Action.OPERATOR_UNSEAL: Severity.MEDIUM,
    Action.OPERATOR_UNSEAL_RESET: Severity.MEDIUM,
    Action.OPERATOR_SEAL: Severity.HIGH,
    Action.OPERATOR_ROTATE_KEYS: Severity.MEDIUM,
    Action.ADMIN_AUTH_FAIL: Severity.MEDIUM,
    Action.ADMIN_PROJECT_DELETE: Severity.MEDIUM,
    Action.ADMIN_SECRET_DELETE: Severity.LOW,
    Action.ADMIN_SECRET_READ: Severity.LOW,
    Action.ADMIN_TOKEN_CREATE: Severity.MEDIUM,
    Action.ADMIN_TOKEN_REVOKE: Severity.MEDIUM,
    Action.SYSTEM_SECRET_PURGE: Severity.LOW,
    Action.ADMIN_MACHINE_REVOKE: Severity.HIGH,
    Action.ADMIN_MACHINE_DISABLE: Severity.MEDIUM,
    Action.ADMIN_MACHINE_APPROVE: Severity.MEDIUM,
    Action.ADMIN_GRANT_ADD: Severity.LOW,
    Action.ADMIN_GRANT_REMOVE: Severity.LOW,
    Action.ADMIN_ENROLL_TOKEN_CREATE: Severity.MEDIUM,
    Action.ADMIN_ENROLL_TOKEN_REVOKE: Severity.MEDIUM,
    Action.MACHINE_ENROLL: Severity.LOW,
    Action.MACHINE_AUTH_FAIL: Severity.MEDIUM,
    Action.MACHINE_AUTH_LOCKOUT: Severity.HIGH,
    Action.MACHINE_SECRET_READ: Severity.INFO,
    Action.ADMIN_STREAM_ADD: Severity.MEDIUM,
    Action.CANARY_TRIP: Severity.CRITICAL,
    Action.ADMIN_CANARY_DISABLE: Severity.HIGH,
    Action.ADMIN_PROJECT_UNFREEZE: Severity.HIGH,
    Action.ADMIN_MANAGED_SET: Severity.MEDIUM,
    Action.ADMIN_ROTATION_DISABLE: Severity.LOW,
    Action.SYSTEM_ROTATION_FAIL: Severity.HIGH,
    Action.MACHINE_ROTATION_REJECT: Severity.HIGH,
    Action.MACHINE_AGENT_SYNC: Severity.LOW,
    Action.ADMIN_STREAM_REMOVE: Severity.HIGH,
    Action.ADMIN_DYNAMIC_CREATE: Severity.MEDIUM,
    Action.ADMIN_DYNAMIC_UPDATE: Severity.MEDIUM,
    Action.ADMIN_DYNAMIC_DELETE: Severity.MEDIUM,
    Action.ADMIN_DYNAMIC_ORPHANS: Severity.MEDIUM,
    Action.MACHINE_LEASE_CREATE: Severity.LOW,
    Action.MACHINE_LEASE_REVOKE: Severity.LOW,
    Action.ADMIN_LEASE_REVOKE: Severity.MEDIUM,
    Action.ADMIN_LEASE_FORGET: Severity.CRITICAL,
    Action.SYSTEM_LEASE_REVOKE: Severity.LOW,
    Action.SYSTEM_LEASE_FAIL: Severity.HIGH,
    Action.SYSTEM_LEASE_STALLED: Severity.HIGH,
}


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did something, and from where."""

    kind: str  # "root" | "admin" | "user" | "operator" | "system" | "anonymous"
    id: str
    source_ip: str = ""
    user_agent: str = ""


SYSTEM_ACTOR = Actor("system", "sikker")


@dataclass(frozen=True, slots=True)
class Entry:
    chain: str
    seq: int
    time_ms: int
    actor_kind: str
    actor_id: str
    source_ip: str
    user_agent: str
    action: str
    target: dict[str, str] = field(default_factory=dict)
    result: str = "ok"  # "ok" | "denied" | "error"
    reason: str = ""
    severity: str = "info"


def make_entry(
    chain: str,
    seq: int,
    time_ms: int,
    actor: Actor,
    action: Action,
    target: dict[str, str],
    result: str = "ok",
    reason: str = "",
) -> Entry:
    severity = SEVERITY.get(action, Severity.INFO)
    if result == "denied" and severity == Severity.INFO:
        severity = Severity.LOW
    if actor.kind == "root" and _RANK[severity] < _RANK[Severity.HIGH]:
        severity = Severity.HIGH  # the break-glass token: every use stands out
    return Entry(
        chain=chain,
        seq=seq,
        time_ms=time_ms,
        actor_kind=actor.kind,
        actor_id=actor.id,
        source_ip=actor.source_ip[:64],
        user_agent=actor.user_agent[:256],
        action=str(action),
        target=dict(target),
        result=result,
        reason=reason[:500],
        severity=str(severity),
    )


def canonical(entry: Entry) -> bytes:
    """The hashed bytes: every field as JSON with sorted keys. The same bytes as orjson over
    ``dataclasses.asdict(entry)``, spelled out because ``asdict`` cost more than the rest of
    an audit append."""
    fields = {
        "action": entry.action,
        "actor_id": entry.actor_id,
        "actor_kind": entry.actor_kind,
        "chain": entry.chain,
        "reason": entry.reason,
        "result": entry.result,
        "seq": entry.seq,
        "severity": entry.severity,
        "source_ip": entry.source_ip,
        "target": entry.target,
        "time_ms": entry.time_ms,
        "user_agent": entry.user_agent,
    }
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev: bytes, entry: Entry) -> bytes:
    return hash_after(prev, canonical(entry))


def hash_after(prev: bytes, canonical_entry: bytes) -> bytes:
    """The chain hash of a record whose canonical form is already at hand."""
    return hashlib.sha256(prev + canonical_entry).digest()


def action_pattern(pattern: str) -> tuple[str, bool]:
    """``(text, is_prefix)`` for an action filter, in the syntax audit streams use: an exact
    name (``admin:secret:read``), or a prefix written with a trailing ``*`` (``admin:*``; ``*``
    alone matches every action). A ``*`` anywhere else is refused, not matched literally."""
    prefix = pattern.endswith("*")
    text = pattern[:-1] if prefix else pattern
    if "*" in text:
        raise InvalidInput(
            f"action filter {pattern[:64]!r}: '*' is allowed only at the end, as a prefix "
            "match (e.g. 'admin:*' or 'machine:secret:*')"
        )
    return text, prefix
