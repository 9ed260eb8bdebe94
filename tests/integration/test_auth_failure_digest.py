"""Bad admin tokens from one address: the first failure is audited at once, the rest of the
window as one record with a count (core/auth_failures.py); the counts add up, also when the
server stops before the window ends."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from sikker.config import Settings
from sikker.core.audit import Actor
from sikker.errors import Unauthenticated
from sikker.service.bootstrap import bootstrap
from sikker.storage import tables
from tests.support import Server, init_and_unseal


def auth_failures(database: str) -> list[sa.Row]:  # type: ignore[type-arg]
    engine = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    log = tables.audit_log
    query = sa.select(log).where(log.c.action == "admin:auth:fail").order_by(log.c.id)
    with engine.connect() as conn:
        rows = list(conn.execute(query))
    engine.dispose()
    return rows


def failures_in(row: sa.Row) -> int:  # type: ignore[type-arg]
    return int(json.loads(row.target).get("failures", 1))


def hammer(server: Server, source: str, count: int) -> None:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=30) as client:
        for i in range(count):
            response = client.get(f"{server.url}/api/vaults", headers={"authorization": f"Bearer bad{i}"})
            assert response.status_code == 401


def test_bad_tokens_are_audited_as_one_first_record_and_one_count(database_url: str, tmp_path: Path) -> None:
    server = Server(database_url, tmp_path / "data").start()
    try:
        init_and_unseal(server.url)
        hammer(server, "127.0.3.1", 200)
        hammer(server, "127.0.3.2", 3)
    finally:
        server.stop()  # the counts still held are written at shutdown
    rows = auth_failures(database_url)
    by_source: dict[str, list[int]] = {}
    for row in rows:
        by_source.setdefault(row.source_ip, []).append(failures_in(row))
    assert by_source == {"127.0.3.1": [1, 199], "127.0.3.2": [1, 2]}, by_source
    digest = [r for r in rows if r.source_ip == "127.0.3.1"][1]
    assert digest.result == "denied"
    assert "199 more" in digest.reason
    assert "Traceback" not in server.output()


def test_the_periodic_flush_writes_a_count_once_its_window_has_ended(
    database_url: str, tmp_path: Path
) -> None:
    now = [1_800_000_000_000]
    services = bootstrap(Settings(database=database_url, data_dir=tmp_path), lambda: now[0])
    try:
        services.deps.db.migrate()
        who = Actor("anonymous", "-", "192.0.2.9", "test")
        for _ in range(50):
            with pytest.raises(Unauthenticated):
                services.tokens.authenticate("sikker_bad", who)
            now[0] += 100  # 50 failures over 5 s, within the 60 s window
        assert services.tokens.flush_failures() == 0  # the window is still open
        now[0] += 60_000
        assert services.tokens.flush_failures() == 1
        assert services.tokens.flush_failures() == 0
    finally:
        services.close()
    assert [failures_in(r) for r in auth_failures(database_url)] == [1, 49]
