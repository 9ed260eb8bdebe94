"""Ed25519 signature checks for machine requests (pyca ``cryptography``)."""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def decode_public_key(text: str) -> bytes | None:
    """Base64 (standard) of a raw 32-byte Ed25519 public key, or None if malformed."""
    try:
        raw = base64.b64decode(text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == PUBLIC_KEY_BYTES else None


def verify(public_key: bytes, signature_b64: str, message: bytes) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
