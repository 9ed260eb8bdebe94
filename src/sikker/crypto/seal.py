"""Seal providers: where the unseal key comes from.

The unseal key wraps the root key (``envelope.ROOT_KEY_AAD``); the wrapped root
key is stored in the database. A wrong unseal key fails the AES-GCM check, so
a wrong or corrupted set of shares is detected and never yields a wrong key.

- ``shamir``: the unseal key is split into shares at init; operators feed
  ``threshold`` of them to unseal.
- ``keyfile``: auto-unseal from a file holding the key (base64, mode 0600), for
  containers, systemd credentials and dev mode.

Other providers (PKCS#11, cloud KMS) implement ``AutoUnseal``.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Protocol

from sikker.crypto import envelope
from sikker.errors import InvalidInput, Unavailable


class AutoUnseal(Protocol):
    kind: str

    @property
    def location(self) -> str:
        """Where the unseal key lives (a path, a key name): shown to operators, never the key."""

    def create_key(self) -> bytes:
        """Make (and persist where the provider keeps it) a new unseal key."""

    def load_key(self) -> bytes:
        """Return the unseal key, or raise Unavailable."""


class KeyFileSeal:
    kind = "keyfile"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def location(self) -> str:
        return str(self.path.absolute())

    def create_key(self) -> bytes:
        if self.path.exists():
            return self.load_key()
        key = envelope.new_key()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(base64.b64encode(key).decode() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return key

    def load_key(self) -> bytes:
        try:
            mode = self.path.stat().st_mode
            text = self.path.read_text()
        except OSError as e:
            raise Unavailable(f"cannot read seal key file {self.path}: {e.strerror}") from e
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InvalidInput(f"seal key file {self.path} must not be readable by others (chmod 600)")
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except ValueError as e:
            raise InvalidInput(f"seal key file {self.path} is not valid base64") from e
        if len(key) != envelope.KEY_BYTES:
            raise InvalidInput(f"seal key file {self.path} must hold a 32-byte key")
        return key


def wrap_root(unseal_key: bytes, root_key: bytes) -> bytes:
    return envelope.encrypt(unseal_key, root_key, envelope.ROOT_KEY_AAD)


def unwrap_root(unseal_key: bytes, wrapped: bytes) -> bytes:
    """Raises InvalidCiphertext when the unseal key is wrong."""
    return envelope.decrypt(unseal_key, wrapped, envelope.ROOT_KEY_AAD)
