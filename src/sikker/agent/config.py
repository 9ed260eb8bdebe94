"""The wire documents the agent reads: ``sync-config`` and secret values, parsed strictly.

Only this module looks at raw JSON from the server. The admin password and the pending
value never appear in a ``repr`` or in an error message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sikker.engines.base import DEFAULT_PORTS, STRATEGIES, Connection, Credentials, Strategy
from sikker.errors import InvalidInput

MIN_POLL_SECONDS = 5
DEFAULT_POLL_SECONDS = 10


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """What the server wants this agent to do for one secret."""

    provider_type: str
    connection: Connection
    managed_username: str
    poll_interval: int
    strategy: Strategy
    rotation_status: str = "idle"
    pending_rotation_id: str | None = None
    pending_value: str | None = field(default=None, repr=False)
    previous_username: str | None = None
    disable_previous_at: int | None = None

    @property
    def pending(self) -> bool:
        """A rotation is waiting for this agent."""
        return bool(self.pending_rotation_id and self.pending_value) and self.rotation_status != "idle"


def _text(data: dict[str, Any], key: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise InvalidInput(f"malformed sync-config: {key!r} must be a string")
    return value


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"malformed sync-config: {key!r} must be a string")
    return value


def _integer(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(f"malformed sync-config: {key!r} must be an integer")
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"malformed sync-config: {key!r} must be an integer") from None


def parse_sync_config(data: Any) -> SyncConfig:
    """A SyncConfig from the decoded JSON of ``GET /v1/secret/{id}/sync-config``."""
    if not isinstance(data, dict):
        raise InvalidInput("malformed sync-config: expected a JSON object")
    provider_type = _text(data, "providerType")
    raw = data.get("connection")
    if not isinstance(raw, dict):
        raise InvalidInput("malformed sync-config: 'connection' must be an object")
    port = raw.get("port")
    connection = Connection(
        host=_text(raw, "host"),
        port=_integer(port, "port") if port not in (None, "") else DEFAULT_PORTS.get(provider_type, 0),
        database=_text(raw, "database", ""),
        admin_user=_text(raw, "adminUser", ""),
        admin_pass=_text(raw, "adminPass", ""),
    )
    strategy = _text(data, "strategy", "single")
    if strategy not in STRATEGIES:
        raise InvalidInput(f"malformed sync-config: unknown strategy {strategy!r}")
    interval = data.get("pollIntervalSeconds")
    disable_at = data.get("disablePreviousAt")
    return SyncConfig(
        provider_type=provider_type,
        connection=connection,
        managed_username=_text(data, "managedUsername", ""),
        poll_interval=max(
            MIN_POLL_SECONDS,
            _integer(interval, "pollIntervalSeconds") if interval is not None else DEFAULT_POLL_SECONDS,
        ),
        strategy=strategy,  # checked against STRATEGIES above
        rotation_status=_text(data, "rotationStatus", "idle"),
        pending_rotation_id=_optional_text(data, "pendingRotationId"),
        pending_value=_optional_text(data, "pendingValue"),
        previous_username=_optional_text(data, "previousUsername"),
        disable_previous_at=_integer(disable_at, "disablePreviousAt") if disable_at is not None else None,
    )


def parse_credentials(value: str, default_username: str, what: str) -> Credentials:
    """The username and password in a structured secret value (JSON text of an object).

    ``what`` names the value in errors ("live value", "pending value"); the value itself
    is never quoted.
    """
    try:
        fields = json.loads(value)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        raise InvalidInput(f"the {what} is not a JSON object with username and password fields")
    username = fields.get("username") or default_username
    password = fields.get("password")
    if not isinstance(username, str) or not username:
        raise InvalidInput(f"the {what} has no 'username' field")
    if not isinstance(password, str) or not password:
        raise InvalidInput(f"the {what} has no 'password' field")
    return Credentials(username, password)
