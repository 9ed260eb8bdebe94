"""The agent's side of the sync-agent routes (wire contract §1.5), over any signed requester.

The CLI passes its ``MachineClient``; tests pass one built on ``httpx.MockTransport``. Only
``request(method, path, body)`` is used, so this package does not import the CLI.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Protocol

from sikker.agent.config import SyncConfig, parse_sync_config
from sikker.errors import InvalidInput, SikkerError

_ID = re.compile(r"[A-Za-z0-9_-]+")
MAX_ERROR_TEXT = 1000


class SignedRequester(Protocol):
    def request(self, method: str, path: str, body: bytes | None = None) -> Any: ...


def check_secret_id(secret_id: str) -> str:
    """Secret ids go into signed paths verbatim: letters, digits, '_' and '-' only."""
    if not _ID.fullmatch(secret_id):
        raise InvalidInput(f"invalid secret id {secret_id!r}")
    return secret_id


def _body(document: dict[str, str]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


class AgentApi:
    """Sync-config polling, live-value reads, heartbeats and rotation verdicts."""

    def __init__(self, requester: SignedRequester) -> None:
        self._requester = requester

    def _path(self, secret_id: str, suffix: str = "") -> str:
        return f"/v1/secret/{check_secret_id(secret_id)}{suffix}"

    def sync_config(self, secret_id: str) -> SyncConfig:
        return parse_sync_config(self._requester.request("GET", self._path(secret_id, "/sync-config")))

    def live_value(self, secret_id: str) -> str:
        """The live value's JSON text (the rollback copy)."""
        data = self._requester.request("GET", self._path(secret_id))
        if not isinstance(data, dict) or not isinstance(data.get("value"), str):
            raise SikkerError(f"malformed response for secret {secret_id}: no 'value'")
        return str(data["value"])

    def heartbeat(self, secret_id: str, status: Literal["healthy", "error"], error: str = "") -> None:
        body = _body({"status": status, "error": error[:MAX_ERROR_TEXT]})
        self._requester.request("POST", self._path(secret_id, "/agent/heartbeat"), body)

    def confirm(self, secret_id: str, rotation_id: str) -> None:
        body = _body({"rotationId": rotation_id})
        self._requester.request("POST", self._path(secret_id, "/agent/confirm-rotation"), body)

    def reject(self, secret_id: str, rotation_id: str, error: str) -> None:
        body = _body({"rotationId": rotation_id, "error": error[:MAX_ERROR_TEXT]})
        self._requester.request("POST", self._path(secret_id, "/agent/reject-rotation"), body)
