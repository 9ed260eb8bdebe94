"""The machine identity on disk, in the layout every SikkerKey client reads.

    BASE/vaults/<vaultId>/identity.json   0600, exactly five string keys
    BASE/vaults/<vaultId>/private.pem     0600, PKCS#8 v1 Ed25519 (48-byte DER)

BASE is ``$SIKKERKEY_HOME``, else ``~/.sikkerkey``; directories are 0700.
Nothing here ever prints or logs key material.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from sikker.errors import InvalidInput

IDENTITY_FILE = "identity.json"
KEY_FILE = "private.pem"
_VAULT_ID = re.compile(r"[A-Za-z0-9_-]+")
_BOOTSTRAP_ADVICE = "run 'sikker machine bootstrap --url URL --vault VAULT --token TOKEN' first"


@dataclass(frozen=True, slots=True)
class Identity:
    machine_id: str
    machine_name: str
    vault_id: str
    api_url: str
    private_key_path: Path


def base_dir() -> Path:
    """``$SIKKERKEY_HOME`` if set, else ``~/.sikkerkey``."""
    home = os.environ.get("SIKKERKEY_HOME")
    return Path(home) if home else Path.home() / ".sikkerkey"


def normalise_vault_id(vault: str) -> str:
    """``abc`` -> ``vault_abc``; refuses anything that could escape the vaults directory."""
    vault = vault.strip()
    if not _VAULT_ID.fullmatch(vault):
        raise InvalidInput(f"invalid vault id {vault!r}: use letters, digits, '_' and '-' only")
    return vault if vault.startswith("vault_") else f"vault_{vault}"


def vault_dir(vault_id: str) -> Path:
    return base_dir() / "vaults" / normalise_vault_id(vault_id)


def resolve(vault_or_path: str | None) -> Path:
    """The identity.json to use, by the resolution order all SikkerKey SDKs share.

    1. an argument that starts with '/' or contains 'identity.json' is a path;
    2. any other argument is a vault id (``vault_`` prepended if missing);
    3. ``$SIKKERKEY_IDENTITY``; 4. ``$SIKKERKEY_VAULT``;
    5. the only ``BASE/vaults/*/identity.json`` on disk.
    """
    if vault_or_path:
        if vault_or_path.startswith("/") or IDENTITY_FILE in vault_or_path:
            return Path(vault_or_path).expanduser()
        return _vault_identity(vault_or_path)
    if env_path := os.environ.get("SIKKERKEY_IDENTITY"):
        return Path(env_path).expanduser()
    if env_vault := os.environ.get("SIKKERKEY_VAULT"):
        return _vault_identity(env_vault)
    vaults = base_dir() / "vaults"
    found = sorted(vaults.glob(f"*/{IDENTITY_FILE}")) if vaults.is_dir() else []
    if not found:
        raise InvalidInput(f"no machine identity found under {vaults}: {_BOOTSTRAP_ADVICE}")
    if len(found) > 1:
        names = ", ".join(p.parent.name for p in found)
        raise InvalidInput(
            f"several machine identities found ({names}): choose one with --vault or SIKKERKEY_VAULT"
        )
    return found[0]


def _vault_identity(vault: str) -> Path:
    path = vault_dir(vault) / IDENTITY_FILE
    if not path.is_file():
        raise InvalidInput(
            f"no identity for vault {normalise_vault_id(vault)} at {path}: {_BOOTSTRAP_ADVICE}"
        )
    return path


def load(path: Path) -> tuple[Identity, Ed25519PrivateKey]:
    """Read identity.json and the Ed25519 key it points to."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise InvalidInput(f"identity file not found: {path}; {_BOOTSTRAP_ADVICE}") from e
    except OSError as e:
        raise InvalidInput(f"cannot read identity file {path}: {e.strerror}") from e
    except ValueError as e:
        raise InvalidInput(f"identity file {path} is not valid JSON") from e
    if not isinstance(raw, dict):
        raise InvalidInput(f"identity file {path} must hold a JSON object")

    def field(key: str, required: bool = True) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise InvalidInput(f"identity file {path} lacks a string {key!r}")
        return value.strip()

    key_text = field("privateKeyPath", required=False)
    key_path = Path(key_text).expanduser() if key_text else path.parent / KEY_FILE
    if not key_path.is_absolute():
        key_path = path.parent / key_path
    identity = Identity(
        machine_id=field("machineId"),
        machine_name=field("machineName", required=False),
        vault_id=field("vaultId"),
        api_url=field("apiUrl").rstrip("/"),
        private_key_path=key_path,
    )
    return identity, _load_key(key_path)


def _load_key(path: Path) -> Ed25519PrivateKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError as e:
        raise InvalidInput(f"private key not found: {path}") from e
    except OSError as e:
        raise InvalidInput(f"cannot read private key {path}: {e.strerror}") from e
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        # The parser's message is not shown: it is about key bytes.
        raise InvalidInput(f"private key {path} is not an unencrypted PEM private key") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"private key {path} is not an Ed25519 key")
    return key


def write(
    vault_id: str, machine_id: str, machine_name: str, api_url: str, private_key: Ed25519PrivateKey
) -> Path:
    """Store an identity (replacing any previous one for the vault); returns identity.json's path."""
    folder = vault_dir(vault_id)
    _make_private_dirs(folder)
    key_path = folder / KEY_FILE
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # The key goes first so identity.json never names a key that is not there yet.
    _write_atomically(key_path, pem)
    document = {
        "machineId": machine_id,
        "machineName": machine_name,
        "vaultId": normalise_vault_id(vault_id),
        "apiUrl": api_url.rstrip("/"),
        "privateKeyPath": str(key_path.absolute()),
    }
    identity_path = folder / IDENTITY_FILE
    _write_atomically(identity_path, (json.dumps(document, indent=2) + "\n").encode())
    return identity_path


def _make_private_dirs(folder: Path) -> None:
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    os.chmod(folder, 0o700)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
