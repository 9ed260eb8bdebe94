"""Use cases against the real stores (SQLite file and PostgreSQL), with a controlled clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sikker.config import Settings
from sikker.core import audit, values
from sikker.core.model import Principal
from sikker.crypto import envelope
from sikker.errors import InvalidCiphertext, NotFound
from sikker.service.bootstrap import Services, bootstrap
from sikker.storage import tables

ROOT = Principal("root", "tok_test", None)
ACTOR = audit.Actor("root", "tok_test", "127.0.0.1", "pytest")
DAY_MS = 86_400_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def svc(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    services = bootstrap(Settings(database=database_url, data_dir=tmp_path), clock)
    services.deps.db.migrate()
    shares = services.seal.init(1, 1, ACTOR).shares
    services.seal.submit_share(shares[0], ACTOR)
    yield services
    services.close()


def new_project(svc: Services) -> str:
    vault = svc.vaults.create_vault(ROOT, ACTOR, "v")
    return svc.vaults.create_project(ROOT, ACTOR, vault.id, "p").id


def test_trash_is_restorable_for_30_days_then_purged(svc: Services, clock: FakeClock) -> None:
    project = new_project(svc)
    keep = svc.secrets.create(ROOT, ACTOR, project, "keep", values.standard("k"))
    gone = svc.secrets.create(ROOT, ACTOR, project, "gone", values.standard("g"))
    svc.secrets.delete(ROOT, ACTOR, keep.id)
    svc.secrets.delete(ROOT, ACTOR, gone.id)
    clock.now += 29 * DAY_MS
    assert svc.secrets.purge_trash() == 0
    svc.secrets.restore(ROOT, ACTOR, keep.id)
    clock.now += 2 * DAY_MS
    assert svc.secrets.purge_trash() == 1
    with pytest.raises(NotFound):
        svc.secrets.restore(ROOT, ACTOR, gone.id)
    assert svc.secrets.reveal(ROOT, ACTOR, keep.id).value.plaintext == b"k"


def test_an_interrupted_rewrap_resumes_and_loses_nothing(
    svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = new_project(svc)
    ids = [svc.secrets.create(ROOT, ACTOR, project, f"s{i}", values.standard(f"v{i}")).id for i in range(7)]
    monkeypatch.setattr("sikker.service.keys.BATCH", 2)
    real_rewrap = envelope.rewrap
    calls = {"n": 0}

    def crash_after_three(*args: object) -> envelope.Sealed:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("power cut")
        return real_rewrap(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(envelope, "rewrap", crash_after_three)
    with pytest.raises(RuntimeError):
        svc.keys.rotate(ROOT, ACTOR, project)
    monkeypatch.setattr(envelope, "rewrap", real_rewrap)

    with svc.deps.db.read() as conn:
        versions = conn.execute(sa.select(tables.secret_versions.c.key_version)).scalars().all()
    assert sorted(versions) == [1] * 5 + [2] * 2  # the first full batch committed, the second did not
    assert svc.keys.rewrap_all() == 5
    with svc.deps.db.read() as conn:
        assert set(conn.execute(sa.select(tables.secret_versions.c.key_version)).scalars()) == {2}
    for i, sid in enumerate(ids):
        assert svc.secrets.reveal(ROOT, ACTOR, sid).value.plaintext == f"v{i}".encode()


def test_a_ciphertext_copied_to_another_row_fails_to_decrypt(svc: Services) -> None:
    project = new_project(svc)
    a = svc.secrets.create(ROOT, ACTOR, project, "a", values.standard("alpha"))
    b = svc.secrets.create(ROOT, ACTOR, project, "b", values.standard("beta"))
    sv = tables.secret_versions
    with svc.deps.db.write() as conn:
        row = conn.execute(sa.select(sv.c.ciphertext, sv.c.wrapped_dek).where(sv.c.secret_id == a.id)).one()
        conn.execute(
            sa.update(sv)
            .where(sv.c.secret_id == b.id)
            .values(ciphertext=row.ciphertext, wrapped_dek=row.wrapped_dek)
        )
    with pytest.raises(InvalidCiphertext):
        svc.secrets.reveal(ROOT, ACTOR, b.id)


def test_every_change_leaves_an_audit_record_in_an_unbroken_chain(svc: Services) -> None:
    project = new_project(svc)
    s = svc.secrets.create(ROOT, ACTOR, project, "x", values.standard("MARKER-value"))
    svc.secrets.update(ROOT, ACTOR, s.id, values.standard("MARKER-2"))
    svc.secrets.reveal(ROOT, ACTOR, s.id)
    svc.secrets.delete(ROOT, ACTOR, s.id)
    with svc.deps.db.read() as conn:
        vault_id = s.vault_id
        rows = conn.execute(
            sa.select(tables.audit_log)
            .where(tables.audit_log.c.chain == vault_id)
            .order_by(tables.audit_log.c.seq)
        ).all()
    assert [r.action for r in rows] == [
        "admin:vault:create",
        "admin:project:create",
        "admin:secret:create",
        "admin:secret:update",
        "admin:secret:read",
        "admin:secret:delete",
    ]
    prev = audit.GENESIS
    for r in rows:
        assert bytes(r.prev_hash) == prev
        assert r.source_ip == "127.0.0.1" and r.actor_id == "tok_test"
        prev = bytes(r.hash)
        assert "MARKER" not in str(tuple(r))


def test_stored_audit_hashes_recompute_from_the_records(svc: Services) -> None:
    from sikker.storage import audit as audit_store

    project = new_project(svc)
    for i in range(5):
        svc.secrets.create(ROOT, ACTOR, project, f"n{i}", values.standard("v"))
    vault_id = svc.vaults.list_vaults(ROOT)[0].id
    with svc.deps.db.read() as conn:
        records = audit_store.list_entries(conn, vault_id)
    prev = audit.GENESIS
    for stored in records:
        assert stored.prev_hash == prev
        prev = audit.chain_hash(prev, stored.entry)
        assert prev == stored.hash
    assert len(records) == 7
