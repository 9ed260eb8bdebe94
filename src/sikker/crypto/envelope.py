"""Envelope encryption: every secret version gets a fresh data key.

Layout of every ciphertext blob (values and wrapped keys alike)::

    format version (1 byte) | nonce (12 bytes) | AES-256-GCM ciphertext + tag

Associated data binds a blob to where it belongs, so a blob copied to another
row, secret, version, project or vault fails to decrypt:

- value:        ``sikker/v1/value|vault|project|secret|version``
- data key:     ``sikker/v1/dek|vault|project|secret|version|key_version``
- project key:  ``sikker/v1/project-key|vault|project|key_version``
- root key:     ``sikker/v1/root-key``

The value's AAD omits the project key version on purpose: a key rotation
rewraps only the data key, the value ciphertext stays as it is.
Every failure raises the same ``InvalidCiphertext``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sikker.core.model import Sealed
from sikker.errors import InvalidCiphertext

FORMAT_V1 = 1
KEY_BYTES = 32
_NONCE_BYTES = 12
_HEADER = 1 + _NONCE_BYTES


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return bytes([FORMAT_V1]) + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < _HEADER + 16 or blob[0] != FORMAT_V1:
        raise InvalidCiphertext()
    try:
        return AESGCM(key).decrypt(blob[1:_HEADER], blob[_HEADER:], aad)
    except (InvalidTag, ValueError) as e:
        raise InvalidCiphertext() from e


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a secret version lives; becomes the associated data."""

    vault_id: str
    project_id: str
    secret_id: str
    version: int
    slot: str = ""  # e.g. a pending rotation's id: a value not yet a version

    def value_aad(self) -> bytes:
        base = f"sikker/v1/value|{self.vault_id}|{self.project_id}|{self.secret_id}|{self.version}"
        return (base + (f"|{self.slot}" if self.slot else "")).encode()

    def dek_aad(self, key_version: int) -> bytes:
        base = (
            f"sikker/v1/dek|{self.vault_id}|{self.project_id}|{self.secret_id}|{self.version}|{key_version}"
        )
        return (base + (f"|{self.slot}" if self.slot else "")).encode()


def seal_value(project_key: bytes, key_version: int, where: Binding, plaintext: bytes) -> Sealed:
    dek = new_key()
    return Sealed(
        ciphertext=encrypt(dek, plaintext, where.value_aad()),
        wrapped_dek=encrypt(project_key, dek, where.dek_aad(key_version)),
        key_version=key_version,
    )


def open_value(project_key: bytes, where: Binding, sealed: Sealed) -> bytes:
    dek = decrypt(project_key, sealed.wrapped_dek, where.dek_aad(sealed.key_version))
    return decrypt(dek, sealed.ciphertext, where.value_aad())


def rewrap(old_key: bytes, new_key_: bytes, new_version: int, where: Binding, sealed: Sealed) -> Sealed:
    """Move a data key from one project key version to another; the value is untouched."""
    dek = decrypt(old_key, sealed.wrapped_dek, where.dek_aad(sealed.key_version))
    return Sealed(
        ciphertext=sealed.ciphertext,
        wrapped_dek=encrypt(new_key_, dek, where.dek_aad(new_version)),
        key_version=new_version,
    )


def project_key_aad(vault_id: str, project_id: str, key_version: int) -> bytes:
    return f"sikker/v1/project-key|{vault_id}|{project_id}|{key_version}".encode()


ROOT_KEY_AAD = b"sikker/v1/root-key"
