"""Parsing sync-config and secret values; nothing secret in reprs or errors."""

from __future__ import annotations

from typing import Any

import pytest

from sikker.agent.config import parse_credentials, parse_sync_config
from sikker.errors import InvalidInput
from tests.unit.agent.fakes import FakeServer


def test_full_config_parses_with_sikker_extensions() -> None:
    raw = FakeServer.base_config(
        strategy="alternating",
        rotationStatus="pending",
        pendingRotationId="rot_1",
        pendingValue='{"username":"app_b","password":"pw"}',
        previousUsername="app",
        disablePreviousAt=1_784_893_492,
        unknownKey="ignored",
    )
    config = parse_sync_config(raw)
    assert config.strategy == "alternating" and config.pending
    assert config.connection.port == 5432 and config.connection.admin_user == "admin"
    assert (config.previous_username, config.disable_previous_at) == ("app", 1_784_893_492)
    assert "adm" not in repr(config.connection).replace("admin", "") and "pw" not in repr(config)


def test_official_server_config_without_extensions_defaults_to_single() -> None:
    raw = FakeServer.base_config()
    del raw["strategy"]
    raw["connection"]["port"] = "6379"
    raw["providerType"] = "redis"
    config = parse_sync_config(raw)
    assert config.strategy == "single" and config.connection.port == 6379 and not config.pending


def test_missing_port_uses_the_engine_default() -> None:
    raw = FakeServer.base_config(providerType="mysql")
    del raw["connection"]["port"]
    assert parse_sync_config(raw).connection.port == 3306


@pytest.mark.parametrize(
    "change",
    [
        {"strategy": "triple"},
        {"connection": "host=db"},
        {"pollIntervalSeconds": "soon"},
        {"providerType": 5},
        {"disablePreviousAt": True},
    ],
)
def test_malformed_configs_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="malformed sync-config"):
        parse_sync_config(FakeServer.base_config(**change))


def test_idle_status_means_no_pending_rotation() -> None:
    raw = FakeServer.base_config(pendingRotationId="r", pendingValue="{}", rotationStatus="idle")
    assert not parse_sync_config(raw).pending


def test_credentials_fall_back_to_the_managed_username_and_hide_the_password() -> None:
    creds = parse_credentials('{"password": "s3cr3t-canary"}', "app", "live value")
    assert creds.username == "app"
    assert "s3cr3t" not in repr(creds) and "s3cr3t" not in str(creds)


@pytest.mark.parametrize("value", ["not json s3cr3t", '["s3cr3t"]', '{"username": "a", "password": ""}'])
def test_bad_values_never_echo_their_text(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_credentials(value, "app", "pending value")
    assert "s3cr3t" not in caught.value.message and "pending value" in caught.value.message
