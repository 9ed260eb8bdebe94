"""HTTP client for the admin API; turns error responses back into Sikker errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn

import httpx

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


class Client:
    def __init__(self, addr: str, token: str | None = None, timeout: float = 30.0) -> None:
        self.addr = addr.rstrip("/")
        headers = {"user-agent": "sikker-cli"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.addr, headers=headers, timeout=timeout)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as e:
            raise Unavailable(f"cannot reach the Sikker server at {self.addr} ({e})") from e
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
            raise Unavailable(f"cannot reach the Sikker server at {self.addr} ({e})") from e

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, body or {})

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
