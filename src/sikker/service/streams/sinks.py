"""Sinks: where audit streams deliver records (the I/O edge of streams).

Every sink takes a batch with ``deliver(records)`` and either returns, meaning
the batch was handed over, or raises ``DeliveryError`` (``DeliveryRefused`` when
the destination is not allowed). Foreign exceptions (httpx, OSError) are wrapped
there. Error messages name the sink and the kind of failure but never a record,
and never a webhook URL's userinfo, path or query (those often embed a token, as
Slack-style URLs do).

Network sinks resolve their host at every delivery, check each address against
the operator's ``stream_allowed_networks`` and connect to the checked address
(see ``destination``). The file sink writes only inside the stream directory.

Delivery is at-least-once: a batch that fails part-way is retried whole, so a
receiver may see a record twice and can dedupe on ``(chain, seq)``.

Sinks are meant to be driven by one delivery worker each; the socket and file
sinks still lock around a batch so concurrent callers cannot interleave frames.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from sikker.core.confinement import OUTSIDE, confine
from sikker.core.netpolicy import IPAddress
from sikker.service.streams import formats
from sikker.service.streams.destination import (
    DeliveryError,
    DeliveryRefused,
    Destination,
    Resolver,
    checked,
    resolve,
    system_resolver,
)
from sikker.service.streams.formats import Record

if TYPE_CHECKING:  # imported on first use: a server without webhook streams starts without it
    import httpx

__all__ = ["DeliveryError", "DeliveryRefused", "JsonlSink", "Sink", "SyslogSink", "WebhookSink"]

UDP_MAX_DATAGRAM = 8192
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Loggers of the HTTP client, which write every request URL (query string included) at INFO.
HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")


@runtime_checkable
class Sink(Protocol):
    def deliver(self, records: list[Record]) -> None:
        """Hand ``records`` over, or raise DeliveryError."""


@runtime_checkable
class NetworkSink(Protocol):
    def destination(self) -> Destination:
        """Resolve and check where the next delivery would connect (DeliveryError if the
        host does not resolve; refused addresses are in ``Destination.refused``)."""


def quiet_http_client_log() -> None:
    """Raise the HTTP client's loggers to WARNING: at INFO they log each webhook URL with its
    query string and userinfo, where tokens live. Our own messages use redacted labels."""
    for name in HTTP_CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _failure(what: str, exc: BaseException) -> DeliveryError:
    return DeliveryError(f"{what}: {type(exc).__name__}")


class WebhookSink:
    """POSTs ``{"records": [...]}`` signed with HMAC-SHA256 (see ``formats``).

    Only ``https://`` is accepted, except ``http://`` to a loopback host for
    tests and local collectors (loopback must still be in ``allowed_networks``).
    Redirects are not followed: a redirect could move the signed audit log to
    another host or downgrade it to plain HTTP, so a 3xx counts as a failure
    like any other non-2xx answer.

    Each delivery resolves the host once and sends to the checked address: the
    request goes to the IP, with the original ``Host`` header and, for https,
    the original name for SNI and certificate verification.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        allowed_networks: Sequence[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        import httpx

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
        self._allowed = tuple(allowed_networks)
        self._resolver = resolver
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._client = httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
        # Safe to show: scheme, host and port only.
        port = f":{parsed.port}" if parsed.port else ""
        self._label = f"webhook {parsed.scheme}://{_bracketed(parsed.host)}{port}"

    def destination(self) -> Destination:
        return resolve(self._label, self._url.host, self._port, self._allowed, self._resolver)

    def deliver(self, records: list[Record]) -> None:
        """POST the batch; an empty batch sends nothing."""
        if not records:
            return
        pinned = checked(self._label, self._url.host, self._port, self._allowed, self._resolver).pinned
        body = formats.webhook_body(records)
        headers = formats.webhook_headers(self._secret, int(self._clock()), body)
        headers |= {
            "Content-Type": "application/json",
            "User-Agent": "sikker-audit-stream",
            "Host": self._url.netloc.decode("ascii"),
        }
        extensions = {"sni_hostname": self._url.host} if self._url.scheme == "https" else {}
        import httpx

        try:
            response = self._client.post(
                self._url.copy_with(host=str(pinned)), content=body, headers=headers, extensions=extensions
            )
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

    Every delivery resolves the host and checks the addresses; a socket whose
    peer is no longer among them is replaced by one to the checked address.
    """

    def __init__(
        self,
        host: str,
        port: int,
        protocol: Literal["udp", "tcp"],
        hostname: str | None = None,
        app: str = "sikker",
        timeout: float = 5.0,
        allowed_networks: Sequence[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        if protocol not in ("udp", "tcp"):
            raise ValueError("syslog protocol must be 'udp' or 'tcp'")
        if not 0 < port < 65536:
            raise ValueError("syslog port must be between 1 and 65535")
        self._host, self._port = host, port
        self._allowed = tuple(allowed_networks)
        self._resolver = resolver
        self._peer: IPAddress | None = None
        self._protocol = protocol
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._app = app
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._label = f"syslog {protocol} {host}:{port}"

    def destination(self) -> Destination:
        return resolve(self._label, self._host, self._port, self._allowed, self._resolver)

    def deliver(self, records: list[Record]) -> None:
        """Send every record; raise DeliveryError on the first failure."""
        if not records:
            return
        with self._lock:
            allowed = checked(self._label, self._host, self._port, self._allowed, self._resolver)
            if self._peer not in allowed.addresses:
                self._drop()
            try:
                if self._protocol == "udp":
                    self._send_udp(records, allowed.pinned)
                else:
                    self._send_tcp(records, allowed.pinned)
            except OSError as e:
                self._drop()
                raise _failure(f"{self._label} failed", e) from e

    def _send_udp(self, records: list[Record], pinned: IPAddress) -> None:
        if self._sock is None:
            family = socket.AF_INET6 if pinned.version == 6 else socket.AF_INET
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            self._sock.settimeout(self._timeout)
            # connect() fixes the peer so the kernel can report ICMP refusals.
            self._sock.connect((str(pinned), self._port))
            self._peer = pinned
        for record in records:
            line = formats.syslog_line(record, self._hostname, self._app, max_bytes=UDP_MAX_DATAGRAM)
            self._sock.send(line)

    def _send_tcp(self, records: list[Record], pinned: IPAddress) -> None:
        if self._sock is not None and _peer_closed(self._sock):
            self._drop()
        if self._sock is None:
            self._sock = socket.create_connection((str(pinned), self._port), timeout=self._timeout)
            self._peer = pinned
        frames = b"".join(
            formats.octet_counted(formats.syslog_line(r, self._hostname, self._app)) for r in records
        )
        self._sock.sendall(frames)

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._peer = None

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
    """Appends one JSON line per record to a file inside the stream directory, fsynced per batch.

    The path is relative to ``directory`` (``sikker.core.confinement``). Before each batch
    the sink resolves the path and refuses one that leaves the directory through a symlink;
    it then opens every component with ``O_NOFOLLOW`` relative to the directory, so a
    symlink planted in between is not followed either. The directory and any missing
    subdirectory are created 0700.

    The file is opened per batch, so rotation by rename (logrotate without
    ``copytruncate``) just works: the next batch creates a fresh file. A new
    file is created with mode 0600 and its directory is fsynced so the file
    itself survives a crash; an existing file keeps the mode the operator
    gave it (a log shipper may need to read it).
    """

    def __init__(self, directory: Path, path: str) -> None:
        self._directory = Path(os.path.abspath(directory))
        try:
            self.relative = confine(path, PurePosixPath(self._directory))
        except ValueError:
            if not os.path.isabs(path):
                raise
            # An absolute path may name the directory through its resolved form.
            real = PurePosixPath(self._directory.resolve())
            self.relative = confine(path, real)
        self._lock = threading.Lock()
        self._label = f"jsonl {self.relative}"

    def check(self) -> None:
        """Refuse (DeliveryRefused) a path that leaves the directory through a symlink."""
        try:
            root = self._directory.resolve()
            inside = (root / self.relative).resolve().is_relative_to(root)
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            raise DeliveryRefused(f"{self._label}: cannot resolve the path: {type(e).__name__}") from e
        if not inside:
            raise DeliveryRefused(f"{self._label}: {OUTSIDE}, and a symlink leads out of it")

    def deliver(self, records: list[Record]) -> None:
        """Append the batch and fsync it before returning."""
        if not records:
            return
        data = b"".join(formats.jsonl_line(r) for r in records)
        with self._lock:
            self.check()
            try:
                self._append(data)
            except OSError as e:
                raise _failure(f"{self._label} not written", e) from e

    def _append(self, data: bytes) -> None:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        parent = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in self.relative.parts[:-1]:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=parent)
                child = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
                )
                os.close(parent)
                parent = child
            self._write(parent, self.relative.name, data)
        finally:
            os.close(parent)

    def _write(self, parent: int, name: str, data: bytes) -> None:
        # O_NONBLOCK: a FIFO planted under the name fails instead of blocking the dispatcher.
        flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=parent)
            created = True
        except FileExistsError:
            fd = os.open(name, flags, dir_fd=parent)
            created = False
        with os.fdopen(fd, "ab") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DeliveryRefused(f"{self._label}: not a regular file")
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if created:
            os.fsync(parent)

    def close(self) -> None:
        """Nothing stays open between batches; present for symmetry with other sinks."""


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host
