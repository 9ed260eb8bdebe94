"""The shell script served at GET /v1/bootstrap/{token}, for hosts without Python.

It does what ``sikker machine bootstrap`` does, with openssl and curl: makes an
Ed25519 key on the host, enrolls its public key with the token (POST to the same
URL), and writes ``identity.json`` (the five keys) and ``private.pem`` (PKCS#8 v1,
as ``openssl genpkey`` writes it) under ``$SIKKERKEY_HOME/vaults/<vault>/``,
directories 0700, files 0600.

The script never parses JSON: the server answers the enrollment with the four
server-side keys of identity.json already encoded as one line of JSON
(``identity_head``), and the script only appends the local key path, which it
escapes itself. Every value put into the script is shell-quoted here.
"""

from __future__ import annotations

import shlex
from typing import Any

import orjson

TEMPLATE = r"""#!/bin/sh
# Sikker machine bootstrap: enrolls this host and writes its identity files.
set -eu
API_URL=__API_URL__
VAULT_ID=__VAULT_ID__
URL=__URL__
BASE="${SIKKERKEY_HOME:-$HOME/.sikkerkey}"
DIR="$BASE/vaults/$VAULT_ID"
command -v openssl >/dev/null || { echo "sikker: openssl is required" >&2; exit 1; }
command -v curl >/dev/null || { echo "sikker: curl is required" >&2; exit 1; }
case "$DIR" in
  *[[:cntrl:]]*) echo "sikker: $BASE: control characters in the path" >&2; exit 1 ;;
esac
umask 077
mkdir -p "$DIR"
chmod 700 "$BASE" "$BASE/vaults" "$DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
openssl genpkey -algorithm Ed25519 -out "$TMP/private.pem"
PUB=$(openssl pkey -in "$TMP/private.pem" -pubout -outform DER | tail -c 32 | base64 | tr -d '\n')
HOST=$(hostname 2>/dev/null | tr -cd 'A-Za-z0-9.-' || true)
[ -n "$HOST" ] || HOST=unknown
BODY=$(printf '{"publicKey":"%s","hostname":"%s"}' "$PUB" "$HOST")
curl -fsS --globoff -X POST -H 'Content-Type: application/json' --data "$BODY" -o "$TMP/answer" "$URL" || {
  echo "sikker: enrollment failed" >&2; exit 1; }
# The answer is one line: {"machineId":"...",...} with the keys identity.json takes from
# the server, JSON-encoded by the server. Only its fixed prefix is checked here.
MACHINE_ID=$(sed -n 's/^{"machineId":"\([A-Za-z0-9_-]*\)",.*}$/\1/p' "$TMP/answer")
[ -n "$MACHINE_ID" ] && [ "$(wc -l < "$TMP/answer")" -le 1 ] || {
  echo "sikker: malformed enrollment response" >&2; exit 1; }
HEAD=$(sed 's/}$//' "$TMP/answer")
KEY_PATH=$(printf '%s' "$DIR/private.pem" | sed 's/\\/\\\\/g; s/"/\\"/g')
printf '%s,"privateKeyPath":"%s"}\n' "$HEAD" "$KEY_PATH" > "$TMP/identity.json"
mv "$TMP/private.pem" "$DIR/private.pem"
chmod 600 "$DIR/private.pem"
mv "$TMP/identity.json" "$DIR/identity.json"
chmod 600 "$DIR/identity.json"
echo "Enrolled machine $MACHINE_ID into $VAULT_ID; identity in $DIR"
"""


def bootstrap_script(api_url: str, vault_id: str, token: str) -> str:
    """The script for one enrollment token; every substituted value is shell-quoted."""
    url = f"{api_url.rstrip('/')}/v1/bootstrap/{token}"
    return (
        TEMPLATE.replace("__API_URL__", shlex.quote(api_url))
        .replace("__VAULT_ID__", shlex.quote(vault_id))
        .replace("__URL__", shlex.quote(url))
    )


def identity_head(machine_id: str, machine_name: str, vault_id: str, api_url: str) -> bytes:
    """The server's part of identity.json, as one line of JSON (machineId first, for the script)."""
    head: dict[str, Any] = {
        "machineId": machine_id,
        "machineName": machine_name,
        "vaultId": vault_id,
        "apiUrl": api_url,
    }
    return orjson.dumps(head)
