"""Canonical string, body hash, freshness window and env-name flattening (contract section 2)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from sikker.core import signing

SEED = bytes([0x42]) * 32
NONCE = base64.b64encode(bytes(range(16))).decode()
TIMESTAMP = "1784893492"
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
KEY = Ed25519PrivateKey.from_private_bytes(SEED)

GET_CANONICAL = f"GET:/v1/secret/sk_golden:{TIMESTAMP}:{NONCE}:{EMPTY}"
GET_SIGNATURE = "bzdRKovBl9LEnxasi18GyeCN7FiFYo+x1ZBpAitAcmv7OPi1FInM//jpGytiG86pQ+V6d7UA+wBnw0ShYDrUDA=="
POST_BODY = b'{"watch":["sk_golden"]}'
POST_BODY_SHA256 = "945a9c2a942dd990eacd8a56c6986f091a46a32a88e467bf87e3025ad33c74d9"
POST_CANONICAL = f"POST:/v1/secrets/poll:{TIMESTAMP}:{NONCE}:{POST_BODY_SHA256}"
POST_SIGNATURE = "PVqYRPzPJ4peGfduuLyBUPUdC04PIxaBU36WRF6wzqkWnrAwtq8zc76j1N+sGzuGGKtltxUvbHpBfwPhBIbbCw=="


def test_vector_key_matches_the_contract() -> None:
    raw = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert base64.b64encode(raw).decode() == "IVL40Zt5HSRFMkLhXy6rbLfP+ntqXtMAl5YOBpiB2xI="
    pem = KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    assert pem == (
        "-----BEGIN PRIVATE KEY-----\n"
        "MC4CAQAwBQYDK2VwBCIEIEJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJC\n"
        "-----END PRIVATE KEY-----\n"
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "signature"),
    [
        ("GET", "/v1/secret/sk_golden", b"", GET_CANONICAL, GET_SIGNATURE),
        ("POST", "/v1/secrets/poll", POST_BODY, POST_CANONICAL, POST_SIGNATURE),
    ],
)
def test_canonical_string_and_signature_match_the_contract_vectors(
    method: str, path: str, body: bytes, expected: str, signature: str
) -> None:
    message = signing.canonical(method, path, TIMESTAMP, NONCE, body)
    assert message == expected.encode()
    assert base64.b64encode(KEY.sign(message)).decode() == signature
    KEY.public_key().verify(base64.b64decode(signature), message)


def test_method_is_upper_cased_in_the_canonical_string() -> None:
    assert signing.canonical("get", "/v1/secret/sk_golden", TIMESTAMP, NONCE, b"") == GET_CANONICAL.encode()


def test_empty_body_hashes_to_sha256_of_nothing() -> None:
    assert signing.body_hash(b"") == EMPTY == signing.EMPTY_BODY_SHA256 == hashlib.sha256(b"").hexdigest()


def test_body_hash_is_over_the_raw_bytes_not_reserialized_json() -> None:
    assert signing.body_hash(b'{"projectId": "x"}') != signing.body_hash(b'{"projectId":"x"}')


@pytest.mark.parametrize(
    ("offset", "expected"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)]
)
def test_timestamps_are_fresh_within_300_seconds_either_way(offset: int, expected: bool) -> None:
    now = 1_784_893_492
    assert signing.fresh(str(now + offset), now) is expected


@pytest.mark.parametrize("timestamp", ["", "-5", "1.5", "abc", "1784893492000000", " 1784893492"])
def test_malformed_timestamps_are_never_fresh(timestamp: str) -> None:
    assert signing.fresh(timestamp, 1_784_893_492) is False


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("db-password.v2", "DB_PASSWORD_V2"),
        ("api key", "API_KEY"),
        ("--weird__name--", "WEIRD_NAME"),
        ("already_UPPER_9", "ALREADY_UPPER_9"),
        ("æøå", ""),
    ],
)
def test_env_names_are_upper_case_with_underscore_runs(name: str, expected: str) -> None:
    assert signing.env_name(name) == expected


def test_structured_secrets_expand_to_name_field_variables() -> None:
    flat = signing.flatten("db", '{"host":"db.local","password":"p4ss"}', '["host","password"]')
    assert flat == {"DB_HOST": "db.local", "DB_PASSWORD": "p4ss"}


def test_plain_secret_that_looks_like_json_stays_one_variable() -> None:
    assert signing.flatten("blob", '{"a":"b"}', None) == {"BLOB": '{"a":"b"}'}


@pytest.mark.parametrize("value", ["not json", "{}", "[1,2]", '"s"'])
def test_structured_secret_that_is_not_a_non_empty_object_stays_one_variable(value: str) -> None:
    assert signing.flatten("cfg", value, '["x"]') == {"CFG": value}
