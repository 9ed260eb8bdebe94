"""The shell script served at GET /v1/bootstrap/{token}, for hosts without Python.

It does what ``sikker machine bootstrap`` does, with openssl and curl: makes an
Ed25519 key on the host, enrolls its public key with the token, and writes
``identity.json`` (the five keys) and ``private.pem`` (PKCS#8 v1, as
``openssl genpkey`` writes it) under ``$SIKKERKEY_HOME/vaults/<vault>/``,
directories 0700, files 0600.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"^[A-Za-z0-9_.:/\-]+$")

TEMPLATE = r"""#!/bin/sh
# Sikker machine bootstrap: enrolls this host and writes its identity files.
set -eu
API_URL='__API_URL__'
VAULT_ID='__VAULT_ID__'
TOKEN='__TOKEN__'
BASE="${SIKKERKEY_HOME:-$HOME/.sikkerkey}"
DIR="$BASE/vaults/$VAULT_ID"
command -v openssl >/dev/null || { echo "sikker: openssl is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "sikker: curl is required" >&2; exit 1; }
umask 077
mkdir -p "$DIR"
chmod 700 "$BASE" "$BASE/vaults" "$DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
openssl genpkey -algorithm Ed25519 -out "$TMP/private.pem"
PUB=$(openssl pkey -in "$TMP/private.pem" -pubout -outform DER | tail -c 32 | base64 | tr -d '\n')
HOST=$(hostname 2>/dev/null | tr -cd 'A-Za-z0-9.-' || true)
[ -n "$HOST" ] || HOST=unknown
BODY=$(printf '{"token":"%s","publicKey":"%s","hostname":"%s","kind":"standard"}' "$TOKEN" "$PUB" "$HOST")
URL="$API_URL/v1/$VAULT_ID/enroll/register"
RESP=$(curl -fsS -X POST -H 'Content-Type: application/json' --data "$BODY" "$URL") || {
  echo "sikker: enrollment failed" >&2; exit 1; }
field() { printf '%s' "$RESP" | sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }
MACHINE_ID=$(field machineId)
MACHINE_NAME=$(field machineName)
ISSUED_URL=$(field apiUrl)
[ -n "$MACHINE_ID" ] || { echo "sikker: malformed enrollment response" >&2; exit 1; }
[ -n "$ISSUED_URL" ] || ISSUED_URL="$API_URL"
mv "$TMP/private.pem" "$DIR/private.pem"
chmod 600 "$DIR/private.pem"
printf '{"machineId":"%s","machineName":"%s","vaultId":"%s","apiUrl":"%s","privateKeyPath":"%s"}\n' \
  "$MACHINE_ID" "$MACHINE_NAME" "$VAULT_ID" "$ISSUED_URL" "$DIR/private.pem" > "$TMP/identity.json"
mv "$TMP/identity.json" "$DIR/identity.json"
chmod 600 "$DIR/identity.json"
echo "Enrolled machine $MACHINE_ID ($MACHINE_NAME) into $VAULT_ID; identity in $DIR"
"""


def bootstrap_script(api_url: str, vault_id: str, token: str) -> str:
    # Everything substituted is checked against a strict alphabet: nothing can break the quoting.
    for value in (api_url, vault_id, token):
        if not _SAFE.match(value):
            raise ValueError("unsafe value for the bootstrap script")
    return (
        TEMPLATE.replace("__API_URL__", api_url).replace("__VAULT_ID__", vault_id).replace("__TOKEN__", token)
    )
