"""Where the server connects for a dynamic secret (src/sikker/service/dynamic_targets.py): the
outbound network policy (``dynamic_allowed_networks``), checked at every call, on the resolved
address that the driver is then handed (no second lookup)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from sikker.config import Settings
from sikker.core.dynamic import Snapshot
from sikker.engines.base import Connection, DynamicProvider
from sikker.service.base import Deps
from sikker.service.dynamic_targets import DatabaseUnavailable, TargetRefused, Targets

SECRET = "sk_0123456789abcdef"
ADMIN = ("admin", "admin-password", 1)


def snapshot(host: str, port: int = 5432) -> Snapshot:
    return Snapshot(
        engine="postgresql",
        host=host,
        port=port,
        database="app",
        admin_secret_id="sk_fedcba9876543210",
        grant_role="app_ro",
        username="sk_x_user",
        revocation_statements=(),
    )


@dataclass
class World:
    """Targets over fake DNS and a factory that records where a provider would connect."""

    answers: dict[str, list[str]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    opened: list[Connection] = field(default_factory=list)
    deps: Any = None
    targets: Targets = field(init=False)

    def __post_init__(self) -> None:
        self.deps = Deps(db=cast(Any, None), keyring=cast(Any, None), settings=Settings())
        self.targets = Targets(self.deps, factory=self.factory, resolver=self.resolve)

    def allow(self, *networks: str) -> None:
        self.deps.settings = Settings(dynamic_allowed_networks=networks)

    def resolve(self, host: str, port: int) -> Sequence[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError("no such host")
        return self.answers[host]

    def factory(self, engine: str, target: Connection) -> DynamicProvider:
        self.opened.append(target)
        return cast(DynamicProvider, object())

    def call(self, host: str) -> None:
        self.targets.call(SECRET, snapshot(host), ADMIN, lambda provider: None)


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.9.9",
        "::1",
        "[::1]",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "169.254.1.1",
        "fe80::1",
        "fd00::1",
        "224.0.0.1",
        "localhost",
        "mixed.example",
    ],
)
def test_internal_addresses_are_refused_before_any_connection(host: str) -> None:
    world = World(answers={"localhost": ["127.0.0.1", "::1"], "mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(TargetRefused, match="dynamic_allowed_networks") as refused:
        world.call(host)
    assert f"database for dynamic secret {SECRET}" in refused.value.message
    assert refused.value.http_status == 503
    assert world.opened == []


def test_a_public_address_is_pinned_and_handed_to_the_driver() -> None:
    world = World(answers={"db.example": ["93.184.216.34", "93.184.216.35"]})
    world.call("db.example")
    (target,) = world.opened
    assert (target.host, target.address, target.dial) == ("db.example", "93.184.216.34", "93.184.216.34")
    assert world.lookups == ["db.example"]  # one lookup per call: the driver gets the address


def test_an_allowed_network_opens_loopback_and_private_addresses() -> None:
    world = World(answers={"localhost": ["127.0.0.1"], "db.internal": ["10.20.0.5"]})
    world.allow("127.0.0.0/8", "10.20.0.0/16")
    world.call("localhost")
    world.call("db.internal")
    world.call("127.0.0.1")
    assert [t.address for t in world.opened] == ["127.0.0.1", "10.20.0.5", "127.0.0.1"]
    with pytest.raises(TargetRefused):
        world.call("10.21.0.1")  # outside the allowed networks


def test_metadata_addresses_stay_refused_inside_an_allowed_network() -> None:
    world = World()
    world.allow("169.254.0.0/16")
    world.call("169.254.1.1")
    with pytest.raises(TargetRefused):
        world.call("169.254.169.254")
    assert [t.address for t in world.opened] == ["169.254.1.1"]


def test_every_address_a_name_resolves_to_must_be_allowed() -> None:
    world = World(answers={"db.internal": ["10.20.0.5", "127.0.0.1"]})
    world.allow("10.20.0.0/16")
    with pytest.raises(TargetRefused, match=r"db\.internal \(127\.0\.0\.1\)"):
        world.call("db.internal")
    assert world.opened == []


def test_the_setting_is_read_at_every_call() -> None:
    """An operator who narrows the setting stops the very next call (mint, renew, revoke)."""
    world = World()
    world.allow("127.0.0.0/8")
    world.call("127.0.0.1")
    world.allow()
    with pytest.raises(TargetRefused):
        world.call("127.0.0.1")
    assert len(world.opened) == 1


def test_a_second_answer_of_the_resolver_is_never_used() -> None:
    """DNS rebinding: each call resolves once and connects to what it checked."""
    world = World(answers={"flip.example": ["93.184.216.34"]})
    world.call("flip.example")
    world.answers["flip.example"] = ["127.0.0.1"]
    with pytest.raises(TargetRefused):
        world.call("flip.example")
    assert [t.address for t in world.opened] == ["93.184.216.34"]


def test_a_name_that_does_not_resolve_is_unavailable_not_refused() -> None:
    world = World()
    with pytest.raises(DatabaseUnavailable, match=r"is unreachable: cannot resolve nowhere\.example") as e:
        world.call("nowhere.example")
    assert not isinstance(e.value, TargetRefused)
    assert world.opened == []
