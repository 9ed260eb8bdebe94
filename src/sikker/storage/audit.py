"""The audit log: append in the caller's transaction, one hash chain per vault,
plus the checkpoint, frontier and signing-key rows that make it verifiable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, Row, bindparam, func, insert, select, update
from sqlalchemy.exc import DBAPIError

from sikker import metrics
from sikker.core import audit, merkle
from sikker.core.model import Filters
from sikker.errors import AuditUnavailable
from sikker.storage.database import MAX_PARAMETERS, Prepared, insert_rows, insert_sql
from sikker.storage.tables import (
    audit_checkpoints,
    audit_frontiers,
    audit_heads,
    audit_keys,
    audit_log,
)


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: audit.Entry
    prev_hash: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    chain: str
    tree_size: int
    root_hash: bytes
    time_ms: int
    key_id: str
    signature: bytes


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
    chain one after another. Any failure to write is ``AuditUnavailable``: the
    caller's whole transaction (and the value it would have released) is refused.
    """
    return append_many(conn, chain, [(now_ms, actor, action, target, result, reason)])[0]


# Built once: this runs on every read, and building statements is most of its cost.
_HEAD = Prepared(
    select(audit_heads.c.seq, audit_heads.c.hash)
    .where(audit_heads.c.chain == bindparam("chain"))
    .with_for_update()
)
_NEW_HEAD = Prepared(insert(audit_heads).values({c.name: bindparam(c.name) for c in audit_heads.c}))
# The order of the rows append_many writes (bench/audit_list.py loads rows in it too).
COLUMNS = (
    "chain",
    "seq",
    "time_ms",
    "actor_kind",
    "actor_id",
    "source_ip",
    "user_agent",
    "action",
    "target",
    "result",
    "reason",
    "severity",
    "prev_hash",
    "hash",
    "secret_id",
    "leaf_hash",
)
_MOVE_HEAD = Prepared(
    update(audit_heads)
    .where(audit_heads.c.chain == bindparam("head_chain"))
    .values(seq=bindparam("head_seq"), hash=bindparam("head_hash"))
)


Record = tuple[int, audit.Actor, audit.Action, dict[str, str], str, str]


def append_many(conn: Connection, chain: str, records: list[Record]) -> list[audit.Entry]:
    """``append`` for several records of one chain: one head lock, one insert, one head move."""
    start = time.perf_counter()
    try:
        return _append_many(conn, chain, records)
    except DBAPIError as e:
        raise AuditUnavailable() from e
    finally:
        metrics.AUDIT_WRITE.observe(time.perf_counter() - start)


def _append_many(conn: Connection, chain: str, records: list[Record]) -> list[audit.Entry]:
    head = _HEAD.first(conn, {"chain": chain})
    if head is None:
        seq, prev = 0, audit.GENESIS
        _NEW_HEAD.execute(conn, {"chain": chain, "seq": 0, "hash": prev})
    else:
        seq, prev = head[0], bytes(head[1])
    entries, rows = [], []
    for now_ms, actor, action, target, result, reason in records:
        seq += 1
        entry = audit.make_entry(chain, seq, now_ms, actor, action, target, result, reason)
        canonical = audit.canonical(entry)
        digest = audit.hash_after(prev, canonical)
        rows.append(
            (
                entry.chain,
                entry.seq,
                entry.time_ms,
                entry.actor_kind,
                entry.actor_id,
                entry.source_ip,
                entry.user_agent,
                entry.action,
                orjson.dumps(entry.target, option=orjson.OPT_SORT_KEYS).decode(),
                entry.result,
                entry.reason,
                entry.severity,
                prev,
                digest,
                entry.target.get("secret"),
                merkle.leaf_hash(canonical),
            )
        )
        entries.append(entry)
        prev = digest
    if conn.dialect.name == "postgresql" and len(rows) * len(COLUMNS) <= MAX_PARAMETERS:
        # One round trip, not two, while the head row is locked (until the commit).
        move = "UPDATE audit_heads SET seq = %s, hash = %s WHERE chain = %s"
        sql = f"WITH moved AS ({move}) {insert_sql(conn, audit_log, COLUMNS, len(rows))}"
        conn.exec_driver_sql(sql, (seq, prev, chain, *(v for row in rows for v in row)))
    else:
        insert_rows(conn, audit_log, COLUMNS, rows)
        _MOVE_HEAD.execute(conn, {"head_chain": chain, "head_seq": seq, "head_hash": prev})
    return entries


def _stored(r: Row[tuple[object, ...]]) -> StoredEntry:
    m = r._mapping
    entry = audit.Entry(
        chain=m["chain"],
        seq=m["seq"],
        time_ms=m["time_ms"],
        actor_kind=m["actor_kind"],
        actor_id=m["actor_id"],
        source_ip=m["source_ip"],
        user_agent=m["user_agent"],
        action=m["action"],
        target=orjson.loads(m["target"]),
        result=m["result"],
        reason=m["reason"],
        severity=m["severity"],
    )
    return StoredEntry(entry, bytes(m["prev_hash"]), bytes(m["hash"]))


def query(
    conn: Connection, chain: str, filters: Filters, before_seq: int | None, limit: int
) -> list[StoredEntry]:
    """Newest first; page with ``before_seq`` (the smallest seq of the previous page)."""
    q = select(audit_log).where(audit_log.c.chain == chain)
    if filters.actor:
        q = q.where(audit_log.c.actor_id == filters.actor)
    if filters.action:
        action, prefix = audit.action_pattern(filters.action)
        if not prefix:
            q = q.where(audit_log.c.action == action)
        elif action:  # 'admin:*': a prefix; LIKE's own wildcards in it match only themselves
            escaped = action.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            q = q.where(
                audit_log.c.action.like(escaped + "%", escape="\\"),
                # SQLite's LIKE ignores case; streams' prefixes (and PostgreSQL's LIKE) do not.
                func.substr(audit_log.c.action, 1, len(action)) == action,
            )
    if filters.secret:
        q = q.where(audit_log.c.secret_id == filters.secret)
    if filters.severity:
        q = q.where(audit_log.c.severity == filters.severity)
    if filters.since_ms is not None:
        q = q.where(audit_log.c.time_ms >= filters.since_ms)
    if filters.until_ms is not None:
        q = q.where(audit_log.c.time_ms < filters.until_ms)
    if before_seq is not None:
        q = q.where(audit_log.c.seq < before_seq)
    q = q.order_by(audit_log.c.seq.desc()).limit(limit)
    return [_stored(r) for r in conn.execute(q)]


def list_entries(conn: Connection, chain: str, after_seq: int = 0, limit: int = 1000) -> list[StoredEntry]:
    """Oldest first, from ``after_seq`` (exports, streams, verification)."""
    q = (
        select(audit_log)
        .where(audit_log.c.chain == chain, audit_log.c.seq > after_seq)
        .order_by(audit_log.c.seq)
        .limit(limit)
    )
    return [_stored(r) for r in conn.execute(q)]


def first_seq_since(conn: Connection, chain: str, since_ms: int) -> int:
    q = select(audit_log.c.seq).where(audit_log.c.chain == chain, audit_log.c.time_ms >= since_ms)
    found = conn.execute(q.order_by(audit_log.c.seq).limit(1)).scalar_one_or_none()
    return int(found) if found is not None else 0


def leaf_hashes(conn: Connection, chain: str, after_seq: int, up_to_seq: int) -> Iterator[bytes]:
    """Leaf hashes of records ``after_seq + 1 .. up_to_seq`` in order."""
    q = (
        select(audit_log.c.leaf_hash)
        .where(audit_log.c.chain == chain, audit_log.c.seq > after_seq, audit_log.c.seq <= up_to_seq)
        .order_by(audit_log.c.seq)
    )
    for value in conn.execute(q).scalars():
        yield bytes(value)


def heads(conn: Connection) -> dict[str, int]:
    return {r.chain: r.seq for r in conn.execute(select(audit_heads.c.chain, audit_heads.c.seq))}


def head_seq(conn: Connection, chain: str) -> int:
    found = conn.execute(select(audit_heads.c.seq).where(audit_heads.c.chain == chain)).scalar_one_or_none()
    return int(found or 0)


# -- checkpoints and the Merkle frontier ------------------------------------------------------
def get_frontier(conn: Connection, chain: str, for_update: bool = False) -> merkle.Frontier:
    q = select(audit_frontiers.c.nodes).where(audit_frontiers.c.chain == chain)
    if for_update:
        q = q.with_for_update()
    found = conn.execute(q).scalar_one_or_none()
    return merkle.Frontier.from_bytes(bytes(found)) if found is not None else merkle.Frontier()


def save_frontier(conn: Connection, chain: str, frontier: merkle.Frontier) -> None:
    exists = conn.execute(select(audit_frontiers.c.chain).where(audit_frontiers.c.chain == chain)).first()
    values = {"size": frontier.size, "nodes": frontier.to_bytes()}
    if exists:
        conn.execute(update(audit_frontiers).where(audit_frontiers.c.chain == chain).values(**values))
    else:
        conn.execute(insert(audit_frontiers).values(chain=chain, **values))


def frontier_sizes(conn: Connection) -> dict[str, int]:
    return {r.chain: r.size for r in conn.execute(select(audit_frontiers.c.chain, audit_frontiers.c.size))}


def insert_checkpoint(conn: Connection, cp: Checkpoint) -> None:
    conn.execute(
        insert(audit_checkpoints).values(
            chain=cp.chain,
            tree_size=cp.tree_size,
            root_hash=cp.root_hash,
            time_ms=cp.time_ms,
            key_id=cp.key_id,
            signature=cp.signature,
        )
    )


def checkpoints(conn: Connection, chain: str) -> list[Checkpoint]:
    q = (
        select(audit_checkpoints)
        .where(audit_checkpoints.c.chain == chain)
        .order_by(audit_checkpoints.c.tree_size)
    )
    return [
        Checkpoint(r.chain, r.tree_size, bytes(r.root_hash), r.time_ms, r.key_id, bytes(r.signature))
        for r in conn.execute(q)
    ]


def last_checkpoint_ms(conn: Connection) -> dict[str, int]:
    from sqlalchemy import func

    q = select(audit_checkpoints.c.chain, func.max(audit_checkpoints.c.time_ms)).group_by(
        audit_checkpoints.c.chain
    )
    return {chain: int(t) for chain, t in conn.execute(q)}


def get_audit_key(conn: Connection) -> tuple[str, bytes, bytes] | None:
    row = conn.execute(select(audit_keys).order_by(audit_keys.c.created_ms.desc()).limit(1)).first()
    return (row.id, bytes(row.public_key), bytes(row.wrapped_private_key)) if row else None


def insert_audit_key(conn: Connection, key_id: str, public: bytes, wrapped: bytes, now_ms: int) -> None:
    conn.execute(
        insert(audit_keys).values(
            id=key_id, public_key=public, wrapped_private_key=wrapped, created_ms=now_ms
        )
    )
