"""Kubernetes TokenReview: ask the cluster's API server whether a service-account token is
still valid (not revoked with its pod or service account), for roles in ``tokenreview`` mode.

The cluster (API URL, CA file, reviewer token file) comes from the operator's configuration
(``[kubernetes_clusters.NAME]``), never from a vault admin. The reviewer token is read from its
file on every review, since projected tokens rotate; without a token file the presented token
is its own bearer. Bounded time and response size; no redirects.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from sikker.config import KubernetesCluster
from sikker.core import jwt_roles as checks
from sikker.core.jwt_roles import Check

if TYPE_CHECKING:
    import httpx

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
MAX_RESPONSE_BYTES = 256 * 1024
MAX_TOKEN_FILE_BYTES = 64 * 1024


def _reviewer_token(path: Path | None, presented: str) -> str:
    if path is None:
        return presented
    with path.open("rb") as f:
        data = f.read(MAX_TOKEN_FILE_BYTES + 1)
    if len(data) > MAX_TOKEN_FILE_BYTES:
        raise OSError("reviewer token file too large")
    return data.decode("ascii", "replace").strip()


def review(
    cluster: KubernetesCluster | None,
    token: str,
    audiences: Sequence[str],
    timeout: float,
    transport: httpx.BaseTransport | None = None,
) -> Check:
    """``tokenreview``: the API server says the token is authenticated (for one of
    ``audiences``, when it reports audiences)."""
    import httpx  # on first use: a server that never reviews a token starts without it

    if cluster is None:
        return checks.failed(checks.TOKENREVIEW, "the role's cluster is not configured on this server")
    try:
        bearer = _reviewer_token(cluster.token_file, token)
    except OSError:
        return checks.failed(checks.TOKENREVIEW, "the reviewer token file cannot be read")
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": list(audiences)},
    }
    verify: ssl.SSLContext | bool = True
    try:
        if cluster.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(cluster.ca_file))
    except (OSError, ssl.SSLError):
        return checks.failed(checks.TOKENREVIEW, "the cluster's CA file cannot be read")
    try:
        with (
            httpx.Client(
                transport=transport, verify=verify, timeout=httpx.Timeout(timeout), follow_redirects=False
            ) as client,
            client.stream(
                "POST",
                cluster.api_url + PATH,
                content=orjson.dumps(body),
                headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
            ) as response,
        ):
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    return checks.failed(checks.TOKENREVIEW, "the API server's answer is too large")
            status_code = response.status_code
    except httpx.HTTPError as e:
        return checks.failed(checks.TOKENREVIEW, f"the API server is unreachable ({type(e).__name__})")
    if status_code not in (200, 201):
        return checks.failed(checks.TOKENREVIEW, f"the API server answered HTTP {status_code}")
    try:
        status = orjson.loads(bytes(data)).get("status") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return checks.failed(checks.TOKENREVIEW, "the API server did not answer a TokenReview")
    if not isinstance(status, dict) or status.get("authenticated") is not True:
        return checks.failed(checks.TOKENREVIEW, "the API server did not authenticate the token")
    reported = status.get("audiences")
    if isinstance(reported, list) and reported and not set(reported) & set(audiences):
        return checks.failed(checks.TOKENREVIEW, "the API server authenticated it for other audiences")
    return checks.passed(checks.TOKENREVIEW)
