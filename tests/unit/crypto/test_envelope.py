"""Envelope encryption: round trips, and every way a blob can be moved or altered fails."""

from __future__ import annotations

import dataclasses

import pytest

from sikker.core.model import Sealed
from sikker.crypto import envelope
from sikker.crypto.envelope import Binding
from sikker.errors import InvalidCiphertext

KEY = bytes(range(32))
WHERE = Binding("vault_aaaaaaaaaaaaaaaa", "proj_aaaaaaaaaaaaaaaa", "sk_aaaaaaaaaaaaaaaa", 3)


def sealed_value(plaintext: bytes = b"hunter2") -> Sealed:
    return envelope.seal_value(KEY, 1, WHERE, plaintext)


def test_a_value_round_trips() -> None:
    assert envelope.open_value(KEY, WHERE, sealed_value()) == b"hunter2"


def test_each_version_gets_a_fresh_data_key_and_nonce() -> None:
    a, b = sealed_value(), sealed_value()
    assert a.ciphertext != b.ciphertext and a.wrapped_dek != b.wrapped_dek


def test_blobs_start_with_the_format_version() -> None:
    s = sealed_value()
    assert s.ciphertext[0] == envelope.FORMAT_V1 == s.wrapped_dek[0]


@pytest.mark.parametrize(
    "moved",
    [
        dataclasses.replace(WHERE, vault_id="vault_bbbbbbbbbbbbbbbb"),
        dataclasses.replace(WHERE, project_id="proj_bbbbbbbbbbbbbbbb"),
        dataclasses.replace(WHERE, secret_id="sk_bbbbbbbbbbbbbbbb"),
        dataclasses.replace(WHERE, version=4),
    ],
    ids=["other-vault", "other-project", "other-secret", "other-version"],
)
def test_a_ciphertext_moved_elsewhere_fails_to_decrypt(moved: Binding) -> None:
    with pytest.raises(InvalidCiphertext):
        envelope.open_value(KEY, moved, sealed_value())


def test_a_wrong_key_version_label_fails() -> None:
    s = dataclasses.replace(sealed_value(), key_version=2)
    with pytest.raises(InvalidCiphertext):
        envelope.open_value(KEY, WHERE, s)


def test_a_wrong_project_key_fails() -> None:
    with pytest.raises(InvalidCiphertext):
        envelope.open_value(bytes(32), WHERE, sealed_value())


def test_swapping_data_keys_between_versions_fails() -> None:
    a = envelope.seal_value(KEY, 1, WHERE, b"a")
    other = dataclasses.replace(WHERE, version=4)
    b = envelope.seal_value(KEY, 1, other, b"b")
    with pytest.raises(InvalidCiphertext):
        envelope.open_value(KEY, WHERE, Sealed(a.ciphertext, b.wrapped_dek, 1))


@pytest.mark.parametrize("field", ["ciphertext", "wrapped_dek"])
def test_flipping_any_byte_is_detected(field: str) -> None:
    s = sealed_value()
    blob = getattr(s, field)
    for i in range(len(blob)):
        tampered = bytearray(blob)
        tampered[i] ^= 0x01
        with pytest.raises(InvalidCiphertext):
            envelope.open_value(KEY, WHERE, dataclasses.replace(s, **{field: bytes(tampered)}))


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x02" + bytes(40), bytes(12)])
def test_truncated_or_unknown_format_blobs_fail_with_the_same_error(blob: bytes) -> None:
    with pytest.raises(InvalidCiphertext) as info:
        envelope.decrypt(KEY, blob, b"aad")
    assert str(info.value) == "decryption failed"


def test_rewrap_moves_the_data_key_and_keeps_the_value() -> None:
    new_key = bytes(reversed(range(32)))
    moved = envelope.rewrap(KEY, new_key, 2, WHERE, sealed_value())
    assert moved.key_version == 2
    assert envelope.open_value(new_key, WHERE, moved) == b"hunter2"
    with pytest.raises(InvalidCiphertext):
        envelope.open_value(KEY, WHERE, moved)


def test_known_answer_for_fixed_key_nonce_and_aad() -> None:
    """AES-256-GCM from NIST SP 800-38D style inputs: pins the primitive and the layout."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = bytes(12)
    blob = bytes([1]) + nonce + AESGCM(bytes(32)).encrypt(nonce, b"", b"")
    # GCM with an all-zero 256-bit key, zero IV and no data: tag 530f8afbc74536b9a963b4f1c4cb738b.
    assert blob[13:].hex() == "530f8afbc74536b9a963b4f1c4cb738b"
    assert envelope.decrypt(bytes(32), blob, b"") == b""
