from __future__ import annotations

import os
from pathlib import Path

import pytest

from sikker.crypto import envelope, seal
from sikker.errors import InvalidCiphertext, InvalidInput, Unavailable


def test_key_file_is_created_private_and_read_back(tmp_path: Path) -> None:
    provider = seal.KeyFileSeal(tmp_path / "k" / "unseal.key")
    key = provider.create_key()
    assert (provider.path.stat().st_mode & 0o777) == 0o600
    assert provider.load_key() == key
    assert provider.create_key() == key  # idempotent: never overwrites


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    provider = seal.KeyFileSeal(tmp_path / "unseal.key")
    provider.create_key()
    os.chmod(provider.path, 0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        provider.load_key()


def test_missing_or_malformed_key_file(tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        seal.KeyFileSeal(tmp_path / "absent").load_key()
    bad = tmp_path / "bad.key"
    bad.write_text("not base64!!")
    bad.chmod(0o600)
    with pytest.raises(InvalidInput):
        seal.KeyFileSeal(bad).load_key()


def test_a_wrong_unseal_key_never_yields_a_root_key() -> None:
    root = envelope.new_key()
    wrapped = seal.wrap_root(envelope.new_key(), root)
    with pytest.raises(InvalidCiphertext):
        seal.unwrap_root(envelope.new_key(), wrapped)


def test_a_key_file_seal_wraps_and_unwraps_the_root_key(tmp_path: Path) -> None:
    provider = seal.KeyFileSeal(tmp_path / "k" / "unseal.key")
    root = bytes(range(32))
    wrapped = provider.wrap(root)
    assert provider.unwrap(wrapped) == root
    assert seal.unwrap_root(provider.load_key(), wrapped) == root  # the same blob as before


def test_an_hsm_seal_blob_holds_the_hsm_part_and_the_recovery_part() -> None:
    packed = seal.pack_recovery(b"hsm-part", b"shares-part")
    assert seal.provider_part("pkcs11", packed) == b"hsm-part"
    assert seal.shares_part("pkcs11", packed) == b"shares-part"
    assert seal.shares_part("shamir", b"whole") == b"whole" == seal.provider_part("keyfile", b"whole")
    with pytest.raises(InvalidCiphertext):
        seal.provider_part("pkcs11", b"\x02junk")
