"""Audit streams as a service, on both stores: who may add which stream, where a file stream
may write, which networks a stream may reach, and what the server logs about deliveries.

Receivers are real: a loopback HTTP server, UDP and TCP sockets, files on disk."""

from __future__ import annotations

import logging
import socket
import stat
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sikker.config import Settings
from sikker.core import audit
from sikker.core.model import AuditStream, Principal
from sikker.errors import InvalidInput, PermissionDenied
from sikker.service.audit_streams import StreamService
from sikker.service.bootstrap import Services, bootstrap
from sikker.storage import streams as stream_store
from tests.integration.conftest import Receiver

ROOT = Principal("root", "tok_root", None)
ROOT_ACTOR = audit.Actor("root", "tok_root", "127.0.0.1", "pytest")
ADMIN_ACTOR = audit.Actor("admin", "tok_admin", "127.0.0.1", "$(touch /tmp/pwned)")
LOOPBACK = ("127.0.0.0/8", "::1/128")
WAIT = 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


Factory = Callable[..., Services]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_services(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Factory]:
    """Services on a fresh store, initialised and unsealed; settings may be overridden once."""
    made: list[Services] = []

    def make(**settings: Any) -> Services:
        assert not made, "one store per test"
        svc = bootstrap(Settings(database=database_url, data_dir=tmp_path / "data", **settings), clock)
        svc.deps.db.migrate()
        shares = svc.seal.init(1, 1, ROOT_ACTOR).shares
        svc.seal.submit_share(shares[0], ROOT_ACTOR)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.streams.close()
        svc.close()


def vault_and_admin(svc: Services) -> tuple[str, Principal]:
    vault = svc.vaults.create_vault(ROOT, ROOT_ACTOR, "v").id
    return vault, Principal("admin", "tok_admin", vault)


def something_audited(svc: Services, vault: str, name: str = "p") -> None:
    svc.vaults.create_project(ROOT, ROOT_ACTOR, vault, name)


def deliveries(svc: Services, stream_id: str) -> list[dict[str, Any]]:
    return svc.streams.deliveries(ROOT, stream_id)


# --- webhook receiver --------------------------------------------------------------------


def hook_url(server: Receiver, path: str = "/audit") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


# --- finding 1: file streams are root-only and confined to the stream directory -----------


def test_a_vault_admin_cannot_add_a_file_stream(make_services: Factory, tmp_path: Path) -> None:
    svc = make_services()
    vault, admin = vault_and_admin(svc)
    seal_key = tmp_path / "seal.key"
    seal_key.write_bytes(b"k" * 32)
    for path in (str(seal_key), "audit.jsonl"):
        with pytest.raises(PermissionDenied, match="root token"):
            svc.streams.add(admin, ADMIN_ACTOR, vault, "jsonl", {"path": path}, None, "info")
    something_audited(svc, vault)
    svc.streams.dispatch_due()
    assert seal_key.read_bytes() == b"k" * 32
    assert svc.streams.list_streams(ROOT, None) == []


@pytest.mark.parametrize(
    "path",
    ["{outside}", "../escape.jsonl", "a/../../escape.jsonl", "..", "", "{dir}", "{dir}/../escape.jsonl"],
)
def test_a_file_stream_outside_the_stream_directory_is_refused(
    make_services: Factory, tmp_path: Path, path: str
) -> None:
    svc = make_services()
    vault, _ = vault_and_admin(svc)
    outside = tmp_path / "seal.key"
    given = path.format(outside=outside, dir=svc.deps.settings.stream_dir)
    with pytest.raises(InvalidInput, match="stream directory"):
        svc.streams.add(ROOT, ROOT_ACTOR, vault, "jsonl", {"path": given}, None, "info")
    assert not outside.exists() and not (tmp_path / "escape.jsonl").exists()


def test_a_file_stream_writes_under_the_stream_directory_0600_in_a_0700_directory(
    make_services: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path must not land in the working directory
    svc = make_services()
    vault, _ = vault_and_admin(svc)
    stream_dir = svc.deps.settings.stream_dir
    a, _ = svc.streams.add(ROOT, ROOT_ACTOR, vault, "jsonl", {"path": "team/audit.jsonl"}, None, "info")
    b, _ = svc.streams.add(ROOT, ROOT_ACTOR, None, "jsonl", {"path": f"{stream_dir}/all.jsonl"}, None, "info")
    assert (a.config["path"], b.config["path"]) == ("team/audit.jsonl", "all.jsonl")
    something_audited(svc, vault)
    assert svc.streams.dispatch_due() > 0
    written = stream_dir / "team" / "audit.jsonl"
    assert b"admin:project:create" in written.read_bytes()
    assert b"admin:project:create" in (stream_dir / "all.jsonl").read_bytes()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(stream_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700
    assert not (tmp_path / "team").exists()


def test_a_symlink_cannot_lead_a_file_stream_out_of_the_directory(
    make_services: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    svc = make_services()
    vault, _ = vault_and_admin(svc)
    stream_dir = svc.deps.settings.stream_dir
    stream_dir.mkdir(parents=True, mode=0o700)
    target = tmp_path / "bashrc"
    target.write_text("# rc\n")
    (stream_dir / "link.jsonl").symlink_to(target)
    (stream_dir / "sub").symlink_to(tmp_path, target_is_directory=True)
    for path in ("link.jsonl", "sub/x.jsonl"):
        with pytest.raises(InvalidInput, match="stream directory"):
            svc.streams.add(ROOT, ROOT_ACTOR, vault, "jsonl", {"path": path}, None, "info")
    # A symlink planted after the stream was added is not followed either.
    row, _ = svc.streams.add(ROOT, ROOT_ACTOR, vault, "jsonl", {"path": "later.jsonl"}, None, "info")
    (stream_dir / "later.jsonl").symlink_to(target)
    something_audited(svc, vault)
    with caplog.at_level(logging.WARNING, logger="sikker"):
        assert svc.streams.dispatch_due() == 0
    assert target.read_text() == "# rc\n"
    assert not (tmp_path / "x.jsonl").exists()
    assert deliveries(svc, row.id)[0]["result"] == "error"
    assert any(row.id in r.getMessage() for r in caplog.records)


def test_a_stored_file_stream_with_a_path_outside_the_directory_writes_nothing(
    make_services: Factory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Streams added before confinement may hold any absolute path: refused at dispatch."""
    svc = make_services()
    vault, _ = vault_and_admin(svc)
    seal_key = tmp_path / "seal.key"
    seal_key.write_bytes(b"k" * 32)
    old = AuditStream(
        "sink_old0000000000000000",
        vault,
        "jsonl",
        {"path": str(seal_key)},
        None,
        None,
        "info",
        {vault: 0},
        0,
        0,
        None,
        svc.deps.clock(),
    )
    with svc.deps.db.write() as conn:
        stream_store.insert_sink(conn, old)
    something_audited(svc, vault)
    with caplog.at_level(logging.WARNING, logger="sikker"):
        assert svc.streams.dispatch_due() == 0
    assert seal_key.read_bytes() == b"k" * 32
    (logged,) = deliveries(svc, old.id)
    assert logged["result"] == "error" and "stream directory" in logged["error"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and old.id in r.getMessage()]
    assert errors, caplog.text


# --- finding 5: streams do not reach internal networks unless the operator allows them ----


def test_a_loopback_webhook_is_refused_and_nothing_is_delivered(
    make_services: Factory, receiver: Receiver
) -> None:
    svc = make_services()
    vault, admin = vault_and_admin(svc)
    for who, actor in ((admin, ADMIN_ACTOR), (ROOT, ROOT_ACTOR)):
        with pytest.raises(PermissionDenied, match="stream_allowed_networks"):
            svc.streams.add(who, actor, vault, "webhook", {"url": hook_url(receiver)}, None, "info")
    something_audited(svc, vault)
    assert svc.streams.dispatch_due() == 0
    assert receiver.received.empty()


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("webhook", {"url": "https://10.0.0.7/hook"}),
        ("webhook", {"url": "https://169.254.169.254/latest/meta-data/"}),
        ("webhook", {"url": "https://[::1]:8443/"}),
        ("webhook", {"url": "https://[::ffff:127.0.0.1]/"}),
        ("webhook", {"url": "https://0.0.0.0/"}),
        ("webhook", {"url": "http://localhost:5432/"}),
        ("syslog", {"host": "127.0.0.1", "port": 5432, "protocol": "tcp"}),
        ("syslog", {"host": "192.168.1.10", "port": 514, "protocol": "udp"}),
        ("syslog", {"host": "fd00::1", "port": 514, "protocol": "udp"}),
        ("email", {"host": "127.0.0.1", "port": 25, "sender": "a@x.test", "recipients": ["b@x.test"]}),
        ("email", {"host": "172.16.0.1", "port": 25, "sender": "a@x.test", "recipients": ["b@x.test"]}),
    ],
)
def test_streams_to_internal_addresses_are_refused(
    make_services: Factory, kind: str, config: dict[str, Any]
) -> None:
    svc = make_services()
    vault, admin = vault_and_admin(svc)
    with pytest.raises(PermissionDenied, match="not allowed"):
        svc.streams.add(admin, ADMIN_ACTOR, vault, kind, config, None, "info")


def test_an_unresolvable_stream_host_is_refused(make_services: Factory) -> None:
    svc = make_services()
    vault, admin = vault_and_admin(svc)
    with pytest.raises(InvalidInput, match="resolve"):
        svc.streams.add(
            admin, ADMIN_ACTOR, vault, "webhook", {"url": "https://no-such-host.invalid/"}, None, "info"
        )


def test_the_allowlist_opens_loopback_and_delivery_rechecks_it(
    make_services: Factory, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    svc = make_services(stream_allowed_networks=LOOPBACK)
    vault, admin = vault_and_admin(svc)
    row, _ = svc.streams.add(admin, ADMIN_ACTOR, vault, "webhook", {"url": hook_url(receiver)}, None, "info")
    assert svc.streams.dispatch_due() == 1
    path, _, _ = receiver.received.get(timeout=WAIT)
    assert path == "/audit"
    # The operator removes the allowlist and restarts: the stored stream delivers nothing.
    svc.deps.settings = replace(svc.deps.settings, stream_allowed_networks=())
    restarted = StreamService(svc.deps)
    something_audited(svc, vault)
    with caplog.at_level(logging.WARNING, logger="sikker"):
        assert restarted.dispatch_due() == 0
    restarted.close()
    assert receiver.received.empty()
    assert "not allowed" in deliveries(svc, row.id)[0]["error"]


def test_syslog_to_an_allowed_loopback_collector_is_delivered(make_services: Factory) -> None:
    svc = make_services(stream_allowed_networks=LOOPBACK)
    vault, _ = vault_and_admin(svc)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(WAIT)
        config = {"host": "127.0.0.1", "port": udp.getsockname()[1], "protocol": "udp"}
        svc.streams.add(ROOT, ROOT_ACTOR, vault, "syslog", config, None, "info")
        assert svc.streams.dispatch_due() == 1
        assert b"admin.audit-stream.add" in udp.recv(65535)


# --- finding 10: webhook credentials stay out of the server log ----------------------------


def test_webhook_url_credentials_never_reach_the_log(
    make_services: Factory, receiver: Receiver, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    marker = "SECRET-t0ken-7f3a"
    caplog.set_level(logging.INFO)
    svc = make_services(stream_allowed_networks=LOOPBACK)
    vault, _ = vault_and_admin(svc)
    url = hook_url(receiver, f"/hooks/{marker}-path?token={marker}")
    url = url.replace("http://", f"http://user:{marker}@")
    row, _ = svc.streams.add(ROOT, ROOT_ACTOR, vault, "webhook", {"url": url}, None, "info")
    assert svc.streams.dispatch_due() == 1  # success: the HTTP client logs each request at INFO
    path, _, _ = receiver.received.get(timeout=WAIT)
    assert marker in path
    receiver.status = 500
    something_audited(svc, vault)
    assert svc.streams.dispatch_due() == 0  # failure: our own warning names the stream
    assert any(row.id in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert marker not in record.getMessage(), (record.name, record.getMessage())
    assert marker not in str(deliveries(svc, row.id))
