"""Backups taken from a running server, restored offline, between SQLite and PostgreSQL
(docs/operator/backup.md)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sikker.core import audit_verify
from sikker.core.audit import Actor
from sikker.crypto import envelope, shamir
from sikker.errors import Conflict, InvalidInput
from sikker.service import restore as restoring
from sikker.storage import database
from sikker.storage.database import Database, store_lock
from tests.support import Api, Machine, Server, fresh_pg_database, init_and_unseal

OPERATOR = Actor("operator", "test", "", "pytest")


@contextlib.contextmanager
def store(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        yield f"sqlite:///{directory / 'sikker.db'}"
    else:
        with fresh_pg_database() as url:
            yield url


@dataclass
class Source:
    server: Server
    root: Api
    shares: list[str]
    vault: str
    project: str
    secrets: dict[str, str]  # id -> current value
    structured: str
    machine: Machine
    public_key: str


def populate(server: Server) -> Source:
    shares, token = init_and_unseal(server.url, 3, 2)
    root = Api(server.url, token)
    vault = root.ok("POST", "/api/vaults", {"name": "acme"})["id"]
    project = root.ok("POST", f"/api/vaults/{vault}/projects", {"name": "payments"})["id"]
    secrets = {}
    for i in range(3):
        sid = root.ok("POST", f"/api/projects/{project}/secrets", {"name": f"S{i}", "value": f"v{i}-1"})["id"]
        root.ok("PUT", f"/api/secrets/{sid}", {"value": f"v{i}-2"})
        secrets[sid] = f"v{i}-2"
    structured = root.ok(
        "POST",
        f"/api/projects/{project}/secrets",
        {"name": "DB", "fields": {"user": "app", "password": "pw"}},
    )["id"]
    enroll = root.ok(
        "POST",
        f"/api/vaults/{vault}/enrollment-tokens",
        {"projectIds": [project], "secretIds": [*secrets, structured]},
    )["token"]
    machine = Machine.enroll(server, vault, enroll)
    for sid, value in secrets.items():
        assert machine.request("GET", f"/v1/secret/{sid}").json() == {"value": value}
    public_key = root.ok("GET", "/api/audit/public-key")["publicKey"]
    return Source(server, root, shares, vault, project, secrets, structured, machine, public_key)


def take_backup(root: Api, path: Path) -> Path:
    response = root.raw("POST", "/api/sys/backup")
    assert response.status_code == 200, response.text
    path.write_bytes(response.content)
    assert response.headers["x-sikker-backup-sha256"] == response.content[-32:].hex()
    return path


def restore(path: Path, url: str, shares: list[str], force: bool = False) -> restoring.Summary:
    info = restoring.open_backup(path)
    return restoring.restore(info, restoring.unlock(info, shares), url, OPERATOR, 1, force=force)


def export(api: Api, chain: str) -> list[dict[str, Any]]:
    response = api.raw("GET", f"/api/audit/{chain}/export")
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def check_restored(src: Source, server: Server, backup_recorded: bool = False) -> None:
    """Old shares unseal it; values, versions, grants, the machine and the audit chains are back.
    ``backup_recorded``: the backed-up store held the record of an earlier backup."""
    for share in src.shares[:2]:
        Api(server.url).ok("POST", "/api/sys/unseal", {"share": share})
    root = Api(server.url, src.root.headers["authorization"][7:])
    machine = Machine(server.url, src.machine.id, src.machine.key)
    for sid, value in src.secrets.items():
        assert machine.request("GET", f"/v1/secret/{sid}").json() == {"value": value}
        versions = root.ok("GET", f"/api/secrets/{sid}/versions")["versions"]
        assert sorted(v["version"] for v in versions) == [1, 2]
        assert root.ok("GET", f"/api/secrets/{sid}", params={"version": 1})["value"] == value[:-1] + "1"
    fields = json.loads(machine.request("GET", f"/v1/secret/{src.structured}").json()["value"])
    assert fields == {"user": "app", "password": "pw"}
    grants = root.ok("GET", f"/api/machines/{src.machine.id}/grants")
    assert all(sid in json.dumps(grants) for sid in [*src.secrets, src.structured])
    # New writes work (sequences and ids moved on) and both chains verify with the old key.
    root.ok("POST", f"/api/projects/{src.project}/secrets", {"name": "after-restore", "value": "x"})
    trusted = base64.b64decode(src.public_key)
    for chain in (src.vault, "system"):
        lines = export(root, chain)
        report = audit_verify.verify(lines, trusted_public_key=trusted, from_start=True)
        assert report.ok, report.problem
    # The backup's own record is written after its snapshot, so it is not in it; the restore is.
    actions = [line.get("action") for line in export(root, "system")]
    assert ("operator:backup:create" in actions) == backup_recorded
    assert "operator:backup:restore" in actions


PAIRS = [
    ("sqlite", "sqlite"),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module")
def backups(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[Source, Path]]]:
    """A populated server of each store kind, made on first use, and one backup of it (the
    server is stopped after the backup)."""
    made: dict[str, tuple[Source, Path]] = {}
    with contextlib.ExitStack() as stack:

        def get(kind: str) -> tuple[Source, Path]:
            if kind not in made:
                directory = tmp_path_factory.mktemp(f"backup-{kind}")
                server = Server(
                    stack.enter_context(store(kind, directory / "src")), directory / "data"
                ).start()
                try:
                    src = populate(server)
                    made[kind] = (src, take_backup(src.root, directory / "sikker.backup"))
                finally:
                    server.stop()
            return made[kind]

        yield get


@pytest.fixture
def backed_up(backups: Callable[[str], tuple[Source, Path]]) -> tuple[Source, Path]:
    """The SQLite server's backup, for the refusal tests."""
    return backups("sqlite")


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_a_backup_restores_into_either_store_and_the_old_shares_unseal_it(
    backups: Callable[[str], tuple[Source, Path]], tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    src, backup = backups(source_kind)
    with store(target_kind, tmp_path / "dst") as dst_url:
        summary = restore(backup, dst_url, src.shares[1:])
        assert summary.source_store == ("sqlite" if source_kind == "sqlite" else "postgresql")
        assert summary.rows > 0
        target = Server(dst_url, tmp_path / "dst-data").start()
        try:
            assert Api(target.url).ok("GET", "/api/sys/status")["sealed"] is True
            check_restored(src, target)
        finally:
            target.stop()


def table_rows(url: str) -> int:
    from sikker.storage import backup as backup_store

    db = Database(url)
    try:
        return sum(backup_store.occupied_tables(db).values())
    finally:
        db.dispose()


def test_a_non_empty_store_is_refused_without_force_and_replaced_with_it(
    backed_up: tuple[Source, Path], tmp_path: Path
) -> None:
    src, backup = backed_up
    url = f"sqlite:///{tmp_path / 'dst' / 'sikker.db'}"
    first = restore(backup, url, src.shares[:2])
    with pytest.raises(Conflict, match=r"not empty.*--force"):
        restore(backup, url, src.shares[:2])
    again = restore(backup, url, src.shares[:2], force=True)
    assert again.rows == first.rows
    # The backup's rows once: not counting the access epoch row (which migrations insert, so it
    # does not make a store "occupied"), plus the one record of the restore that happened.
    assert table_rows(url) == first.rows - 1 + 1


@pytest.mark.parametrize("target_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_restore_failing_half_way_leaves_the_target_empty_and_a_retry_needs_no_force(
    backed_up: tuple[Source, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target_kind: str
) -> None:
    """The third table's rows carry a duplicate primary key: the database refuses them after two
    tables went in. The one transaction rolls back: no table holds a row, and the same restore
    then succeeds without --force."""
    from sikker.storage import backup as backup_store

    src, backup = backed_up
    real = backup_store.insert_batch
    inserted: list[str] = []

    def insert_with_a_duplicate(conn: Any, spec: Any, rows: list[tuple[Any, ...]]) -> None:
        inserted.append(spec.name)
        real(conn, spec, rows + rows[:1] if len(inserted) == 3 and rows else rows)

    with store(target_kind, tmp_path / "dst") as url:
        monkeypatch.setattr(backup_store, "insert_batch", insert_with_a_duplicate)
        with pytest.raises(Conflict, match="conflicts with existing data"):
            restore(backup, url, src.shares[:2])
        assert len(inserted) >= 3  # two tables' rows were in before the failure
        assert table_rows(url) == 0
        monkeypatch.setattr(backup_store, "insert_batch", real)
        summary = restore(backup, url, src.shares[:2])
        assert table_rows(url) == summary.rows - 1 + 1  # as in the --force test above


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize("where", ["header", "middle", "trailer"])
def test_a_tampered_backup_is_refused_before_anything_is_written(
    backed_up: tuple[Source, Path], tmp_path: Path, where: str
) -> None:
    src, backup = backed_up
    data = backup.read_bytes()
    at = {"header": 20, "middle": len(data) // 2, "trailer": len(data) - 1}[where]
    bad = tmp_path / "bad.backup"
    bad.write_bytes(flip(data, at))
    url = f"sqlite:///{tmp_path / 'dst' / 'sikker.db'}"
    with pytest.raises(InvalidInput, match="truncated or damaged"):
        restore(bad, url, src.shares[:2])
    assert not (tmp_path / "dst").exists()


def test_a_truncated_backup_is_refused(backed_up: tuple[Source, Path], tmp_path: Path) -> None:
    _, backup = backed_up
    data = backup.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 10):
        bad = tmp_path / f"cut-{cut}.backup"
        bad.write_bytes(data[:cut])
        with pytest.raises(InvalidInput, match="truncated or damaged"):
            restoring.open_backup(bad)


def test_a_tampered_backup_with_a_recomputed_checksum_is_refused_and_nothing_written(
    backed_up: tuple[Source, Path], tmp_path: Path
) -> None:
    import hashlib

    src, backup = backed_up
    data = backup.read_bytes()
    body = flip(data[:-40], len(data) // 2)
    bad = tmp_path / "resummed.backup"
    bad.write_bytes(body + b"SKBKSUM1" + hashlib.sha256(body).digest())
    url = f"sqlite:///{tmp_path / 'dst' / 'sikker.db'}"
    with pytest.raises(InvalidInput, match="altered"):
        restore(bad, url, src.shares[:2])
    assert not (tmp_path / "dst").exists()


def test_a_backup_of_another_format_version_is_refused_and_nothing_written(
    backed_up: tuple[Source, Path], tmp_path: Path
) -> None:
    """Header version 2 with a valid checksum (so only the version is wrong)."""
    import hashlib

    src, backup = backed_up
    data = backup.read_bytes()
    line, rest = data[:-40].split(b"\n", 1)
    header = json.loads(line)
    assert header["version"] == 1
    body = json.dumps({**header, "version": 2}, separators=(",", ":")).encode() + b"\n" + rest
    bad = tmp_path / "v2.backup"
    bad.write_bytes(body + b"SKBKSUM1" + hashlib.sha256(body).digest())
    url = f"sqlite:///{tmp_path / 'dst' / 'sikker.db'}"
    with pytest.raises(InvalidInput, match="version 2 is not supported"):
        restore(bad, url, src.shares[:2])
    assert not (tmp_path / "dst").exists()


def test_the_shares_of_another_server_are_refused(backed_up: tuple[Source, Path]) -> None:
    _, backup = backed_up
    shares = [shamir.encode_share(s) for s in shamir.split(envelope.new_key(), 3, 2)]  # as init makes
    info = restoring.open_backup(backup)
    with pytest.raises(InvalidInput, match="do not unlock this backup"):
        restoring.unlock(info, shares[:2])


# -- a backup while writes go on -------------------------------------------------------------


@pytest.mark.parametrize("source_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_backup_taken_under_writes_restores_to_one_point_in_time(tmp_path: Path, source_kind: str) -> None:
    """A writer updates secrets over HTTP without pause while backups are taken. Each update
    commits a new version row, the secret's current version and an audit record in one
    transaction; a restored copy must hold all three or none of each update: per secret, the
    versions are exactly 1..current and the audit chain has exactly one create/update record
    per version. The chains verify."""
    with store(source_kind, tmp_path / "src") as url:
        src, backups, writes = backups_under_writes(url, tmp_path)
    assert writes > 0
    for i, backup in enumerate(backups):
        target_url = f"sqlite:///{tmp_path / f'dst{i}' / 'sikker.db'}"
        restore(backup, target_url, src.shares[:2])
        check_point_in_time(src, target_url, tmp_path / f"dst{i}-data")


def backups_under_writes(url: str, tmp_path: Path) -> tuple[Source, list[Path], int]:
    server = Server(url, tmp_path / "data").start()
    stop = threading.Event()
    writes = [0]
    try:
        src = populate(server)

        def writer() -> None:
            n = 0
            while not stop.is_set():
                for sid in src.secrets:
                    n += 1
                    src.root.ok("PUT", f"/api/secrets/{sid}", {"value": f"w{n}"})
                    writes[0] = n

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        while writes[0] < 10 and thread.is_alive():
            time.sleep(0.01)
        backups = []
        for i in range(5):  # until one backup ran while writes committed (the first, nearly always)
            before = writes[0]
            backup = take_backup(src.root, tmp_path / f"b{i}.backup")
            if writes[0] > before:
                backups.append(backup)
                break
        assert backups, "no write happened during a backup"
        stop.set()
        thread.join(30)
        check_backups_are_audited(src, backups[-1])
    finally:
        stop.set()
        server.stop()
    return src, backups, writes[0]


def check_backups_are_audited(src: Source, backup: Path) -> None:
    """Who, size and checksum in the system chain; a refused attempt (not root) too."""
    admin = src.root.ok("POST", "/api/tokens", {"vaultId": src.vault, "role": "owner"})["token"]
    assert Api(src.server.url, admin).raw("POST", "/api/sys/backup").status_code == 403
    records = [r for r in export(src.root, "system") if r.get("action") == "operator:backup:create"]
    data = backup.read_bytes()
    made = [r for r in records if r["result"] == "ok" and r["target"]["sha256"] == data[-32:].hex()]
    assert len(made) == 1 and made[0]["target"]["bytes"] == str(len(data)) and made[0]["actor_kind"] == "root"
    assert records[-1]["result"] == "denied" and records[-1]["actor_kind"] == "admin"


def check_point_in_time(src: Source, url: str, data_dir: Path) -> None:
    server = Server(url, data_dir).start()
    try:
        for share in src.shares[:2]:
            Api(server.url).ok("POST", "/api/sys/unseal", {"share": share})
        root = Api(server.url, src.root.headers["authorization"][7:])
        records = export(root, src.vault)
        for sid in src.secrets:
            secret = root.ok("GET", f"/api/secrets/{sid}")
            current = secret["version"]
            versions = sorted(
                v["version"] for v in root.ok("GET", f"/api/secrets/{sid}/versions")["versions"]
            )
            assert versions == list(range(1, current + 1)), (sid, current, versions[-3:])
            changes = [
                r
                for r in records
                if r.get("type") == "record"
                and r["target"].get("secret") == sid
                and r["action"] in ("admin:secret:create", "admin:secret:update")
            ]
            assert len(changes) == current, (sid, current, len(changes))
        trusted = base64.b64decode(src.public_key)
        assert audit_verify.verify(records, trusted_public_key=trusted, from_start=True).ok
    finally:
        server.stop()


def test_a_store_a_server_runs_on_is_not_restored_into_and_a_restore_keeps_servers_off(
    backed_up: tuple[Source, Path], database_url: str, tmp_path: Path
) -> None:
    """SQLite: an flock beside the file; PostgreSQL: an advisory lock in the database."""
    src, backup = backed_up
    url = database_url
    target = Server(url, tmp_path / "dst-data").start()
    try:
        with pytest.raises(Conflict, match=r"a server is running on .*: stop it before restoring"):
            restore(backup, url, src.shares[:2])
        assert Api(target.url).ok("GET", "/api/sys/status")["initialized"] is False  # untouched, serving
    finally:
        target.stop()
    assert restore(backup, url, src.shares[:2]).rows > 0  # once the server stopped
    # While a restore holds the store, a server on it refuses to start, saying why.
    with store_lock(url, exclusive=True), pytest.raises(RuntimeError, match="a restore is running on"):
        Server(url, tmp_path / "dst-data").start()
    restored = Server(url, tmp_path / "dst-data").start()
    try:
        assert Api(restored.url).ok("GET", "/api/sys/status")["sealed"] is True
    finally:
        restored.stop()


def _store_lock_holders(url: str) -> set[int]:
    """Backends holding the store's advisory lock shared (a bigint key: classid is its high
    half, objid its low half)."""
    import psycopg

    from sikker.storage.database import STORE_LOCK_KEY

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ShareLock'"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid = %s AND objid = %s AND objsubid = 1",
            (STORE_LOCK_KEY >> 32, STORE_LOCK_KEY & 0xFFFFFFFF),
        ).fetchall()
    return {pid for (pid,) in rows}


def test_a_server_that_loses_its_store_lock_on_postgresql_takes_it_again(
    backed_up: tuple[Source, Path], tmp_path: Path
) -> None:
    """The lock's session is killed (as a PostgreSQL restart would end it): within a check or
    two the server holds the lock on a new session, and a restore is refused again."""
    import psycopg

    src, backup = backed_up
    with fresh_pg_database() as url:
        server = Server(url, tmp_path / "data").start()
        try:
            (first,) = _store_lock_holders(url)
            with psycopg.connect(url, autocommit=True) as c:
                assert c.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
            deadline = time.monotonic() + 4 * database.STORE_LOCK_CHECK_SECONDS
            while (holders := _store_lock_holders(url)) in (set(), {first}) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert len(holders) == 1 and first not in holders
            with pytest.raises(Conflict, match=r"a server is running on .*: stop it before restoring"):
                restore(backup, url, src.shares[:2])
            assert Api(server.url).ok("GET", "/api/sys/status")["initialized"] is False  # still serving
        finally:
            server.stop()
        assert "took the store lock on" in server.log.read_text()


def test_a_backup_of_an_older_schema_restores_and_the_store_is_then_brought_to_head(
    backups: Callable[[str], tuple[Source, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup taken by a server whose schema was at an older revision (here 0012, before the
    ``login_failures`` table): the target is brought to that revision, filled, then migrated to
    head, and the restored server serves everything and has the newer table."""
    import shutil

    from sqlalchemy import inspect

    from sikker.config import Settings
    from sikker.core.model import Principal
    from sikker.service.bootstrap import bootstrap
    from sikker.storage import backup as backup_store

    older = "0012"
    src, _ = backups("sqlite")
    old_dir = tmp_path / "old"
    old_dir.mkdir(mode=0o700)
    for file in Path(src.server.database.removeprefix("sqlite:///")).parent.glob("sikker.db*"):
        shutil.copy(file, old_dir / file.name)
    old_url = f"sqlite:///{old_dir / 'sikker.db'}"
    old_db = Database(old_url)
    try:
        old_db.downgrade(older)
    finally:
        old_db.dispose()
    # The older server's backup: its own tables (what its metadata held), its own revision.
    services = bootstrap(Settings(database=old_url, data_dir=old_dir))
    try:
        for share in src.shares[:2]:
            services.seal.submit_share(share, OPERATOR)
        with services.deps.db.read() as conn:
            present = set(inspect(conn).get_table_names())
        assert "login_failures" not in present
        every = backup_store.table_specs()
        monkeypatch.setattr(backup_store, "table_specs", lambda: tuple(s for s in every if s.name in present))
        made = services.backup.create(Principal("root", "tok_test", None), OPERATOR)
        backup = tmp_path / "older.backup"
        with made.file:
            backup.write_bytes(made.file.read())
    finally:
        services.close()
    monkeypatch.undo()

    url = f"sqlite:///{tmp_path / 'dst' / 'sikker.db'}"
    summary = restore(backup, url, src.shares[:2])
    assert summary.schema_revision == older and summary.rows > 0
    db = Database(url)
    try:
        assert backup_store.target_revision(db) == database.HEAD
        with db.read() as conn:
            assert "login_failures" in inspect(conn).get_table_names()
    finally:
        db.dispose()
    target = Server(url, tmp_path / "dst-data").start()
    try:
        check_restored(src, target, backup_recorded=True)  # the first backup's, in the copied store
    finally:
        target.stop()
