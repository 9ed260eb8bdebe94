"""Fakes for the agent's unit tests: an in-memory database provider and a sync-agent server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sikker.agent.server import AgentApi
from sikker.cli.identity import Identity
from sikker.cli.machine_client import MachineClient
from sikker.engines.base import Connection, ProviderError, Strategy, UnsupportedStrategy

KEY = Ed25519PrivateKey.generate()
IDENTITY = Identity("m-1", "db-host", "vault_abc", "http://localhost:8300", Path("/unused/private.pem"))
ADMIN = "admin"


@dataclass
class FakeUser:
    passwords: set[str]
    enabled: bool = True


@dataclass
class FakeDatabase:
    """A provider over an in-memory user table, with failure switches and a call log."""

    users: dict[str, FakeUser] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    fail_apply: str | None = None  # message of a ProviderError raised by apply
    fail_rollback: str | None = None
    apply_breaks_login: bool = False  # apply "succeeds" but the new password never works
    unreachable: bool = False  # can_login raises, as when the database is down
    dual_supported: bool = True
    admin_problems: list[str] = field(default_factory=list)

    def add(self, name: str, password: str) -> None:
        self.users[name] = FakeUser({password})

    def test_admin(self) -> list[str]:
        self.calls.append(("test_admin",))
        return list(self.admin_problems)

    def check_strategy(self, strategy: Strategy) -> list[str]:
        self.calls.append(("check_strategy", strategy))
        return []  # dual_supported=False shows the refusal at rotation time

    def can_login(self, username: str, password: str) -> bool:
        self.calls.append(("can_login", username))
        if self.unreachable:
            raise ProviderError("cannot log in: connection refused")
        user = self.users.get(username)
        return bool(user and user.enabled and password in user.passwords)

    def apply(self, strategy: Strategy, username: str, password: str, base_username: str) -> None:
        self.calls.append(("apply", strategy, username, base_username))
        if strategy == "dual" and not self.dual_supported:
            raise UnsupportedStrategy(
                "dual password is not supported by FakeDB; use the alternating strategy"
            )
        if self.fail_apply:
            raise ProviderError(self.fail_apply)
        stored = "broken" if self.apply_breaks_login else password
        user = self.users.setdefault(username, FakeUser(set()))
        if strategy == "dual":
            user.passwords.add(stored)
        else:
            user.passwords = {stored}
        user.enabled = True

    def rollback(
        self, strategy: Strategy, username: str, live_username: str, live_password: str, pending_password: str
    ) -> None:
        self.calls.append(("rollback", strategy, username, live_username))
        if self.fail_rollback:
            raise ProviderError(self.fail_rollback)
        if strategy == "alternating":
            if username != live_username:
                self.users[username].enabled = False
        elif strategy == "dual":
            self.users[live_username].passwords.discard(pending_password)
            self.users[live_username].passwords.discard("broken")
        else:
            self.users[live_username].passwords = {live_password}

    def disable(self, username: str) -> None:
        self.calls.append(("disable", username))
        if username in self.users:
            self.users[username].enabled = False

    def discard_old(self, username: str, current_password: str) -> None:
        self.calls.append(("discard_old", username))
        self.users[username].passwords = {current_password}

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]


def creds(username: str, password: str, **extra: str) -> str:
    return json.dumps({"username": username, "password": password, **extra})


class FakeServer:
    """The sync-agent routes of a Sikker server, in memory; confirm promotes pending to live."""

    def __init__(self, live: str, config: dict[str, Any]) -> None:
        self.live = live
        self.config = config
        self.requests: list[tuple[str, str, Any]] = []
        self.status_for: dict[str, int] = {}  # path suffix -> forced error status

    @staticmethod
    def base_config(**overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {
            "providerType": "fake",
            "connection": {
                "host": "db",
                "port": 5432,
                "database": "app",
                "adminUser": ADMIN,
                "adminPass": "adm",
            },
            "managedUsername": "app",
            "pollIntervalSeconds": 10,
            "rotationStatus": "idle",
            "strategy": "single",
        }
        config.update(overrides)
        return config

    def pend(self, rotation_id: str, value: str) -> None:
        self.config.update(rotationStatus="pending", pendingRotationId=rotation_id, pendingValue=value)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body))
        for suffix, status in self.status_for.items():
            if path.endswith(suffix):
                return httpx.Response(status, json={"error": f"forced {status}"})
        if path.endswith("/sync-config"):
            return httpx.Response(200, json=self.config)
        if path.endswith("/agent/confirm-rotation"):
            self.live = self.config.pop("pendingValue")
            self.config.pop("pendingRotationId")
            self.config["rotationStatus"] = "idle"
            return httpx.Response(200, json={})
        if path.endswith("/agent/reject-rotation"):
            for key in ("pendingValue", "pendingRotationId"):
                self.config.pop(key, None)
            self.config["rotationStatus"] = "idle"
            return httpx.Response(200, json={})
        if path.endswith("/agent/heartbeat"):
            return httpx.Response(200, json={})
        return httpx.Response(200, json={"value": self.live})

    def posts(self, suffix: str) -> list[Any]:
        return [body for method, path, body in self.requests if method == "POST" and path.endswith(suffix)]


def api_for(server: FakeServer) -> AgentApi:
    client = MachineClient(IDENTITY, KEY, transport=httpx.MockTransport(server), clock=lambda: 1_784_893_492)
    return AgentApi(client)


def connection() -> Connection:
    return Connection("db", 5432, "app", ADMIN, "adm")
