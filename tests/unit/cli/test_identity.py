"""The on-disk machine identity: layout, permissions, resolution, and the official SDK reading it."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from sikker.cli import identity
from sikker.errors import InvalidInput

MACHINE_ID = "a7f3c2e1-9b4d-4f8a-b6d5-3e1c7a9f2b4d"
API_URL = "http://localhost:8300"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    base = tmp_path / "sk-home"
    monkeypatch.setenv("SIKKERKEY_HOME", str(base))
    for var in ("SIKKERKEY_IDENTITY", "SIKKERKEY_VAULT", "SIKKERKEY_API_URL"):
        monkeypatch.delenv(var, raising=False)
    return base


def enroll(vault: str = "vault_abc", machine_id: str = MACHINE_ID) -> tuple[Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return identity.write(vault, machine_id, "worker-1", API_URL + "/", key), key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_base_dir_is_sikkerkey_home_else_dot_sikkerkey(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert identity.base_dir() == home
    monkeypatch.delenv("SIKKERKEY_HOME")
    assert identity.base_dir() == Path.home() / ".sikkerkey"


def test_written_identity_loads_back(home: Path) -> None:
    path, key = enroll()
    assert path == home / "vaults" / "vault_abc" / "identity.json"
    loaded, loaded_key = identity.load(path)
    assert loaded == identity.Identity(
        MACHINE_ID, "worker-1", "vault_abc", API_URL, path.parent / "private.pem"
    )
    assert loaded_key.sign(b"m") == key.sign(b"m")


def test_directories_are_0700_and_files_0600(home: Path) -> None:
    path, _ = enroll()
    for folder in (home, home / "vaults", path.parent):
        assert mode(folder) == 0o700
    assert mode(path) == 0o600
    assert mode(path.parent / "private.pem") == 0o600


def test_identity_json_has_exactly_the_five_string_keys(home: Path) -> None:
    path, _ = enroll()
    document = json.loads(path.read_text())
    assert set(document) == {"machineId", "machineName", "vaultId", "apiUrl", "privateKeyPath"}
    assert all(isinstance(v, str) for v in document.values())
    assert document["apiUrl"] == API_URL
    assert document["privateKeyPath"] == str(path.parent / "private.pem")


def test_private_key_is_pkcs8_v1_with_48_byte_der(home: Path) -> None:
    path, key = enroll()
    pem = (path.parent / "private.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    der = load_pem_private_key(pem, None).private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    assert len(der) == 48
    assert der[-32:] == key.private_bytes_raw()  # .NET reads the seed from the last 32 bytes


def test_vault_id_gets_the_vault_prefix(home: Path) -> None:
    path, _ = enroll(vault="abc")
    assert path.parent.name == "vault_abc"
    assert json.loads(path.read_text())["vaultId"] == "vault_abc"


def test_rebootstrap_replaces_the_identity_and_leaves_no_temp_files(home: Path) -> None:
    enroll(machine_id="old")
    path, key = enroll(machine_id="new")
    loaded, loaded_key = identity.load(path)
    assert loaded.machine_id == "new" and loaded_key.sign(b"m") == key.sign(b"m")
    assert sorted(p.name for p in path.parent.iterdir()) == ["identity.json", "private.pem"]


def test_official_sdk_loads_our_identity_and_signs_identically(home: Path) -> None:
    from sikkerkey import SikkerKey

    path, key = enroll(vault="vault_sdk")
    sdk = SikkerKey("vault_sdk")
    assert sdk.machine_id == MACHINE_ID and sdk.vault_id == "vault_sdk" and sdk.api_url == API_URL
    message = b"GET:/v1/secret/sk_x:1784893492:nonce:e3b0c442"
    assert sdk._private_key.sign(message) == key.sign(message)
    assert SikkerKey(str(path)).machine_id == MACHINE_ID


@pytest.mark.parametrize(
    "content",
    ["", "not json", "[]", '{"machineId": "m"}', '{"machineId": 5, "vaultId": "v", "apiUrl": "u"}'],
)
def test_malformed_identity_files_are_invalid_input(home: Path, content: str) -> None:
    path, _ = enroll()
    path.write_text(content)
    with pytest.raises(InvalidInput):
        identity.load(path)


def test_missing_identity_file_is_invalid_input_with_advice(home: Path) -> None:
    with pytest.raises(InvalidInput, match="bootstrap"):
        identity.load(home / "nope" / "identity.json")


def test_bad_private_key_is_invalid_input_without_key_material(home: Path) -> None:
    path, _ = enroll()
    key_path = path.parent / "private.pem"
    key_path.write_text("-----BEGIN PRIVATE KEY-----\nQUJDREVGR0g=\n-----END PRIVATE KEY-----\n")
    with pytest.raises(InvalidInput) as info:
        identity.load(path)
    assert "QUJD" not in info.value.message
    key_path.unlink()
    with pytest.raises(InvalidInput, match="private key not found"):
        identity.load(path)


def test_non_ed25519_key_is_refused(home: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path, _ = enroll()
    other = ec.generate_private_key(ec.SECP256R1())
    (path.parent / "private.pem").write_bytes(
        other.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    )
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        identity.load(path)


# -- resolution ---------------------------------------------------------------------
def test_absolute_path_or_identity_json_argument_is_a_path(home: Path) -> None:
    assert identity.resolve("/etc/sikkerkey/vaults/x/identity.json") == Path(
        "/etc/sikkerkey/vaults/x/identity.json"
    )
    assert identity.resolve("./identity.json") == Path("identity.json")


def test_vault_argument_is_looked_up_with_or_without_prefix(home: Path) -> None:
    path, _ = enroll(vault="vault_abc")
    assert identity.resolve("vault_abc") == path
    assert identity.resolve("abc") == path


def test_unknown_vault_argument_is_an_error(home: Path) -> None:
    enroll()
    with pytest.raises(InvalidInput, match="vault_other"):
        identity.resolve("other")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "vault_x y"])
def test_vault_ids_that_could_escape_the_directory_are_refused(home: Path, bad: str) -> None:
    with pytest.raises(InvalidInput, match="invalid vault id"):
        identity.resolve(bad)


def test_sikkerkey_identity_comes_before_sikkerkey_vault(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    enroll(vault="vault_a")
    b, _ = enroll(vault="vault_b")
    monkeypatch.setenv("SIKKERKEY_VAULT", "vault_a")
    monkeypatch.setenv("SIKKERKEY_IDENTITY", str(b))
    assert identity.resolve(None) == b
    monkeypatch.delenv("SIKKERKEY_IDENTITY")
    assert identity.resolve(None) == home / "vaults" / "vault_a" / "identity.json"


def test_argument_wins_over_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = enroll(vault="vault_a")
    b, _ = enroll(vault="vault_b")
    monkeypatch.setenv("SIKKERKEY_IDENTITY", str(b))
    assert identity.resolve("a") == a


def test_the_only_identity_on_disk_is_used(home: Path) -> None:
    path, _ = enroll()
    assert identity.resolve(None) == path


def test_no_identity_on_disk_is_an_error_with_advice(home: Path) -> None:
    with pytest.raises(InvalidInput, match="sikker machine bootstrap"):
        identity.resolve(None)


def test_several_identities_on_disk_need_a_choice(home: Path) -> None:
    enroll(vault="vault_a")
    enroll(vault="vault_b")
    with pytest.raises(InvalidInput, match=r"vault_a, vault_b.*--vault"):
        identity.resolve(None)
