"""The in-memory keyring: the root key and the project keys it unwraps.

The root key exists only here, in server memory, while the server is unsealed.
Project keys are versioned; the newest version encrypts, every version
decrypts. Unwrapped project keys are cached until the server seals.
"""

from __future__ import annotations

import threading

from sikker.crypto import backup_file, envelope
from sikker.errors import Sealed


class Keyring:
    def __init__(self) -> None:
        self._root: bytes | None = None
        self._project_keys: dict[tuple[str, str, int], bytes] = {}
        self._lock = threading.Lock()

    @property
    def sealed(self) -> bool:
        return self._root is None

    def load(self, root_key: bytes) -> None:
        with self._lock:
            self._root = root_key
            self._project_keys.clear()

    def clear(self) -> None:
        """Forget every key (seal)."""
        with self._lock:
            self._root = None
            self._project_keys.clear()

    def _root_key(self) -> bytes:
        root = self._root
        if root is None:
            raise Sealed()
        return root

    def wrap_project_key(self, vault_id: str, project_id: str, version: int, key: bytes) -> bytes:
        aad = envelope.project_key_aad(vault_id, project_id, version)
        return envelope.encrypt(self._root_key(), key, aad)

    def wrap(self, aad: bytes, data: bytes) -> bytes:
        """Encrypt a small blob (e.g. the audit signing key) under the root key."""
        return envelope.encrypt(self._root_key(), data, aad)

    def backup_key(self, salt: bytes) -> bytes:
        """The key of one backup file (HKDF over the root key; crypto/backup_file.py)."""
        return backup_file.derive_key(self._root_key(), salt)

    def unwrap(self, aad: bytes, blob: bytes) -> bytes:
        return envelope.decrypt(self._root_key(), blob, aad)

    def project_key(self, vault_id: str, project_id: str, version: int, wrapped: bytes) -> bytes:
        """Unwrap (and cache) a project key version."""
        root = self._root_key()
        cached = self._project_keys.get((vault_id, project_id, version))
        if cached is not None:
            return cached
        key = envelope.decrypt(root, wrapped, envelope.project_key_aad(vault_id, project_id, version))
        with self._lock:
            if self._root is root:
                self._project_keys[(vault_id, project_id, version)] = key
        return key
