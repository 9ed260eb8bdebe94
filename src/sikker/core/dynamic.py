"""Dynamic secrets: the pure rules for definitions and leases (no I/O, no clock).

A dynamic secret mints one database user per lease. This module decides what the server
may send to a database and when a lease ends:

- ``username``: the generated user name. Always ``sk_<tag>_`` (the definition's tag, from its
  id) followed by the rendered template, lower-case ``[a-z0-9_]`` only, cut to the engine's
  limit; the random part is never cut. The orphan sweeper looks for ``sk_<tag>_``.
- ``check_template``: a username template is text in ``[a-z0-9_]`` and the variables
  ``{{name}}``, ``{{machine}}``, ``{{random}}`` (required) and ``{{unix_time}}``.
- ``split_statement``: a custom creation/revocation statement is SQL text without quotes,
  semicolons, backslashes, ``%``, comments or dollar quoting, plus the placeholders
  ``{{name}}``, ``{{password}}``, ``{{expiration}}`` and ``{{role}}``, which the engine fills
  in as quoted identifiers or literals. So a statement can never carry a value as text.
- TTLs, renewal and the revocation backoff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sikker.errors import InvalidInput

ENGINES = ("postgresql", "mysql", "redis", "mongodb", "mssql")
STATEMENT_ENGINES = ("postgresql", "mysql")  # engines whose custom statements are SQL
USER_PREFIX = "sk_"
TAG_LEN = 8
RANDOM_LEN = 12
MAX_TTL_S = 30 * 86400
MAX_STATEMENTS = 20
MAX_STATEMENT_LEN = 2000
MAX_TEMPLATE_LEN = 64
DEFAULT_TEMPLATE = "{{name}}_{{random}}"
# Longest user name per engine (MySQL 8 allows 32; MariaDB 80: the definition does not know
# which one it is talking to, so the smaller wins). Redis and MongoDB have no small limit.
NAME_LIMITS = {"postgresql": 63, "mysql": 32, "redis": 64, "mongodb": 64, "mssql": 128}
TEMPLATE_VARIABLES = ("name", "machine", "random", "unix_time")
PLACEHOLDERS = ("name", "password", "expiration", "role")
# Low enough that jobs queued across a long outage all run within a minute of the database's
# return (a success on a dynamic secret also pulls its other jobs forward: lease_jobs).
REVOKE_BACKOFF_CAP_S = 30
REVOKE_ALERT_AFTER_MS = 15 * 60_000
REVOKE_ALERT_EVERY_MS = 3600_000
CREATING_GRACE_MS = 60_000  # a lease still 'creating' after this is treated as to revoke
REUSE_FRACTION = (2, 3)  # the SDK read path reuses a lease until 2/3 of its TTL passed

# Lease states. 'creating': the row (with its revocation snapshot) is committed, the user may
# or may not exist yet. 'revoking': a revocation job (retried with backoff, never given up).
STATES = ("creating", "active", "revoking", "revoked", "failed", "forgotten")
LIVE = ("creating", "active", "revoking")

_VARIABLE = re.compile(r"\{\{([a-z_]+)\}\}")
_PLAIN = re.compile(r"^[a-z0-9_]*$")
_NAME_CHARS = re.compile(r"[^a-z0-9_]+")
_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_REDIS_RULE = re.compile(r"^[A-Za-z0-9_~%&+\-@:*|?\[\]^.,/()]{1,200}$")
_REDIS_FORBIDDEN = ("nopass", "resetpass", "reset", "on", "off", "resetkeys", "resetchannels")
_STATEMENT_FORBIDDEN = re.compile(r"['\"`;\\%$]|--|/\*|\*/")


@dataclass(frozen=True, slots=True)
class Definition:
    """A dynamic secret: how to mint users on one database (statements are not secret; the
    admin credential is another secret, referenced by id)."""

    id: str  # the secret id (secrets.kind = 'dynamic')
    vault_id: str
    project_id: str
    name: str
    engine: str
    host: str
    port: int
    database: str
    admin_secret_id: str
    grant_role: str
    default_ttl_s: int
    max_ttl_s: int
    username_template: str
    creation_statements: tuple[str, ...]
    revocation_statements: tuple[str, ...]
    max_leases_per_machine: int | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What revoking a lease needs, sealed with the lease: deleting or changing the definition
    never orphans a user."""

    engine: str
    host: str
    port: int
    database: str
    admin_secret_id: str
    grant_role: str
    username: str
    revocation_statements: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Lease:
    id: str
    vault_id: str
    project_id: str
    dynamic_secret_id: str
    machine_id: str | None
    username: str
    state: str
    created_ms: int
    expires_ms: int
    max_expires_ms: int
    revoked_ms: int | None = None
    revoke_reason: str | None = None
    revoked_by: str | None = None
    revoke_requested_ms: int | None = None
    attempts: int = 0
    next_attempt_ms: int | None = None
    last_error: str | None = None
    alerted_ms: int | None = None
    sealed: object = field(default=None, repr=False, compare=False)  # storage's sealed blobs

    @property
    def renewable(self) -> bool:
        return self.state == "active" and self.expires_ms < self.max_expires_ms


def tag_of(definition_id: str) -> str:
    """The definition's part of every user name it mints (from its random id suffix)."""
    return definition_id.rsplit("_", 1)[-1][:TAG_LEN]


def user_prefix(definition_id: str) -> str:
    return f"{USER_PREFIX}{tag_of(definition_id)}_"


def check_template(template: str) -> str:
    if not template or len(template) > MAX_TEMPLATE_LEN:
        raise InvalidInput(f"usernameTemplate must be 1-{MAX_TEMPLATE_LEN} characters")
    names = _VARIABLE.findall(template)
    unknown = sorted(set(names) - set(TEMPLATE_VARIABLES))
    if unknown:
        allowed = ", ".join("{{" + v + "}}" for v in TEMPLATE_VARIABLES)
        raise InvalidInput(f"usernameTemplate: unknown variable {unknown[0]!r} (allowed: {allowed})")
    if "random" not in names:
        raise InvalidInput("usernameTemplate must contain {{random}} (user names must be unique)")
    if not _PLAIN.match(_VARIABLE.sub("", template)):
        raise InvalidInput("usernameTemplate: text outside variables must be lower-case a-z, 0-9 and _")
    return template


def username(
    engine: str, definition_id: str, template: str, name: str, machine_id: str, random: str, now_s: int
) -> str:
    """The user name for a new lease; only ``[a-z0-9_]``, within the engine's limit."""
    check_template(template)
    prefix = user_prefix(definition_id)
    fixed = {
        "machine": _NAME_CHARS.sub("", machine_id.lower())[:8],
        "random": random,
        "unix_time": str(now_s),
    }
    clean = _NAME_CHARS.sub("_", name.lower()).strip("_")
    room = NAME_LIMITS[engine] - len(prefix) - len(_render(template, fixed | {"name": ""}))
    if room < 0:
        raise InvalidInput(f"usernameTemplate renders longer than {NAME_LIMITS[engine]} characters")
    rendered = prefix + _render(template, fixed | {"name": clean[:room]})
    if not re.fullmatch(r"[a-z0-9_]+", rendered):
        raise InvalidInput("the rendered user name is not [a-z0-9_] only")
    return rendered


def _render(template: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: variables[m.group(1)], template)


def check_statements(engine: str, statements: list[str], what: str) -> tuple[str, ...]:
    if not statements:
        return ()
    if engine not in STATEMENT_ENGINES:
        raise InvalidInput(f"{what}: custom statements are supported for {', '.join(STATEMENT_ENGINES)}")
    if len(statements) > MAX_STATEMENTS:
        raise InvalidInput(f"{what}: at most {MAX_STATEMENTS} statements")
    for statement in statements:
        split_statement(statement, what)
    return tuple(statements)


def split_statement(statement: str, what: str = "statement") -> list[tuple[str, str]]:
    """``[(kind, text)]`` with kind ``sql`` (literal SQL text) or ``placeholder`` (its name).

    Refuses (InvalidInput) anything that could smuggle a value or a second statement in."""
    if not isinstance(statement, str) or not statement.strip() or len(statement) > MAX_STATEMENT_LEN:
        raise InvalidInput(f"{what}: each statement must be 1-{MAX_STATEMENT_LEN} characters")
    parts: list[tuple[str, str]] = []
    position = 0
    for match in re.finditer(r"\{\{([^{}]*)\}\}", statement):
        parts.append(("sql", statement[position : match.start()]))
        name = match.group(1)
        if name not in PLACEHOLDERS:
            allowed = ", ".join("{{" + p + "}}" for p in PLACEHOLDERS)
            raise InvalidInput(f"{what}: unknown placeholder {name[:20]!r} (allowed: {allowed})")
        parts.append(("placeholder", name))
        position = match.end()
    parts.append(("sql", statement[position:]))
    for kind, text in parts:
        if kind == "sql" and (_STATEMENT_FORBIDDEN.search(text) or "{" in text or "}" in text):
            raise InvalidInput(
                f"{what}: quotes, semicolons, backslashes, %, $, braces and comments are not allowed; "
                "values go in through {{name}}, {{password}}, {{expiration}} and {{role}}, one "
                "statement per list item"
            )
        if kind == "sql" and any(ord(c) < 32 and c not in "\t\n\r" for c in text):
            raise InvalidInput(f"{what}: control characters are not allowed")
    return [p for p in parts if p[1]]


def check_grant_role(engine: str, role: str) -> str:
    """A group role (SQL engines) or ACL rules (Redis); never a password rule."""
    if engine == "redis":
        rules = role.split()
        if not rules:
            raise InvalidInput("grantRole: give Redis ACL rules, e.g. '~app:* +get +set'")
        for rule in rules:
            lowered = rule.lower()
            if (
                not _REDIS_RULE.match(rule)
                or lowered in _REDIS_FORBIDDEN
                or rule[0] in "<>#!"
                or lowered.startswith("reset")
            ):
                raise InvalidInput(f"grantRole: Redis ACL rule {rule[:40]!r} is not allowed")
        return " ".join(rules)
    if not _ROLE.match(role):
        raise InvalidInput("grantRole must be a role name: letters, digits and _, at most 63 characters")
    return role


def check_ttls(default_ttl_s: int, max_ttl_s: int) -> None:
    if not 0 < default_ttl_s <= max_ttl_s:
        raise InvalidInput("defaultTtl must be more than 0 and at most maxTtl")
    if max_ttl_s > MAX_TTL_S:
        raise InvalidInput(f"maxTtl must be at most {MAX_TTL_S} seconds (30 days)")


def lease_ttl_s(definition: Definition, requested_s: int | None) -> int:
    """The TTL of a new lease: the definition's default, or what was asked (1..maxTtl)."""
    if requested_s is None:
        return definition.default_ttl_s
    if not 0 < requested_s <= definition.max_ttl_s:
        raise InvalidInput(f"ttl must be between 1 and {definition.max_ttl_s} seconds (maxTtl)")
    return requested_s


def renewed_expiry(lease: Lease, definition_default_s: int, requested_s: int | None, now_ms: int) -> int:
    """The new end of a renewed lease: now + ttl, never past issue time + maxTtl."""
    ttl_s = definition_default_s if requested_s is None else requested_s
    if ttl_s <= 0:
        raise InvalidInput("ttl must be more than 0 seconds")
    return min(now_ms + ttl_s * 1000, lease.max_expires_ms)


def reusable(lease: Lease, now_ms: int) -> bool:
    """The SDK read path reuses a live lease until two thirds of its TTL have passed."""
    num, den = REUSE_FRACTION
    return lease.state == "active" and now_ms < lease.created_ms + (
        (lease.expires_ms - lease.created_ms) * num // den
    )


def backoff_ms(attempts: int) -> int:
    """Delay before revocation attempt ``attempts + 1``: 1 s doubling, capped at 30 s."""
    delay_s: int = 1 << min(attempts, 20)
    return min(delay_s, REVOKE_BACKOFF_CAP_S) * 1000


def needs_alert(lease: Lease, now_ms: int) -> bool:
    """A revocation still pending after 15 minutes raises an alert, at most once an hour."""
    started = lease.revoke_requested_ms
    if lease.state != "revoking" or started is None or now_ms - started < REVOKE_ALERT_AFTER_MS:
        return False
    return lease.alerted_ms is None or now_ms - lease.alerted_ms >= REVOKE_ALERT_EVERY_MS
