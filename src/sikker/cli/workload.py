"""Workload identity on the machine side: where the platform's JWT comes from, and the login
that trades it (with a freshly generated Ed25519 public key) for a machine identity.

The JWT is a credential: it is read from a file or an environment variable at call time, or
fetched from the GitHub Actions runner, and never printed, logged or taken from the command
line (where ``ps`` would show it). The server's answer is that of enrollment
(``machineId, machineName, vaultId, expiresAt, apiUrl``).
"""

from __future__ import annotations

import base64
import functools
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import click
import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sikker.cli import identity as identities
from sikker.cli.client import error_for_status, tls_verify, unreachable
from sikker.cli.machine_client import USER_AGENT, check_api_url, encode, error_message
from sikker.errors import InvalidInput, SikkerError, Unavailable

GITHUB_URL_ENV = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_TOKEN_ENV = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"
DEFAULT_AUDIENCE = "sikker"
GITHUB_TIMEOUT = 10.0
# A JWT from any platform we know is a few KiB; a file far larger than that is a mistake.
MAX_JWT_BYTES = 64 * 1024
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class JwtSource:
    """Where this run takes its JWT from: exactly one of the three ways, or none."""

    jwt_file: str | None = None
    jwt_env: str | None = None
    github_actions: bool = False
    audience: str = DEFAULT_AUDIENCE

    @property
    def given(self) -> bool:
        return bool(self.jwt_file or self.jwt_env or self.github_actions)

    def check(self) -> None:
        """Refuse two sources at once, before anything is read or fetched."""
        if sum((bool(self.jwt_file), bool(self.jwt_env), self.github_actions)) > 1:
            raise InvalidInput("give one of --jwt-file, --jwt-env or --github-actions")


def read_jwt(source: JwtSource, transport: httpx.BaseTransport | None = None) -> str:
    """The JWT, read now (a projected token file is rotated under us, so never cached)."""
    source.check()
    if source.jwt_file:
        return _from_file(source.jwt_file)
    if source.jwt_env:
        value = os.environ.get(source.jwt_env, "").strip()
        if not value:
            raise InvalidInput(f"the environment variable {source.jwt_env} is not set or empty")
        return _checked(value, f"${source.jwt_env}")
    if source.github_actions:
        return github_actions_token(source.audience, transport=transport)
    raise InvalidInput("give the JWT with --jwt-file, --jwt-env or --github-actions")


def _from_file(path: str) -> str:
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_JWT_BYTES + 1)
    except OSError as e:
        raise InvalidInput(f"cannot read the JWT from {path}: {e.strerror}") from e
    if len(data) > MAX_JWT_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_JWT_BYTES} bytes: not a JWT")
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise InvalidInput(f"{path} does not hold a JWT (not ASCII text)") from e
    return _checked(text, path)


def _checked(token: str, where: str) -> str:
    """A compact JWS has three dot-separated parts; anything else is a wrong file or variable.
    The message names where the token came from, never the token."""
    if len(token) > MAX_JWT_BYTES:
        raise InvalidInput(f"{where} is larger than {MAX_JWT_BYTES} bytes: not a JWT")
    if not token or token.count(".") != 2 or any(c.isspace() for c in token):
        raise InvalidInput(f"{where} does not hold a JWT (expected header.payload.signature)")
    return token


def github_actions_token(
    audience: str, transport: httpx.BaseTransport | None = None, timeout: float = GITHUB_TIMEOUT
) -> str:
    """The job's OIDC token from the runner, for ``audience``.

    GitHub sets ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` only in
    jobs whose workflow grants ``permissions: id-token: write``.
    """
    url = os.environ.get(GITHUB_URL_ENV, "").strip()
    bearer = os.environ.get(GITHUB_TOKEN_ENV, "").strip()
    if not url or not bearer:
        missing = " and ".join(n for n, v in ((GITHUB_URL_ENV, url), (GITHUB_TOKEN_ENV, bearer)) if not v)
        raise InvalidInput(
            f"--github-actions: {missing} not set. Run inside a GitHub Actions job whose workflow "
            "grants 'permissions: id-token: write'"
        )
    if not audience:
        raise InvalidInput("--audience cannot be empty")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{GITHUB_URL_ENV} is not an http(s) URL")
    request_url = f"{url}{'&' if parts.query else '?'}audience={quote(audience, safe='')}"
    where = f"{parts.scheme}://{parts.netloc}"
    try:
        with httpx.Client(timeout=timeout, transport=transport) as http:
            response = http.get(
                request_url,
                headers={"Authorization": f"Bearer {bearer}", "Accept": "application/json"},
            )
    except httpx.HTTPError as e:
        raise Unavailable(
            f"cannot reach the GitHub Actions token service at {where}: {type(e).__name__}"
        ) from e
    if not response.is_success:
        raise Unavailable(f"the GitHub Actions token service at {where} answered HTTP {response.status_code}")
    try:
        value = response.json()["value"]
    except (ValueError, KeyError, TypeError) as e:
        raise SikkerError("the GitHub Actions token service answered without a token ('value')") from e
    if not isinstance(value, str):
        raise SikkerError("the GitHub Actions token service answered without a token ('value')")
    return _checked(value.strip(), "the GitHub Actions token")


def _refuse_jwt_argument(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        raise InvalidInput(
            "a JWT on the command line is visible to every user (ps): use --jwt-file PATH or --jwt-env VAR"
        )


def refuse_jwt_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A hidden ``--jwt`` that explains why a JWT is never taken as an argument."""
    return click.option(
        "--jwt",
        hidden=True,
        expose_value=False,
        callback=_refuse_jwt_argument,
        help="Refused: a JWT on the command line leaks through ps.",
    )(fn)


def jwt_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --role, --jwt-file, --jwt-env, --github-actions and --audience; the command gets
    ``role`` and ``jwt_source`` (a ``JwtSource``)."""

    @click.option("--role", default=None, help="JWT role to log in with (name or id); needs a JWT source.")
    @click.option(
        "--jwt-file",
        default=None,
        metavar="PATH",
        help="Log in with the JWT in this file (read at each use, e.g. a projected token).",
    )
    @click.option("--jwt-env", default=None, metavar="VAR", help="Log in with the JWT in this variable.")
    @click.option(
        "--github-actions",
        is_flag=True,
        help="Log in with this GitHub Actions job's OIDC token (needs 'id-token: write').",
    )
    @click.option(
        "--audience",
        default=DEFAULT_AUDIENCE,
        show_default=True,
        help="With --github-actions: the audience to ask the runner for (a bound audience of the role).",
    )
    @refuse_jwt_argument
    @functools.wraps(fn)
    def wrapper(
        role: str | None,
        jwt_file: str | None,
        jwt_env: str | None,
        github_actions: bool,
        audience: str,
        **kwargs: Any,
    ) -> Any:
        source = JwtSource(jwt_file, jwt_env, github_actions, audience)
        source.check()
        if source.given and not role:
            raise InvalidInput("logging in with a JWT needs --role (the JWT role's name or id)")
        if role and not source.given:
            raise InvalidInput("--role needs a JWT: --jwt-file, --jwt-env or --github-actions")
        if audience != DEFAULT_AUDIENCE and not github_actions:
            raise InvalidInput("--audience applies only with --github-actions")
        return fn(role=role, jwt_source=source, **kwargs)

    return wrapper


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def register(
    url: str,
    vault_id: str,
    route: str,
    body: dict[str, str],
    transport: httpx.BaseTransport | None = None,
    ca_cert: str | None = None,
) -> dict[str, Any]:
    """POST an unsigned registration (``enroll/register`` or ``auth/jwt/login``) and return the
    checked answer: the credential in ``body`` is the proof, the public key the new identity."""
    base = check_api_url(url)
    vault = identities.normalise_vault_id(vault_id)
    headers = {"Content-Type": "application/json", "user-agent": USER_AGENT}
    try:
        with httpx.Client(timeout=30.0, transport=transport, verify=tls_verify(ca_cert)) as http:
            response = http.post(f"{base}/v1/{vault}/{route}", content=encode(body), headers=headers)
    except httpx.HTTPError as e:
        raise unreachable(base, "(from --url or SIKKERKEY_API_URL)", e) from e
    if not response.is_success:
        raise error_for_status(response.status_code, error_message(response))
    try:
        answer = response.json()
    except ValueError:
        answer = None
    # Both end up in a file path and in request headers, so they must be plain ids.
    if not isinstance(answer, dict) or not all(
        isinstance(answer.get(k), str) and _PLAIN_ID.fullmatch(answer[k]) for k in ("machineId", "vaultId")
    ):
        raise SikkerError("malformed enrollment response: machineId and vaultId are required")
    return answer


def jwt_login(
    url: str,
    vault_id: str,
    role: str,
    jwt: str,
    name: str | None,
    public_key: Ed25519PublicKey,
    transport: httpx.BaseTransport | None = None,
    ca_cert: str | None = None,
) -> dict[str, Any]:
    """Register ``public_key`` through a JWT role (``POST /v1/{vault}/auth/jwt/login``)."""
    body = {
        "role": role,
        "jwt": jwt,
        "publicKey": public_key_b64(public_key),
        "hostname": socket.gethostname() or "serverless",
    }
    if name:
        body["name"] = name
    return register(url, vault_id, "auth/jwt/login", body, transport=transport, ca_cert=ca_cert)
