"""Email alerts over SMTP: one message per batch, for people (canary trips, lockouts).

The subject names the most severe action in the batch; the body lists each
record (time, action, actor, source IP, target ids, reason) and carries the
records as JSON. Records never contain secret values, so neither do the mails.

Like the other network sinks, each delivery resolves the SMTP host once, checks every
address (``destination``) and connects to the checked one; the host name is still the one
STARTTLS checks the server's certificate against (system trust store, or ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage

import orjson

from sikker.service.streams.destination import (
    DeliveryError,
    Destination,
    Resolver,
    checked,
    resolve,
    system_resolver,
)
from sikker.service.streams.formats import SEVERITIES, Record


class _PinnedSMTP(smtplib.SMTP):
    """SMTP to a host name, connected to an address checked beforehand (no second lookup)."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        self._address = address
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self._address, port), timeout, self.source_address)


class EmailSink:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: list[str],
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        allowed_networks: Sequence[str] = (),
        resolver: Resolver = system_resolver,
    ) -> None:
        if not recipients or not all("@" in r for r in recipients) or "@" not in sender:
            raise ValueError("email streams need a sender and at least one recipient address")
        if not 0 < port < 65536:
            raise ValueError("SMTP port must be between 1 and 65535")
        self._host, self._port, self._sender, self._recipients = host, port, sender, recipients
        self._starttls, self._username, self._password, self._timeout = starttls, username, password, timeout
        self._allowed, self._resolver = tuple(allowed_networks), resolver
        self._label = f"smtp {host}:{port}"

    def destination(self) -> Destination:
        return resolve(self._label, self._host, self._port, self._allowed, self._resolver)

    def deliver(self, records: list[Record]) -> None:
        if not records:
            return
        worst = max(
            records,
            key=lambda r: (
                SEVERITIES.index(r.get("severity", "info")) if r.get("severity") in SEVERITIES else 0
            ),
        )
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = ", ".join(self._recipients)
        message["Subject"] = f"[Sikker] {worst.get('severity', 'info').upper()}: {worst.get('action')}" + (
            f" (+{len(records) - 1} more)" if len(records) > 1 else ""
        )
        lines = []
        for r in records:
            when = datetime.fromtimestamp(int(r.get("time_ms", 0)) / 1000, tz=UTC).isoformat(
                timespec="seconds"
            )
            target = " ".join(f"{k}={v}" for k, v in (r.get("target") or {}).items())
            lines.append(
                f"{when}  {r.get('severity')}  {r.get('action')}  {r.get('actor_kind')}:{r.get('actor_id')}"
                f"  from {r.get('source_ip') or '-'}  {target}  {r.get('result')} {r.get('reason') or ''}"
            )
        body = (
            "\n".join(lines)
            + "\n\nRecords (JSON):\n"
            + orjson.dumps(records, option=orjson.OPT_INDENT_2).decode()
        )
        message.set_content(body)
        pinned = checked(self._label, self._host, self._port, self._allowed, self._resolver).pinned
        try:
            with _PinnedSMTP(str(pinned), self._host, self._port, self._timeout) as smtp:
                if self._starttls:  # verify the chain and the host name (the stdlib default does not)
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as e:
            raise DeliveryError(f"{self._label}: {type(e).__name__}") from e

    def close(self) -> None:
        pass
