"""Backups taken from a running server, restored offline, between SQLite and PostgreSQL
(docs/operator/backup.md)."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sikker.core import audit_verify
from sikker.core.audit import Actor
from sikker.errors import Conflict, InvalidInput
from sikker.service import restore as restoring
from sikker.storage.database import Database
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


def check_restored(src: Source, server: Server) -> None:
    """Old shares unseal it; values, versions, grants, the machine and the audit chains are back."""
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
    assert "operator:backup:create" not in actions and "operator:backup:restore" in actions


PAIRS = [
    ("sqlite", "sqlite"),
    pytest.param("sqlite", "postgres", marks=pytest.mark.postgres),
    pytest.param("postgres", "sqlite", marks=pytest.mark.postgres),
    pytest.param("postgres", "postgres", marks=pytest.mark.postgres),
]


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS)
def test_a_backup_restores_into_either_store_and_the_old_shares_unseal_it(
    tmp_path: Path, source_kind: str, target_kind: str
) -> None:
    with store(source_kind, tmp_path / "src") as src_url, store(target_kind, tmp_path / "dst") as dst_url:
        source = Server(src_url, tmp_path / "src-data").start()
        try:
            src = populate(source)
            backup = take_backup(src.root, tmp_path / "sikker.backup")
        finally:
            source.stop()
        summary = restore(backup, dst_url, src.shares[1:])
        assert summary.source_store == ("sqlite" if source_kind == "sqlite" else "postgresql")
        assert summary.rows > 0
        target = Server(dst_url, tmp_path / "dst-data").start()
        try:
            assert Api(target.url).ok("GET", "/api/sys/status")["sealed"] is True
            check_restored(src, target)
        finally:
            target.stop()


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Source, Path]]:
    """One SQLite server and a backup of it, for the refusal tests."""
    directory = tmp_path_factory.mktemp("backup")
    with store("sqlite", directory / "src") as url:
        server = Server(url, directory / "data").start()
        try:
            src = populate(server)
            yield src, take_backup(src.root, directory / "sikker.backup")
        finally:
            server.stop()


def table_rows(url: str) -> int:
    from sikker.storage import backup as backup_store

    return sum(backup_store.occupied_tables(Database(url)).values())


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


def test_the_shares_of_another_server_are_refused(backed_up: tuple[Source, Path], tmp_path: Path) -> None:
    _, backup = backed_up
    other = Server(f"sqlite:///{tmp_path / 'other' / 'sikker.db'}", tmp_path / "other-data").start()
    try:
        (tmp_path / "other").chmod(0o700)
        shares, _ = init_and_unseal(other.url, 3, 2)
    finally:
        other.stop()
    info = restoring.open_backup(backup)
    with pytest.raises(InvalidInput, match="do not unlock this backup"):
        restoring.unlock(info, shares[:2])


def test_a_backup_needs_the_root_token_and_every_backup_is_audited(backed_up: tuple[Source, Path]) -> None:
    src, backup = backed_up
    records = [r for r in export(src.root, "system") if r.get("action") == "operator:backup:create"]
    ok = [r for r in records if r["result"] == "ok"]
    assert ok and ok[-1]["target"]["sha256"] == backup.read_bytes()[-32:].hex()
    assert ok[-1]["target"]["bytes"] == str(len(backup.read_bytes()))
    assert ok[-1]["actor_kind"] == "root"


# -- a backup while writes go on -------------------------------------------------------------


def test_a_backup_taken_under_writes_restores_to_one_point_in_time(tmp_path: Path) -> None:
    """A writer updates secrets over HTTP without pause while backups are taken. Each update
    commits a new version row, the secret's current version and an audit record in one
    transaction; a restored copy must hold all three or none of each update: per secret, the
    versions are exactly 1..current and the audit chain has exactly one create/update record
    per version. The chains verify."""
    url = f"sqlite:///{tmp_path / 'src' / 'sikker.db'}"
    (tmp_path / "src").mkdir(mode=0o700)
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
        backups = []
        for i in range(3):
            backups.append(take_backup(src.root, tmp_path / f"b{i}.backup"))
        stop.set()
        thread.join(30)
    finally:
        stop.set()
        server.stop()
    assert writes[0] > 0
    for i, backup in enumerate(backups):
        target_url = f"sqlite:///{tmp_path / f'dst{i}' / 'sikker.db'}"
        restore(backup, target_url, src.shares[:2])
        check_point_in_time(src, target_url, tmp_path / f"dst{i}-data")


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
