"""The audit log: append in the caller's transaction, one hash chain per vault."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, insert, select, update

from sikker.core import audit
from sikker.storage.tables import audit_heads, audit_log


def append(
    conn: Connection,
    chain: str,
    now_ms: int,
    actor: audit.Actor,
    action: audit.Action,
    target: dict[str, str],
    result: str = "ok",
    reason: str = "",
) -> audit.Entry:
    """Add one record to ``chain`` inside the caller's transaction.

    The chain head row is locked (``FOR UPDATE`` on PostgreSQL; SQLite write
    transactions are already serialised), so concurrent writers extend the
    chain one after another.
    """
    head = conn.execute(
        select(audit_heads.c.seq, audit_heads.c.hash).where(audit_heads.c.chain == chain).with_for_update()
    ).first()
    if head is None:
        seq, prev = 0, audit.GENESIS
        conn.execute(insert(audit_heads).values(chain=chain, seq=0, hash=prev))
    else:
        seq, prev = head.seq, bytes(head.hash)
    entry = audit.make_entry(chain, seq + 1, now_ms, actor, action, target, result, reason)
    digest = audit.chain_hash(prev, entry)
    conn.execute(
        insert(audit_log).values(
            chain=entry.chain,
            seq=entry.seq,
            time_ms=entry.time_ms,
            actor_kind=entry.actor_kind,
            actor_id=entry.actor_id,
            source_ip=entry.source_ip,
            user_agent=entry.user_agent,
            action=entry.action,
            target=orjson.dumps(entry.target, option=orjson.OPT_SORT_KEYS).decode(),
            result=entry.result,
            reason=entry.reason,
            severity=entry.severity,
            prev_hash=prev,
            hash=digest,
        )
    )
    conn.execute(update(audit_heads).where(audit_heads.c.chain == chain).values(seq=entry.seq, hash=digest))
    return entry


def list_entries(
    conn: Connection, chain: str, after_seq: int = 0, limit: int = 100, action: str | None = None
) -> list[tuple[audit.Entry, bytes]]:
    query = (
        select(audit_log)
        .where(audit_log.c.chain == chain, audit_log.c.seq > after_seq)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    if action:
        query = query.where(audit_log.c.action == action)
    out = []
    for r in conn.execute(query):
        entry = audit.Entry(
            chain=r.chain,
            seq=r.seq,
            time_ms=r.time_ms,
            actor_kind=r.actor_kind,
            actor_id=r.actor_id,
            source_ip=r.source_ip,
            user_agent=r.user_agent,
            action=r.action,
            target=orjson.loads(r.target),
            result=r.result,
            reason=r.reason,
            severity=r.severity,
        )
        out.append((entry, bytes(r.hash)))
    return out
