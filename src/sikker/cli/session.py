"""The CLI's saved sign-in: ``SIKKER_CONFIG_DIR/session.json`` (mode 0600), written by
``sikker login`` and used by every command when neither SIKKER_TOKEN nor --token-file is
given, only for the server address it was made for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click


def config_dir() -> Path:
    env = os.environ.get("SIKKER_CONFIG_DIR")
    return Path(env) if env else Path(click.get_app_dir("sikker"))


def _path() -> Path:
    return config_dir() / "session.json"


def _normal(addr: str) -> str:
    return addr.rstrip("/")


def save(addr: str, token: str, user: str, expires_ms: int) -> Path:
    path = _path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps({"addr": _normal(addr), "token": token, "user": user, "expiresAt": expires_ms})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(data)
    os.chmod(path, 0o600)
    return path


def load() -> dict[str, object] | None:
    try:
        data = json.loads(_path().read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def saved_token(addr: str) -> str | None:
    data = load()
    if data and data.get("addr") == _normal(addr) and isinstance(data.get("token"), str):
        return str(data["token"])
    return None


def forget() -> None:
    _path().unlink(missing_ok=True)
