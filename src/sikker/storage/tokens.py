"""Admin-plane bearer tokens (stored only as SHA-256 hashes)."""

from __future__ import annotations

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from sikker.core.model import Token
from sikker.storage.database import Database, Prepared, model_columns
from sikker.storage.tables import tokens


def _token(row: Row[tuple[object, ...]]) -> Token:
    m = row._mapping
    return Token(
        m["id"],
        m["kind"],
        m["vault_id"],
        m["name"],
        m["created_ms"],
        m["expires_ms"],
        m["revoked_ms"],
        m["role"],
        m["project_id"],
    )


def insert_token(conn: Connection, token: Token, token_hash: bytes) -> None:
    conn.execute(
        insert(tokens).values(
            id=token.id,
            kind=token.kind,
            vault_id=token.vault_id,
            name=token.name,
            token_hash=token_hash,
            created_ms=token.created_ms,
            expires_ms=token.expires_ms,
            revoked_ms=None,
            role=token.role,
            project_id=token.project_id,
        )
    )


# Every admin request.
_BY_HASH = Prepared(
    select(*model_columns(tokens, Token)).where(tokens.c.token_hash == bindparam("token_hash"))
)


def find_by_hash(conn: Connection, token_hash: bytes) -> Token | None:
    row = _BY_HASH.first(conn, {"token_hash": token_hash})
    return Token(*row) if row else None


def look_up_by_hash(db: Database, token_hash: bytes) -> Token | None:
    """``find_by_hash`` outside a transaction (``Database.read_row``): every admin request."""
    row = db.read_row(_BY_HASH, {"token_hash": token_hash})
    return Token(*row) if row else None


def get_token(conn: Connection, token_id: str) -> Token | None:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).first()
    return _token(row) if row else None


def list_tokens(conn: Connection, vault_id: str | None = None) -> list[Token]:
    query = select(tokens).order_by(tokens.c.created_ms, tokens.c.id)
    if vault_id is not None:
        query = query.where(tokens.c.vault_id == vault_id)
    return [_token(r) for r in conn.execute(query)]


def revoke(conn: Connection, token_id: str, now_ms: int) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_ms=now_ms))
