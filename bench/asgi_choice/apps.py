r"""Tiny apps for the ASGI framework/server choice benchmark (see run.py).

Every variant calls the same ``read_secret()`` so the only difference between
variants is the framework/server around it.  All key material is derived from
fixed seeds, so every worker process (``--workers 2``) builds identical keys
without any shared state.

The "signed read" the handlers do per request:
  1. look up the machine's Ed25519 public key by X-Machine-Id (dict lookup),
  2. check X-Timestamp is within +-SKEW seconds of now,
  3. Ed25519-verify X-Signature over the canonical string
        "GET\n<path>\n<machine_id>\n<timestamp>\n<nonce>",
  4. AES-256-GCM decrypt the stored 64-byte value (AAD = secret name),
  5. return {"value": "..."} serialized with orjson.

Nonce replay protection is NOT done: the benchmark replays one pre-made valid
signature for every request, because it measures framework overhead, not the
replay cache.  This module is benchmark-only, not product code.

No ``from __future__ import annotations`` here on purpose: FastAPI has to see the
real ``Annotated[..., Header()]`` objects of the handler defined in a closure.
"""

import base64
import binascii
import hashlib
import time

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

SKEW = 300  # seconds
MACHINE_ID = "m_bench01"
SECRET_NAME = "sk_x"
PATH = "/v1/secret/" + SECRET_NAME
PLAINTEXT = (hashlib.sha256(b"sikker-bench-value").hexdigest()).encode()  # 64 bytes
assert len(PLAINTEXT) == 64

_SIGNING_SEED = hashlib.sha256(b"sikker-bench-ed25519-seed").digest()
_VAULT_KEY = hashlib.sha256(b"sikker-bench-aes-key").digest()  # 32 bytes -> AES-256
_GCM_NONCE = hashlib.sha256(b"sikker-bench-gcm-nonce").digest()[:12]


def signing_key() -> Ed25519PrivateKey:
    """Client side key; only run.py (the 'machine') uses it."""
    return Ed25519PrivateKey.from_private_bytes(_SIGNING_SEED)


def canonical(path: str, machine_id: str, timestamp: str, nonce: str) -> bytes:
    return f"GET\n{path}\n{machine_id}\n{timestamp}\n{nonce}".encode()


def make_headers(timestamp: int | None = None, nonce: str = "n_0123456789abcdef") -> dict[str, str]:
    """One valid set of request headers (signed now unless a timestamp is given)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = signing_key().sign(canonical(PATH, MACHINE_ID, ts, nonce))
    return {
        "X-Machine-Id": MACHINE_ID,
        "X-Timestamp": ts,
        "X-Nonce": nonce,
        "X-Signature": base64.b64encode(sig).decode(),
    }


# --- server-side state (built once per process at import) -------------------
MACHINE_KEYS: dict[str, Ed25519PublicKey] = {MACHINE_ID: signing_key().public_key()}
MACHINE_KEYS_NACL: dict[str, VerifyKey] = {
    MACHINE_ID: VerifyKey(signing_key().public_key().public_bytes_raw())
}
_AEAD = AESGCM(_VAULT_KEY)
SECRETS: dict[str, tuple[bytes, bytes]] = {
    SECRET_NAME: (_GCM_NONCE, _AEAD.encrypt(_GCM_NONCE, PLAINTEXT, SECRET_NAME.encode()))
}

_ERR_401 = orjson.dumps({"error": "unauthorized"})
_ERR_404 = orjson.dumps({"error": "not_found"})


def read_secret(
    path: str,
    name: str,
    machine_id: str | None,
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    use_nacl: bool = False,
) -> tuple[int, bytes]:
    """The shared handler body: returns (status, json_body).

    use_nacl=True verifies with PyNaCl (libsodium) instead of pyca/cryptography
    (OpenSSL); everything else is identical.
    """
    if not (machine_id and timestamp and nonce and signature):
        return 401, _ERR_401
    key = (MACHINE_KEYS_NACL if use_nacl else MACHINE_KEYS).get(machine_id)
    if key is None:
        return 401, _ERR_401
    try:
        ts = int(timestamp)
        sig = base64.b64decode(signature, validate=True)
    except (ValueError, binascii.Error):
        return 401, _ERR_401
    if abs(time.time() - ts) > SKEW:
        return 401, _ERR_401
    msg = canonical(path, machine_id, timestamp, nonce)
    try:
        if use_nacl:
            key.verify(msg, sig)  # type: ignore[call-arg]
        else:
            key.verify(sig, msg)  # type: ignore[call-arg]
    except (InvalidSignature, BadSignatureError):
        return 401, _ERR_401
    entry = SECRETS.get(name)
    if entry is None:
        return 404, _ERR_404
    gcm_nonce, ct = entry
    value = _AEAD.decrypt(gcm_nonce, ct, name.encode())
    return 200, orjson.dumps({"value": value.decode()})


# --- 1. raw ASGI callable ----------------------------------------------------
_PREFIX = "/v1/secret/"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def _make_raw_app(use_nacl: bool):  # type: ignore[no-untyped-def]
    async def raw_app(scope, receive, send):  # type: ignore[no-untyped-def]
        t = scope["type"]
        if t == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if t != "http":
            return
        path = scope["path"]
        name = path[len(_PREFIX) :]
        if scope["method"] == "GET" and path.startswith(_PREFIX) and name and "/" not in name:
            mid = ts = nonce = sig = None
            for k, v in scope["headers"]:  # names are lower-cased bytes per the ASGI spec
                if k == b"x-machine-id":
                    mid = v.decode("latin-1")
                elif k == b"x-timestamp":
                    ts = v.decode("latin-1")
                elif k == b"x-nonce":
                    nonce = v.decode("latin-1")
                elif k == b"x-signature":
                    sig = v.decode("latin-1")
            status, body = read_secret(path, name, mid, ts, nonce, sig, use_nacl)
        else:
            status, body = 404, _ERR_404
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return raw_app


raw_app = _make_raw_app(use_nacl=False)
raw_app_nacl = _make_raw_app(use_nacl=True)  # same, but Ed25519 verify via PyNaCl


# --- 2. Starlette Route -------------------------------------------------------
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import Route  # noqa: E402


async def _starlette_read(request: Request) -> Response:
    h = request.headers
    status, body = read_secret(
        request.url.path,
        request.path_params["name"],
        h.get("x-machine-id"),
        h.get("x-timestamp"),
        h.get("x-nonce"),
        h.get("x-signature"),
    )
    return Response(body, status_code=status, media_type="application/json")


starlette_app = Starlette(routes=[Route("/v1/secret/{name}", _starlette_read, methods=["GET"])])


# --- 5. FastAPI (reference only; imported lazily, not in the main venv) ------
def fastapi_factory():  # type: ignore[no-untyped-def]
    from typing import Annotated

    from fastapi import FastAPI, Header

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/v1/secret/{name}")
    async def read(  # type: ignore[no-untyped-def]
        name: str,
        request: Request,
        x_machine_id: Annotated[str | None, Header()] = None,
        x_timestamp: Annotated[str | None, Header()] = None,
        x_nonce: Annotated[str | None, Header()] = None,
        x_signature: Annotated[str | None, Header()] = None,
    ):
        status, body = read_secret(request.url.path, name, x_machine_id, x_timestamp, x_nonce, x_signature)
        return Response(body, status_code=status, media_type="application/json")

    return app
