"""Seal providers: where the unseal key comes from.

The unseal key wraps the root key (``envelope.ROOT_KEY_AAD``); the wrapped root
key is stored in the database. A wrong unseal key fails the AES-GCM check, so
a wrong or corrupted set of shares is detected and never yields a wrong key.

- ``shamir``: the unseal key is split into shares at init; operators feed
  ``threshold`` of them to unseal.
- ``keyfile``: auto-unseal from a file holding the key (base64, mode 0600), for
  containers, systemd credentials and dev mode.
- ``pkcs11``: auto-unseal through an AES key held in an HSM (``crypto/pkcs11_seal.py``); the
  root key is ALSO wrapped by a recovery key split into Shamir shares at init, so losing the
  HSM is not losing the data. Its stored blob is ``pack_recovery(hsm part, shares part)``.

Auto-unseal providers implement ``AutoUnseal``: they wrap and unwrap the root key.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Protocol

from sikker.crypto import envelope
from sikker.errors import InvalidCiphertext, InvalidInput, Unavailable


class AutoUnseal(Protocol):
    kind: str
    # True: init also prints recovery shares (Shamir) that unseal without the provider.
    recovery_shares: bool

    @property
    def location(self) -> str:
        """Where the unseal key lives (a path, a key name): shown to operators, never the key."""

    def wrap(self, root_key: bytes) -> bytes:
        """Wrap the root key (creating the provider's key first where the provider does)."""

    def unwrap(self, blob: bytes) -> bytes:
        """The root key; Unavailable when the provider cannot be used, InvalidCiphertext when
        its key is not the one that wrapped ``blob``."""


class KeyFileSeal:
    kind = "keyfile"
    recovery_shares = False

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

    def wrap(self, root_key: bytes) -> bytes:
        return wrap_root(self.create_key(), root_key)

    def unwrap(self, blob: bytes) -> bytes:
        return unwrap_root(self.load_key(), blob)


_RECOVERY_V1 = b"\x01"


def pack_recovery(provider_part: bytes, shares_part: bytes) -> bytes:
    """One stored blob for a seal with recovery shares: version | len | provider part | shares part."""
    return _RECOVERY_V1 + len(provider_part).to_bytes(2, "big") + provider_part + shares_part


def provider_part(kind: str, wrapped: bytes) -> bytes:
    """What the auto-unseal provider unwraps (the whole blob for a key file)."""
    return _split(wrapped)[0] if kind == "pkcs11" else wrapped


def shares_part(kind: str, wrapped: bytes) -> bytes:
    """What the (unseal or recovery) shares unwrap."""
    return _split(wrapped)[1] if kind == "pkcs11" else wrapped


def _split(wrapped: bytes) -> tuple[bytes, bytes]:
    if wrapped[:1] != _RECOVERY_V1 or len(wrapped) < 3:
        raise InvalidCiphertext()
    size = int.from_bytes(wrapped[1:3], "big")
    return wrapped[3 : 3 + size], wrapped[3 + size :]


def wrap_root(unseal_key: bytes, root_key: bytes) -> bytes:
    return envelope.encrypt(unseal_key, root_key, envelope.ROOT_KEY_AAD)


def unwrap_root(unseal_key: bytes, wrapped: bytes) -> bytes:
    """Raises InvalidCiphertext when the unseal key is wrong."""
    return envelope.decrypt(unseal_key, wrapped, envelope.ROOT_KEY_AAD)
