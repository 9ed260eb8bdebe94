"""Tests for sikker.crypto.shamir: field arithmetic, split/combine, share encoding."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
import string
from collections.abc import Callable

import pytest

from sikker.crypto import shamir
from sikker.crypto.shamir import ShareError, combine, decode_share, encode_share, split

B64URL_ALPHABET = string.ascii_letters + string.digits + "-_"

PARAMS = [(1, 1), (2, 2), (3, 2), (5, 3), (6, 4), (7, 7)]


# --- independent reference field: log/exp tables with generator 3 -------------------


def _build_reference_tables() -> tuple[list[int], list[int]]:
    exp = [0] * 255
    log = [0] * 256
    value = 1
    for power in range(255):
        exp[power] = value
        log[value] = power
        doubled = value << 1
        if doubled & 0x100:
            doubled ^= 0x11B
        value = doubled ^ value  # value * 3 == value * x + value
    assert value == 1, "3 must have multiplicative order 255"
    assert sorted(exp) == list(range(1, 256)), "3 must generate the whole group"
    return exp, log


_EXP, _LOG = _build_reference_tables()


def ref_mul(a: int, b: int) -> int:
    if a == 0 or b == 0:
        return 0
    return _EXP[(_LOG[a] + _LOG[b]) % 255]


def ref_inv(a: int) -> int:
    return _EXP[(255 - _LOG[a]) % 255]


def counter_randbytes() -> Callable[[int], bytes]:
    """A deterministic stand-in for os.urandom: 0x00, 0x01, 0x02, ... (mod 256)."""
    counter = itertools.count()
    return lambda n: bytes(next(counter) & 0xFF for _ in range(n))


# --- field arithmetic ---------------------------------------------------------------


def test_multiplication_matches_table_based_reference_for_all_pairs() -> None:
    mismatches = [(a, b) for a in range(256) for b in range(256) if shamir._gf_mul(a, b) != ref_mul(a, b)]
    assert mismatches == []


def test_inverse_matches_table_based_reference_for_all_nonzero_values() -> None:
    for a in range(1, 256):
        inverse = shamir._gf_inv(a)
        assert inverse == ref_inv(a)
        assert shamir._gf_mul(a, inverse) == 1


def test_multiplication_matches_known_aes_vectors() -> None:
    assert shamir._gf_mul(0x53, 0xCA) == 0x01
    assert shamir._gf_mul(0x57, 0x83) == 0xC1
    assert shamir._gf_inv(0x53) == 0xCA


# --- split / combine ----------------------------------------------------------------


@pytest.mark.parametrize(("n", "k"), PARAMS)
def test_every_threshold_subset_recovers_the_secret(n: int, k: int) -> None:
    secret = os.urandom(32)
    shares = split(secret, n, k)
    rng = random.Random(f"{n}-{k}")
    for subset in itertools.combinations(shares, k):
        assert combine(subset) == secret
        shuffled = list(subset)
        rng.shuffle(shuffled)
        assert combine(shuffled) == secret


@pytest.mark.parametrize(("n", "k"), [p for p in PARAMS if p[1] > 1])
def test_fewer_than_threshold_shares_do_not_return_the_secret(n: int, k: int) -> None:
    secret = os.urandom(32)
    shares = split(secret, n, k)
    for subset in itertools.combinations(shares, k - 1):
        assert combine(subset) != secret


@pytest.mark.parametrize(("n", "k"), PARAMS)
def test_split_returns_shares_with_distinct_x_and_secret_sized_y(n: int, k: int) -> None:
    secret = os.urandom(17)
    shares = split(secret, n, k)
    assert len(shares) == n
    assert sorted(share[0] for share in shares) == list(range(1, n + 1))
    assert all(len(share) == 1 + len(secret) for share in shares)


def test_split_is_randomised_by_default() -> None:
    secret = b"same secret every time"
    assert split(secret, 3, 2) != split(secret, 3, 2)


def test_split_with_fixed_randomness_gives_pinned_known_answer() -> None:
    shares = split(b"sikker-kat", 5, 3, randbytes=counter_randbytes())
    assert [share.hex() for share in shares] == [
        "0172686a6a64732c6a6075",
        "027761777b514a014b051c",
        "037660767a504b004a041d",
        "0463512b03d5eacda32a17",
        "0562502a02d4ebcca22b16",
    ]
    assert encode_share(shares[0]) == "AQFyaGpqZHMsamB1Zkro_Q"


def test_single_share_with_threshold_one_holds_the_secret() -> None:
    assert split(b"abc", 1, 1) == [b"\x01abc"]
    assert combine([b"\x01abc"]) == b"abc"


def test_maximum_share_count_and_secret_length_round_trip() -> None:
    shares = split(b"\x42", 255, 255)
    assert combine(shares) == b"\x42"
    long_secret = os.urandom(shamir.MAX_SECRET_LEN)
    assert combine(split(long_secret, 3, 2)[1:]) == long_secret


def test_split_rejects_randbytes_returning_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="randbytes"):
        split(b"secret", 3, 2, randbytes=lambda n: b"\x00" * (n - 1))


@pytest.mark.parametrize(
    ("secret", "n", "k", "message"),
    [
        (b"", 3, 2, "empty"),
        (b"x" * (shamir.MAX_SECRET_LEN + 1), 3, 2, "at most"),
        (b"secret", 2, 3, "threshold"),
        (b"secret", 3, 1, "at least 2"),
        (b"secret", 3, 0, "threshold"),
        (b"secret", 256, 2, "shares"),
        (b"secret", 0, 0, "shares"),
    ],
)
def test_split_rejects_bad_parameters(secret: bytes, n: int, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split(secret, n, k)


def test_combine_rejects_duplicate_shares() -> None:
    shares = split(b"secret", 3, 2)
    with pytest.raises(ShareError, match="duplicate"):
        combine([shares[0], shares[1], shares[0]])


def test_combine_rejects_shares_with_the_same_x_but_different_y() -> None:
    a = split(b"secret", 3, 2)[0]
    b = split(b"secret", 3, 2)[0]
    with pytest.raises(ShareError, match="duplicate"):
        combine([a, b])


def test_combine_rejects_x_coordinate_zero() -> None:
    shares = split(b"secret", 3, 2)
    with pytest.raises(ShareError, match="x coordinate 0"):
        combine([shares[0], b"\x00" + shares[1][1:]])


def test_combine_rejects_shares_of_different_lengths() -> None:
    shares = split(b"secret", 3, 2)
    with pytest.raises(ShareError, match="different lengths"):
        combine([shares[0], shares[1] + b"\x00"])


def test_combine_rejects_an_empty_list() -> None:
    with pytest.raises(ShareError, match="no shares"):
        combine([])


def test_combine_rejects_a_share_shorter_than_two_bytes() -> None:
    with pytest.raises(ShareError, match="too short"):
        combine([b"\x01"])


def test_share_error_is_a_value_error() -> None:
    assert issubclass(ShareError, ValueError)


# --- text encoding ------------------------------------------------------------------


def test_encode_decode_round_trip_recovers_the_secret() -> None:
    secret = os.urandom(32)
    encoded = [encode_share(share) for share in split(secret, 5, 3)]
    assert all(set(text) <= set(B64URL_ALPHABET) for text in encoded)
    decoded = [decode_share(text) for text in encoded]
    assert combine(decoded[2:]) == secret


def test_decode_accepts_surrounding_whitespace_and_newlines() -> None:
    raw = split(b"secret", 3, 2)[0]
    text = encode_share(raw)
    assert decode_share(f"  \n\t{text}\r\n ") == raw
    assert decode_share(f"{text[:5]}\n{text[5:]}\n") == raw


def test_decode_rejects_every_single_character_substitution() -> None:
    raw = split(b"sikker single-char typo test", 3, 2, randbytes=counter_randbytes())[1]
    text = encode_share(raw)
    accepted = []
    for pos, original in enumerate(text):
        for replacement in B64URL_ALPHABET:
            if replacement == original:
                continue
            mutated = text[:pos] + replacement + text[pos + 1 :]
            try:
                decode_share(mutated)
            except ShareError:
                continue
            accepted.append((pos, replacement))
    assert accepted == []


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda t: t + "!", id="invalid-character"),
        pytest.param(lambda t: t + "A", id="invalid-length"),
        pytest.param(lambda t: t[:-2], id="truncated"),
        pytest.param(lambda t: t + "AA", id="extended"),
        pytest.param(lambda t: "", id="empty"),
        pytest.param(lambda t: "AQFy", id="too-short"),
        pytest.param(lambda t: t.replace("-", "+").replace("_", "/"), id="standard-base64"),
    ],
)
def test_decode_rejects_malformed_text(mutate: Callable[[str], str]) -> None:
    raw = split(b"sikker-kat", 5, 3, randbytes=counter_randbytes())[0]
    with pytest.raises(ShareError, match="corrupted or mistyped"):
        decode_share(mutate(encode_share(raw)))


def test_decode_rejects_an_unknown_version_byte() -> None:
    raw = b"\x01secret"
    checksum = hashlib.sha256(b"sikker-share-v1" + raw).digest()[:4]
    text = base64.urlsafe_b64encode(b"\x02" + raw + checksum).rstrip(b"=").decode()
    with pytest.raises(ShareError, match="version"):
        decode_share(text)


def test_encode_rejects_invalid_raw_shares() -> None:
    for raw in (b"", b"\x01", b"\x00secret"):
        with pytest.raises(ShareError):
            encode_share(raw)
