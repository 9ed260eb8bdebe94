"""HTTP client for the admin API; turns error responses back into Sikker errors."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import httpx

from sikker.cli.options import ADDR_FROM_FLAG
from sikker.errors import (
    Conflict,
    InvalidInput,
    Locked,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    SikkerError,
    Unauthenticated,
    Unavailable,
)

_BY_STATUS: dict[int, type[SikkerError]] = {
    400: InvalidInput,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    423: Locked,
    429: RateLimited,
    503: Unavailable,
}


def error_for_status(status: int, message: str) -> SikkerError:
    """The Sikker error an HTTP error status stands for."""
    return _BY_STATUS.get(status, SikkerError)(message)


def tls_verify(ca_cert: str | None) -> ssl.SSLContext | bool:
    """What httpx checks the server's certificate against: the system's CAs, or ``ca_cert``."""
    if not ca_cert:
        return True
    try:
        return ssl.create_default_context(cafile=ca_cert)
    except (OSError, ssl.SSLError) as e:
        raise InvalidInput(f"cannot load the CA certificate {ca_cert} (--ca-cert, SIKKER_CACERT): {e}") from e


def unreachable(url: str, how_set: str, error: httpx.HTTPError) -> Unavailable:
    """The error for a server that did not answer: where the URL came from, what to do next."""
    cause = str(error) or type(error).__name__
    hint = (
        " If the server uses a private CA or a self-signed certificate, pass it with --ca-cert "
        "(or SIKKER_CACERT)."
        if "CERTIFICATE_VERIFY_FAILED" in cause
        else ""
    )
    return Unavailable(f"cannot reach the Sikker server at {url} {how_set}: {cause}.{hint}")


class Client:
    def __init__(
        self,
        addr: str,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        addr_source: str = ADDR_FROM_FLAG,
        ca_cert: str | None = None,
    ) -> None:
        self.addr = addr.rstrip("/")
        self.addr_source = addr_source
        headers = {"user-agent": "sikker-cli"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.addr, headers=headers, timeout=timeout, verify=tls_verify(ca_cert)
        )

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as e:
            raise unreachable(self.addr, self.addr_source, e) from e
        if response.is_success:
            return response.json()
        self._raise(response)

    @staticmethod
    def _raise(response: httpx.Response) -> NoReturn:
        try:
            message = str(response.json()["error"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        raise error_for_status(response.status_code, message)

    def stream_lines(self, method: str, path: str, params: dict[str, str] | None = None) -> Iterator[bytes]:
        """Yield the response body in chunks (large exports); errors as for ``request``."""
        try:
            with self._http.stream(method, path, params=params) as response:
                if not response.is_success:
                    response.read()
                    self._raise(response)
                yield from response.iter_bytes()
        except httpx.HTTPError as e:
            raise unreachable(self.addr, self.addr_source, e) from e

    def download(self, method: str, path: str, sink: Callable[[bytes], object]) -> dict[str, str]:
        """Send the response body, chunk by chunk, to ``sink``; returns the response headers.
        No timeout between chunks beyond the client's (a large backup keeps arriving)."""
        try:
            # The server builds the whole file before the first byte: allow it time.
            timeout = httpx.Timeout(30.0, read=3600.0)
            with self._http.stream(method, path, json={}, timeout=timeout) as response:
                if not response.is_success:
                    response.read()
                    self._raise(response)
                for chunk in response.iter_bytes():
                    sink(chunk)
                return dict(response.headers)
        except httpx.HTTPError as e:
            raise unreachable(self.addr, self.addr_source, e) from e

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
