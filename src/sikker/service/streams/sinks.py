"""Sinks: where audit streams deliver records (the I/O edge of streams).

Every sink takes a batch with ``deliver(records)`` and either returns, meaning
the batch was handed over, or raises ``DeliveryError``. Foreign exceptions
(httpx, OSError) are wrapped there. Error messages name the sink and the kind
of failure but never a record, and never a webhook URL's path or query (those
often embed a token, as Slack-style URLs do).

Delivery is at-least-once: a batch that fails part-way is retried whole, so a
receiver may see a record twice and can dedupe on ``(chain, seq)``.

Sinks are meant to be driven by one delivery worker each; the socket and file
sinks still lock around a batch so concurrent callers cannot interleave frames.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import httpx

from sikker.errors import SikkerError
from sikker.service.streams import formats
from sikker.service.streams.formats import Record

UDP_MAX_DATAGRAM = 8192
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class DeliveryError(SikkerError):
    """A sink could not hand a batch over; the caller should retry later."""

    default_message = "audit stream delivery failed"


@runtime_checkable
class Sink(Protocol):
    def deliver(self, records: list[Record]) -> None:
        """Hand ``records`` over, or raise DeliveryError."""


def _failure(what: str, exc: BaseException) -> DeliveryError:
    return DeliveryError(f"{what}: {type(exc).__name__}")


class WebhookSink:
    """POSTs ``{"records": [...]}`` signed with HMAC-SHA256 (see ``formats``).

    Only ``https://`` is accepted, except ``http://`` to a loopback host for
    tests and local collectors. Redirects are not followed: a redirect could
    move the signed audit log to another host or downgrade it to plain HTTP,
    so a 3xx counts as a failure like any other non-2xx answer.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as e:
            raise ValueError("webhook URL is not a valid URL") from e
        if not parsed.host:
            raise ValueError("webhook URL has no host")
        loopback = parsed.host in _LOOPBACK_HOSTS
        if not (parsed.scheme == "https" or (parsed.scheme == "http" and loopback)):
            raise ValueError(
                "webhook URL must start with https:// (http:// is allowed only to localhost or 127.0.0.1)"
            )
        if not secret:
            raise ValueError("webhook secret must not be empty")
        self._url = parsed
        self._secret = secret
        self._clock = clock
        self._client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        # Safe to show: scheme, host and port only.
        port = f":{parsed.port}" if parsed.port else ""
        self._label = f"webhook {parsed.scheme}://{parsed.host}{port}"

    def deliver(self, records: list[Record]) -> None:
        """POST the batch; an empty batch sends nothing."""
        if not records:
            return
        body = formats.webhook_body(records)
        headers = formats.webhook_headers(self._secret, int(self._clock()), body)
        headers |= {"Content-Type": "application/json", "User-Agent": "sikker-audit-stream"}
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as e:
            raise _failure(f"{self._label} unreachable", e) from e
        if not response.is_success:
            raise DeliveryError(f"{self._label} answered HTTP {response.status_code}")

    def close(self) -> None:
        self._client.close()


class SyslogSink:
    """RFC 5424 syslog over UDP (one datagram per record) or TCP (RFC 6587 octet counting).

    UDP is fire-and-forget: a send that the kernel accepts counts as
    delivered, and records are shrunk to fit ``UDP_MAX_DATAGRAM`` bytes (see
    ``formats.syslog_line``). TCP keeps one connection open across batches.
    Before reusing it the sink checks whether the collector has closed it
    (a syslog collector never sends, so a readable socket means EOF or reset)
    and reconnects; on any send error it drops the connection and raises, and
    the next ``deliver`` connects afresh. TCP syslog has no acknowledgements,
    so a collector that dies mid-batch can still lose what the kernel buffered.
    """

    def __init__(
        self,
        host: str,
        port: int,
        protocol: Literal["udp", "tcp"],
        hostname: str | None = None,
        app: str = "sikker",
        timeout: float = 5.0,
    ) -> None:
        if protocol not in ("udp", "tcp"):
            raise ValueError("syslog protocol must be 'udp' or 'tcp'")
        if not 0 < port < 65536:
            raise ValueError("syslog port must be between 1 and 65535")
        self._address = (host, port)
        self._protocol = protocol
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._app = app
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._label = f"syslog {protocol} {host}:{port}"

    def deliver(self, records: list[Record]) -> None:
        """Send every record; raise DeliveryError on the first failure."""
        if not records:
            return
        with self._lock:
            try:
                if self._protocol == "udp":
                    self._send_udp(records)
                else:
                    self._send_tcp(records)
            except OSError as e:
                self._drop()
                raise _failure(f"{self._label} failed", e) from e

    def _send_udp(self, records: list[Record]) -> None:
        if self._sock is None:
            family, kind, proto, _, address = socket.getaddrinfo(*self._address, type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(family, kind, proto)
            self._sock.settimeout(self._timeout)
            # connect() fixes the peer so the kernel can report ICMP refusals.
            self._sock.connect(address)
        for record in records:
            line = formats.syslog_line(record, self._hostname, self._app, max_bytes=UDP_MAX_DATAGRAM)
            self._sock.send(line)

    def _send_tcp(self, records: list[Record]) -> None:
        if self._sock is not None and _peer_closed(self._sock):
            self._drop()
        if self._sock is None:
            self._sock = socket.create_connection(self._address, timeout=self._timeout)
        frames = b"".join(
            formats.octet_counted(formats.syslog_line(r, self._hostname, self._app)) for r in records
        )
        self._sock.sendall(frames)

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _peer_closed(sock: socket.socket) -> bool:
    """Whether the collector has closed or reset a connection we only write to."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


class JsonlSink:
    """Appends one JSON line per record to a file, fsynced per batch.

    The file is opened per batch, so rotation by rename (logrotate without
    ``copytruncate``) just works: the next batch creates a fresh file. A new
    file is created with mode 0600 and its directory is fsynced so the file
    itself survives a crash; an existing file keeps the mode the operator
    gave it (a log shipper may need to read it).
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()

    def deliver(self, records: list[Record]) -> None:
        """Append the batch and fsync it before returning."""
        if not records:
            return
        data = b"".join(formats.jsonl_line(r) for r in records)
        with self._lock:
            try:
                self._append(data)
            except OSError as e:
                raise _failure(f"jsonl {self._path} not written", e) from e

    def _append(self, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self._path, flags | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(self._path, flags)
            created = False
        with os.fdopen(fd, "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if created:
            _fsync_dir(self._path.parent)

    def close(self) -> None:
        """Nothing stays open between batches; present for symmetry with other sinks."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
