"""Audit stream sinks, their per-chain cursors and the delivery log."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, insert, select, update

from sikker.core.model import AuditStream
from sikker.storage.tables import audit_deliveries, audit_sinks


def _sink(r: Row[tuple[object, ...]]) -> AuditStream:
    m = r._mapping
    return AuditStream(
        m["id"],
        m["vault_id"],
        m["kind"],
        orjson.loads(m["config"]),
        bytes(m["wrapped_secret"]) if m["wrapped_secret"] is not None else None,
        orjson.loads(m["actions"]) if m["actions"] else None,
        m["min_severity"],
        orjson.loads(m["cursors"]),
        m["attempts"],
        m["next_attempt_ms"],
        m["last_error"],
        m["created_ms"],
    )


def insert_sink(conn: Connection, sink: AuditStream) -> None:
    conn.execute(
        insert(audit_sinks).values(
            id=sink.id,
            vault_id=sink.vault_id,
            kind=sink.kind,
            config=orjson.dumps(sink.config).decode(),
            wrapped_secret=sink.wrapped_secret,
            actions=orjson.dumps(sink.actions).decode() if sink.actions is not None else None,
            min_severity=sink.min_severity,
            cursors=orjson.dumps(sink.cursors).decode(),
            attempts=0,
            next_attempt_ms=0,
            last_error=None,
            created_ms=sink.created_ms,
        )
    )


def get_sink(conn: Connection, sink_id: str) -> AuditStream | None:
    row = conn.execute(select(audit_sinks).where(audit_sinks.c.id == sink_id)).first()
    return _sink(row) if row else None


def list_sinks(
    conn: Connection, vault_id: str | None = None, due_before_ms: int | None = None
) -> list[AuditStream]:
    q = select(audit_sinks).order_by(audit_sinks.c.created_ms)
    if vault_id is not None:
        q = q.where(audit_sinks.c.vault_id == vault_id)
    if due_before_ms is not None:
        q = q.where(audit_sinks.c.next_attempt_ms <= due_before_ms)
    return [_sink(r) for r in conn.execute(q)]


def delete_sink(conn: Connection, sink_id: str) -> None:
    conn.execute(delete(audit_sinks).where(audit_sinks.c.id == sink_id))


def save_progress(
    conn: Connection,
    sink_id: str,
    cursors: dict[str, int],
    attempts: int,
    next_attempt_ms: int,
    last_error: str | None,
) -> None:
    conn.execute(
        update(audit_sinks)
        .where(audit_sinks.c.id == sink_id)
        .values(
            cursors=orjson.dumps(cursors).decode(),
            attempts=attempts,
            next_attempt_ms=next_attempt_ms,
            last_error=last_error,
        )
    )


def log_delivery(
    conn: Connection,
    sink_id: str,
    now_ms: int,
    chain: str,
    first_seq: int,
    last_seq: int,
    count: int,
    error: str | None,
) -> None:
    conn.execute(
        insert(audit_deliveries).values(
            sink_id=sink_id,
            time_ms=now_ms,
            chain=chain,
            first_seq=first_seq,
            last_seq=last_seq,
            count=count,
            result="error" if error else "ok",
            error=error,
        )
    )


def deliveries(conn: Connection, sink_id: str, limit: int) -> list[dict[str, Any]]:
    q = (
        select(audit_deliveries)
        .where(audit_deliveries.c.sink_id == sink_id)
        .order_by(audit_deliveries.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "time": r.time_ms,
            "chain": r.chain,
            "firstSeq": r.first_seq,
            "lastSeq": r.last_seq,
            "count": r.count,
            "result": r.result,
            "error": r.error,
        }
        for r in conn.execute(q)
    ]


def claim(conn: Connection, sink_id: str, expected_next_ms: int, lease_until_ms: int) -> bool:
    result = conn.execute(
        update(audit_sinks)
        .where(audit_sinks.c.id == sink_id, audit_sinks.c.next_attempt_ms == expected_next_ms)
        .values(next_attempt_ms=lease_until_ms)
    )
    return result.rowcount == 1
