"""Users, their sessions and personal tokens, recovery codes and role bindings."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, Row, and_, delete, insert, or_, select, update

from sikker.core.model import BoundRole, RoleBinding, User, UserSession
from sikker.core.people import NameFailures, after_failure
from sikker.storage.database import insert_rows
from sikker.storage.tables import login_failures, recovery_codes, role_bindings, user_sessions, users, vaults


def _user(r: Row[tuple[object, ...]]) -> User:
    m = r._mapping
    return User(
        m["id"],
        m["name"],
        m["canonical"],
        m["email"],
        m["password_hash"],
        m["disabled_ms"],
        m["created_ms"],
        bytes(m["totp_wrapped"]) if m["totp_wrapped"] is not None else None,
        bool(m["totp_confirmed"]),
        m["totp_last_step"],
        m["oidc_issuer"],
        m["oidc_subject"],
        tuple(orjson.loads(m["groups"])),
    )


def insert_user(conn: Connection, user: User) -> None:
    conn.execute(
        insert(users).values(
            id=user.id,
            name=user.name,
            canonical=user.canonical,
            email=user.email,
            password_hash=user.password_hash,
            created_ms=user.created_ms,
            oidc_issuer=user.oidc_issuer,
            oidc_subject=user.oidc_subject,
            groups=orjson.dumps(list(user.groups)).decode(),
        )
    )


def get_user(conn: Connection, user_id: str, for_update: bool = False) -> User | None:
    q = select(users).where(users.c.id == user_id)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    return _user(row) if row else None


def find_user(conn: Connection, canonical: str, for_update: bool = False) -> User | None:
    q = select(users).where(users.c.canonical == canonical)
    row = conn.execute(q.with_for_update() if for_update else q).first()
    return _user(row) if row else None


def find_oidc_user(conn: Connection, issuer: str, subject: str) -> User | None:
    q = select(users).where(users.c.oidc_issuer == issuer, users.c.oidc_subject == subject)
    row = conn.execute(q).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.canonical))]


def use_totp_step(conn: Connection, user_id: str, step: int) -> bool:
    """Record ``step`` as used unless it (or a later one) was: False means a replayed code."""
    last = users.c.totp_last_step
    q = update(users).where(users.c.id == user_id, or_(last.is_(None), last < step))
    return bool(conn.execute(q.values(totp_last_step=step)).rowcount)


def update_user(conn: Connection, user_id: str, **values: object) -> None:
    if "groups" in values:
        values["groups"] = orjson.dumps(list(values["groups"])).decode()  # type: ignore[call-overload]
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def delete_user(conn: Connection, user_id: str) -> None:
    conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    conn.execute(delete(role_bindings).where(role_bindings.c.user_id == user_id))
    conn.execute(delete(users).where(users.c.id == user_id))


# -- recovery codes ----------------------------------------------------------------------------
def replace_recovery_codes(conn: Connection, user_id: str, hashes: list[bytes]) -> None:
    conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    for h in hashes:
        conn.execute(insert(recovery_codes).values(user_id=user_id, code_hash=h, used_ms=None))


def use_recovery_code(conn: Connection, user_id: str, code_hash: bytes, now_ms: int) -> bool:
    """Mark an unused code used; False when there is no such unused code."""
    done = conn.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.used_ms.is_(None),
        )
        .values(used_ms=now_ms)
    )
    return bool(done.rowcount)


# -- sessions and personal tokens ----------------------------------------------------------------
def _session(r: Row[tuple[object, ...]]) -> UserSession:
    m = r._mapping
    return UserSession(
        m["id"],
        m["user_id"],
        m["kind"],
        m["name"],
        bool(m["mfa"]),
        m["created_ms"],
        m["last_seen_ms"],
        m["expires_ms"],
        m["revoked_ms"],
        m["scope_role"],
        m["scope_vault"],
        m["scope_project"],
    )


def insert_session(conn: Connection, session: UserSession, token_hash: bytes) -> None:
    conn.execute(
        insert(user_sessions).values(
            id=session.id,
            user_id=session.user_id,
            token_hash=token_hash,
            kind=session.kind,
            name=session.name,
            mfa=session.mfa,
            created_ms=session.created_ms,
            last_seen_ms=session.last_seen_ms,
            expires_ms=session.expires_ms,
            revoked_ms=None,
            scope_role=session.scope_role,
            scope_vault=session.scope_vault,
            scope_project=session.scope_project,
        )
    )


def find_session(conn: Connection, token_hash: bytes) -> tuple[UserSession, User] | None:
    row = conn.execute(select(user_sessions).where(user_sessions.c.token_hash == token_hash)).first()
    if row is None:
        return None
    session = _session(row)
    user = get_user(conn, session.user_id)
    return (session, user) if user is not None else None


def get_session(conn: Connection, session_id: str) -> UserSession | None:
    row = conn.execute(select(user_sessions).where(user_sessions.c.id == session_id)).first()
    return _session(row) if row else None


def list_sessions(conn: Connection, user_id: str) -> list[UserSession]:
    q = select(user_sessions).where(user_sessions.c.user_id == user_id).order_by(user_sessions.c.created_ms)
    return [_session(r) for r in conn.execute(q)]


def touch_session(conn: Connection, session_id: str, now_ms: int) -> None:
    conn.execute(update(user_sessions).where(user_sessions.c.id == session_id).values(last_seen_ms=now_ms))


def revoke_sessions(conn: Connection, now_ms: int, *, user_id: str, session_id: str | None = None) -> int:
    q = update(user_sessions).where(user_sessions.c.user_id == user_id, user_sessions.c.revoked_ms.is_(None))
    if session_id is not None:
        q = q.where(user_sessions.c.id == session_id)
    return conn.execute(q.values(revoked_ms=now_ms)).rowcount


# -- role bindings -------------------------------------------------------------------------------
def _binding(r: Row[tuple[object, ...]]) -> BoundRole:
    m = r._mapping
    return BoundRole(
        m["id"],
        RoleBinding(m["role"], m["vault_id"], m["project_id"]),
        m["user_id"],
        m["group_name"],
        m["created_ms"],
    )


def insert_binding(conn: Connection, row: BoundRole) -> None:
    b = row.binding
    conn.execute(
        insert(role_bindings).values(
            id=row.id,
            role=b.role,
            vault_id=b.vault_id,
            project_id=b.project_id,
            user_id=row.user_id,
            group_name=row.group_name,
            created_ms=row.created_ms,
        )
    )


def get_binding(conn: Connection, binding_id: str) -> BoundRole | None:
    row = conn.execute(select(role_bindings).where(role_bindings.c.id == binding_id)).first()
    return _binding(row) if row else None


def delete_binding(conn: Connection, binding_id: str) -> None:
    conn.execute(delete(role_bindings).where(role_bindings.c.id == binding_id))


def list_bindings(conn: Connection, vault_id: str | None = None) -> list[BoundRole]:
    q = select(role_bindings).order_by(role_bindings.c.created_ms)
    if vault_id is not None:
        q = q.where(role_bindings.c.vault_id == vault_id)
    return [_binding(r) for r in conn.execute(q)]


def bindings_of(conn: Connection, user_id: str, groups: tuple[str, ...]) -> tuple[RoleBinding, ...]:
    """The user's own bindings and those of the groups it belongs to."""
    who = role_bindings.c.user_id == user_id
    if groups:
        who = or_(who, and_(role_bindings.c.group_name.in_(groups), role_bindings.c.user_id.is_(None)))
    rows = conn.execute(select(role_bindings).where(who).order_by(role_bindings.c.created_ms))
    return tuple(dict.fromkeys(_binding(r).binding for r in rows))


def vaults_requiring_mfa(conn: Connection, vault_ids: set[str]) -> set[str]:
    if not vault_ids:
        return set()
    q = select(vaults.c.id).where(vaults.c.id.in_(vault_ids), vaults.c.require_mfa.is_(True))
    return set(conn.execute(q).scalars())


def set_vault_mfa(conn: Connection, vault_id: str, required: bool) -> bool:
    return bool(
        conn.execute(update(vaults).where(vaults.c.id == vault_id).values(require_mfa=required)).rowcount
    )


# -- failed sign-ins ---------------------------------------------------------------------------
_FAILURE_COLUMNS = ("canonical", "window_start_ms", "failures", "locked_until_ms")
_FAILURE_NEW = "ON CONFLICT (canonical) DO NOTHING"


def name_failures(conn: Connection, canonical: str, for_update: bool = False) -> NameFailures | None:
    q = select(*(login_failures.c[c] for c in _FAILURE_COLUMNS[1:])).where(
        login_failures.c.canonical == canonical
    )
    row = conn.execute(q.with_for_update() if for_update else q).first()
    return NameFailures(*row) if row else None


def count_failure(
    conn: Connection, canonical: str, now: int, limit: int, window_ms: int, lock_ms: int
) -> bool:
    """One more failed sign-in of ``canonical`` (in the caller's write transaction); True when it
    starts a lock. The row is created first if missing and then locked, so that concurrent
    failures on PostgreSQL count one after another instead of overwriting each other."""
    insert_rows(conn, login_failures, _FAILURE_COLUMNS, [(canonical, now, 0, 0)], _FAILURE_NEW)
    state, started = after_failure(name_failures(conn, canonical, True), now, limit, window_ms, lock_ms)
    conn.execute(
        update(login_failures)
        .where(login_failures.c.canonical == canonical)
        .values(
            window_start_ms=state.window_start_ms,
            failures=state.failures,
            locked_until_ms=state.locked_until_ms,
        )
    )
    return started


def forget_failures(conn: Connection, now: int, window_ms: int) -> int:
    """Delete the names whose window has closed and whose lock (if any) has ended."""
    done = and_(login_failures.c.window_start_ms <= now - window_ms, login_failures.c.locked_until_ms <= now)
    return conn.execute(delete(login_failures).where(done)).rowcount
