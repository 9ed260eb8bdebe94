"""Seal configuration rows."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select, update

from sikker.core.model import SealConfig
from sikker.storage.tables import access_epoch, seal_config


def get_seal_config(conn: Connection) -> SealConfig | None:
    row = conn.execute(select(seal_config).where(seal_config.c.id == 1)).first()
    if row is None:
        return None
    return SealConfig(row.kind, row.shares, row.threshold, bytes(row.wrapped_root_key))


def save_seal_config(conn: Connection, config: SealConfig, now_ms: int) -> None:
    conn.execute(
        insert(seal_config).values(
            id=1,
            kind=config.kind,
            shares=config.shares,
            threshold=config.threshold,
            wrapped_root_key=config.wrapped_root_key,
            created_ms=now_ms,
        )
    )


def replace_seal_config(conn: Connection, config: SealConfig) -> None:
    """A new seal for the same root key (``sikker operator migrate-seal``); bumps the seal epoch
    so that running nodes seal themselves."""
    conn.execute(
        update(seal_config)
        .where(seal_config.c.id == 1)
        .values(
            kind=config.kind,
            shares=config.shares,
            threshold=config.threshold,
            wrapped_root_key=config.wrapped_root_key,
            seal_epoch=seal_config.c.seal_epoch + 1,
        )
    )


def seal_epoch(conn: Connection) -> int:
    found = conn.execute(select(seal_config.c.seal_epoch).where(seal_config.c.id == 1)).scalar_one_or_none()
    return int(found or 0)


def bump_seal_epoch(conn: Connection) -> None:
    conn.execute(
        update(seal_config).where(seal_config.c.id == 1).values(seal_epoch=seal_config.c.seal_epoch + 1)
    )


_ACCESS_EPOCH = select(access_epoch.c.epoch).where(access_epoch.c.id == 1)
_ACCESS_EPOCH_SHARED = _ACCESS_EPOCH.with_for_update(read=True)


def get_access_epoch(conn: Connection, lock: bool = False) -> int:
    """The access epoch; ``lock`` holds it (FOR SHARE on PostgreSQL) until the transaction ends,
    so no change to machines, grants, secrets or projects can commit in between."""
    return int(conn.execute(_ACCESS_EPOCH_SHARED if lock else _ACCESS_EPOCH).scalar_one())
