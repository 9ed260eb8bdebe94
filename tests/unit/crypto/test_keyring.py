from __future__ import annotations

import pytest

from sikker.crypto import envelope
from sikker.crypto.keyring import Keyring
from sikker.errors import InvalidCiphertext, Sealed


def test_a_sealed_keyring_refuses_to_wrap_or_unwrap() -> None:
    ring = Keyring()
    with pytest.raises(Sealed):
        ring.wrap_project_key("vault_x", "proj_x", 1, bytes(32))


def test_project_keys_are_bound_to_their_project_and_version() -> None:
    ring = Keyring()
    ring.load(envelope.new_key())
    key = envelope.new_key()
    wrapped = ring.wrap_project_key("vault_x", "proj_x", 1, key)
    assert ring.project_key("vault_x", "proj_x", 1, wrapped) == key
    for vault, project, version in (
        ("vault_y", "proj_x", 1),
        ("vault_x", "proj_y", 1),
        ("vault_x", "proj_x", 2),
    ):
        with pytest.raises(InvalidCiphertext):
            ring.project_key(vault, project, version, wrapped)


def test_sealing_forgets_cached_project_keys() -> None:
    ring = Keyring()
    ring.load(envelope.new_key())
    wrapped = ring.wrap_project_key("vault_x", "proj_x", 1, envelope.new_key())
    ring.project_key("vault_x", "proj_x", 1, wrapped)
    ring.clear()
    assert ring.sealed
    with pytest.raises(Sealed):
        ring.project_key("vault_x", "proj_x", 1, wrapped)
