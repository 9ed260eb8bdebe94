"""Ed25519 verification against the wire contract's test vectors (section 2.4)."""

from __future__ import annotations

import base64

from sikker.core import signing
from sikker.crypto import signature

PUBLIC = base64.b64decode("IVL40Zt5HSRFMkLhXy6rbLfP+ntqXtMAl5YOBpiB2xI=")
NONCE = "AAECAwQFBgcICQoLDA0ODw=="
GET_SIG = "bzdRKovBl9LEnxasi18GyeCN7FiFYo+x1ZBpAitAcmv7OPi1FInM//jpGytiG86pQ+V6d7UA+wBnw0ShYDrUDA=="
POST_SIG = "PVqYRPzPJ4peGfduuLyBUPUdC04PIxaBU36WRF6wzqkWnrAwtq8zc76j1N+sGzuGGKtltxUvbHpBfwPhBIbbCw=="


def test_contract_vectors_verify() -> None:
    get = signing.canonical("GET", "/v1/secret/sk_golden", "1784893492", NONCE, b"")
    post = signing.canonical("POST", "/v1/secrets/poll", "1784893492", NONCE, b'{"watch":["sk_golden"]}')
    assert signature.verify(PUBLIC, GET_SIG, get)
    assert signature.verify(PUBLIC, POST_SIG, post)


def test_any_change_fails() -> None:
    get = signing.canonical("GET", "/v1/secret/sk_golden", "1784893492", NONCE, b"")
    assert not signature.verify(PUBLIC, POST_SIG, get)
    assert not signature.verify(PUBLIC, GET_SIG, get.replace(b"golden", b"gold3n"))
    assert not signature.verify(bytes(32), GET_SIG, get)


def test_malformed_inputs_are_false_not_errors() -> None:
    get = signing.canonical("GET", "/v1/secret/sk_golden", "1784893492", NONCE, b"")
    for bad in ("", "not base64!!", base64.b64encode(b"short").decode(), GET_SIG[:-4]):
        assert not signature.verify(PUBLIC, bad, get)
    assert signature.decode_public_key("IVL40Zt5HSRFMkLhXy6rbLfP+ntqXtMAl5YOBpiB2xI=") == PUBLIC
    assert signature.decode_public_key("AAAA") is None
