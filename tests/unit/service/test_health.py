"""Readiness never waits on a hanging store longer than its bound, and never piles probes up."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from sikker.crypto.keyring import Keyring
from sikker.errors import StoreUnavailable, Unavailable
from sikker.service import health
from sikker.service.health import HealthService


@dataclass
class FakeDb:
    mode: str = "ok"  # ok | down | hang
    release: threading.Event = field(default_factory=threading.Event)
    calls: int = 0

    def ping(self) -> None:
        self.calls += 1
        if self.mode == "down":
            raise StoreUnavailable()
        if self.mode == "hang":
            self.release.wait(30)


@dataclass
class FakeDeps:
    db: FakeDb
    keyring: Keyring


def service(mode: str, unsealed: bool = True) -> tuple[HealthService, FakeDb]:
    keyring = Keyring()
    if unsealed:
        keyring.load(bytes(32))
    db = FakeDb(mode)
    return HealthService(FakeDeps(db, keyring)), db  # type: ignore[arg-type]


def test_ready_when_unsealed_and_the_store_answers() -> None:
    svc, _ = service("ok")
    assert svc.unready_because() is None


def test_sealed_is_not_ready_and_the_store_is_not_asked() -> None:
    svc, db = service("ok", unsealed=False)
    assert svc.unready_because() == "sealed"
    assert db.calls == 0


def test_a_store_that_refuses_is_unreachable() -> None:
    svc, _ = service("down")
    assert svc.unready_because() == "store unreachable"


def test_a_hanging_store_is_unreachable_after_the_bound_and_probes_do_not_pile_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "READY_TIMEOUT_S", 0.05)
    svc, db = service("hang")
    assert svc.unready_because() == "store unreachable"
    assert svc.unready_because() == "store unreachable"  # the first check is still out
    assert db.calls == 1
    db.release.set()
    db.mode = "ok"
    for _ in range(200):  # the hung check comes back; the next probe checks again
        if svc.unready_because() is None:
            break
        threading.Event().wait(0.01)
    assert svc.unready_because() is None and db.calls >= 2


@dataclass
class FakeHsm:
    kind: str = "pkcs11"
    up: bool = True
    checks: int = 0

    def check(self) -> None:
        self.checks += 1
        if not self.up:
            raise Unavailable("HSM: GeneralError on token 'sikker'")


def test_the_seal_provider_is_checked_cached_and_each_change_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hsm = FakeHsm()
    svc = HealthService(FakeDeps(FakeDb(), Keyring()), hsm)  # type: ignore[arg-type]
    first = svc.seal_provider()
    assert first is not None and (first.kind, first.ok, first.error) == ("pkcs11", True, "")
    assert svc.seal_provider() is first and hsm.checks == 1  # fresh enough: not checked again
    hsm.up = False
    for _ in range(3):
        down = svc.seal_provider(max_age_s=0)
        assert down is not None and not down.ok and down.error == "HSM: GeneralError on token 'sikker'"
    hsm.up = True
    again = svc.check_seal_provider()
    assert again is not None and again.ok and hsm.checks == 5
    messages = [r.getMessage() for r in caplog.records if r.name == "sikker.seal"]
    assert messages == [
        "seal provider pkcs11 unusable: HSM: GeneralError on token 'sikker' "
        "(still serving: the root key is in memory)",
        "seal provider pkcs11 usable again",
    ]


def test_a_key_file_or_shamir_seal_has_no_provider_state() -> None:
    assert HealthService(FakeDeps(FakeDb(), Keyring())).seal_provider() is None  # type: ignore[arg-type]
    assert HealthService(FakeDeps(FakeDb(), Keyring()), object()).seal_provider() is None  # type: ignore[arg-type]
