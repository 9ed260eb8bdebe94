"""The constant hash verified for an unknown user name costs what a real user's hash does."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from sikker.service.people import DUMMY_HASH


def test_the_dummy_hash_has_the_hashers_parameters() -> None:
    hasher = PasswordHasher()
    assert not hasher.check_needs_rehash(DUMMY_HASH)
    assert hasher.hash("x").split("$")[:4] == DUMMY_HASH.split("$")[:4]


def test_the_dummy_hash_verifies_no_likely_password() -> None:
    hasher = PasswordHasher()
    for guess in ("", "password", "sikker", "x"):
        try:
            hasher.verify(DUMMY_HASH, guess)
        except VerificationError:
            continue
        raise AssertionError(f"the dummy hash matches {guess!r}")
