"""Shamir secret sharing over GF(2^8), plus a checksummed text encoding for shares.

Design
------
* Field: GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11B).
  Addition and subtraction are XOR.
* Byte-wise sharing: every byte of the secret is the constant term of its own random
  polynomial of degree ``threshold - 1``. A raw share is ``bytes([x]) + y_bytes`` where
  ``y_bytes[i]`` is the i-th polynomial evaluated at ``x`` (1 <= x <= 255).
* Side channels: the arithmetic uses no lookup tables indexed by secret-dependent values
  and no secret-dependent branches. Multiplication is a fixed 8-round shift-and-add loop
  driven by masks, inversion is ``a**254`` computed by a fixed chain of multiplications.
  This is best effort: CPython does not guarantee constant-time integer operations, but
  it removes the obvious cache-timing and branch leaks of table-based implementations.
* ``combine`` interpolates at x = 0 and cannot tell a wrong or tampered share set from a
  right one: it always returns *some* bytes. Callers must verify the result, e.g. by using
  it as a key and authenticating a known AEAD ciphertext with it.
* Human-facing shares (``encode_share``/``decode_share``) are base64url without padding
  of ``0x01 || raw || SHA-256(b"sikker-share-v1" || raw)[:4]``, so a typo or corruption in
  a single share is detected on its own, before any combination is attempted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence

__all__ = ["MAX_SECRET_LEN", "ShareError", "combine", "decode_share", "encode_share", "split"]

MAX_SECRET_LEN = 1024
MAX_SHARES = 255

_SHARE_VERSION = 0x01
_CHECKSUM_DOMAIN = b"sikker-share-v1"
_CHECKSUM_LEN = 4
_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


class ShareError(ValueError):
    """A share (or a set of shares) is malformed, corrupted or inconsistent."""


def _gf_mul(a: int, b: int) -> int:
    """Multiply two field elements with a fixed 8-round, branch-free shift-and-add loop."""
    result = 0
    for _ in range(8):
        result ^= -(b & 1) & a  # add a when the low bit of b is set
        carry = -((a >> 7) & 1) & 0x1B  # reduce when a overflows x^8
        a = ((a << 1) & 0xFF) ^ carry
        b >>= 1
    return result


def _gf_inv(a: int) -> int:
    """Invert a field element as a**254 (a**-1 since a**255 == 1); maps 0 to 0."""
    square = _gf_mul(a, a)  # a^2
    result = square
    for _ in range(6):  # multiply in a^4, a^8, ..., a^128 -> a^(2+4+...+128) = a^254
        square = _gf_mul(square, square)
        result = _gf_mul(result, square)
    return result


def _eval_poly(coefficients: Sequence[int], x: int) -> int:
    """Evaluate a polynomial (constant term first) at ``x`` using Horner's rule."""
    y = 0
    for c in reversed(coefficients):
        y = _gf_mul(y, x) ^ c
    return y


def split(
    secret: bytes,
    shares: int,
    threshold: int,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> list[bytes]:
    """Split ``secret`` into ``shares`` raw shares, any ``threshold`` of which recover it.

    Each raw share is ``bytes([x]) + y_bytes`` with distinct x in 1..shares and
    ``len(y_bytes) == len(secret)``. ``randbytes`` supplies the random polynomial
    coefficients and must be a CSPRNG in production (it is injectable for tests).

    Raises ``ValueError`` if the secret is empty or longer than ``MAX_SECRET_LEN`` bytes,
    or unless ``1 <= threshold <= shares <= 255``; with more than one share the threshold
    must be at least 2 (a threshold of 1 would just hand out copies of the secret).
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if len(secret) > MAX_SECRET_LEN:
        raise ValueError(f"secret must be at most {MAX_SECRET_LEN} bytes, got {len(secret)}")
    if not 1 <= shares <= MAX_SHARES:
        raise ValueError(f"shares must be between 1 and {MAX_SHARES}, got {shares}")
    if not 1 <= threshold <= shares:
        raise ValueError(f"threshold must be between 1 and shares ({shares}), got {threshold}")
    if shares > 1 and threshold < 2:
        raise ValueError("threshold must be at least 2 when there is more than one share")

    degree = threshold - 1
    needed = len(secret) * degree
    randomness = randbytes(needed) if needed else b""
    if len(randomness) != needed:
        raise ValueError(f"randbytes returned {len(randomness)} bytes, expected {needed}")

    polynomials = [[byte, *randomness[i * degree : (i + 1) * degree]] for i, byte in enumerate(secret)]
    return [bytes([x]) + bytes(_eval_poly(poly, x) for poly in polynomials) for x in range(1, shares + 1)]


def combine(raw_shares: Sequence[bytes]) -> bytes:
    """Recover the secret from raw shares by Lagrange interpolation at x = 0.

    Raises ``ShareError`` if the list is empty, a share is shorter than 2 bytes, the
    shares differ in length, a share has x == 0, or two shares have the same x.

    The result is NOT verified: fewer than ``threshold`` shares, shares of different
    splits, or a tampered share all yield wrong bytes without an error. Callers must
    check the result, e.g. by decrypting an AEAD ciphertext with it.
    """
    if not raw_shares:
        raise ShareError("no shares given")
    length = len(raw_shares[0])
    seen: set[int] = set()
    for share in raw_shares:
        if len(share) < 2:
            raise ShareError("share is too short")
        if len(share) != length:
            raise ShareError("shares have different lengths")
        x = share[0]
        if x == 0:
            raise ShareError("share has invalid x coordinate 0")
        if x in seen:
            raise ShareError(f"duplicate share for x coordinate {x}")
        seen.add(x)

    xs = [share[0] for share in raw_shares]
    # Lagrange basis at 0: l_i = prod_{j != i} x_j / (x_j - x_i); subtraction is XOR.
    basis: list[int] = []
    for i, xi in enumerate(xs):
        numerator, denominator = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                numerator = _gf_mul(numerator, xj)
                denominator = _gf_mul(denominator, xj ^ xi)
        basis.append(_gf_mul(numerator, _gf_inv(denominator)))

    secret = bytearray(length - 1)
    for share, coefficient in zip(raw_shares, basis, strict=True):
        for pos in range(length - 1):
            secret[pos] ^= _gf_mul(share[pos + 1], coefficient)
    return bytes(secret)


def _checksum(raw: bytes) -> bytes:
    return hashlib.sha256(_CHECKSUM_DOMAIN + raw).digest()[:_CHECKSUM_LEN]


def encode_share(raw: bytes) -> str:
    """Encode a raw share as base64url text with a version byte and a 4-byte checksum."""
    if len(raw) < 2 or raw[0] == 0:
        raise ShareError("not a valid raw share")
    payload = bytes([_SHARE_VERSION]) + raw + _checksum(raw)
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_share(text: str) -> bytes:
    """Decode a share produced by ``encode_share``, ignoring surrounding/embedded whitespace.

    Raises ``ShareError`` if the text is not canonical base64url, the version byte is
    unknown, the payload is too short, or the checksum does not match.
    """
    compact = "".join(text.split())
    if not _B64URL_RE.fullmatch(compact) or len(compact) % 4 == 1:
        raise ShareError("share is corrupted or mistyped (invalid characters or length)")
    try:
        payload = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ShareError("share is corrupted or mistyped (invalid base64)") from exc
    # Reject non-canonical encodings (stray bits in the last character) so that every
    # textual change to a share is detected.
    if base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii") != compact:
        raise ShareError("share is corrupted or mistyped (non-canonical encoding)")
    if len(payload) < 1 + 2 + _CHECKSUM_LEN:
        raise ShareError("share is corrupted or mistyped (too short)")
    if payload[0] != _SHARE_VERSION:
        raise ShareError("share is corrupted or mistyped (unknown version)")
    raw, checksum = payload[1:-_CHECKSUM_LEN], payload[-_CHECKSUM_LEN:]
    if not hmac.compare_digest(checksum, _checksum(raw)):
        raise ShareError("share is corrupted or mistyped (checksum mismatch)")
    if raw[0] == 0:
        raise ShareError("share is corrupted or mistyped (invalid x coordinate)")
    return raw
