"""Stream sinks against real receivers on loopback: HTTP, UDP and TCP syslog.

Loopback is denied to streams by default, so these sinks are given the allowlist an
operator would set for a local collector (``stream_allowed_networks``)."""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sikker.service.streams import formats
from sikker.service.streams.sinks import (
    UDP_MAX_DATAGRAM,
    DeliveryError,
    DeliveryRefused,
    SyslogSink,
    WebhookSink,
)
from tests.integration.conftest import Receiver

SECRET = b"whsec_integration"
WAIT = 2.0
LOOPBACK = ("127.0.0.0/8", "::1/128")


def make_record(seq: int, **changes: Any) -> dict[str, Any]:
    base = {
        "chain": "vault_x",
        "seq": seq,
        "time_ms": 1_700_000_000_000 + seq,
        "actor_kind": "machine",
        "actor_id": "mc_1",
        "source_ip": "127.0.0.1",
        "user_agent": "sikker-agent",
        "action": "machine:secret:read",
        "target": {"secret": "sk_1"},
        "result": "ok",
        "reason": "",
        "severity": "info",
        "hash": f"{seq:064x}",
    }
    return base | changes


SYSLOG = re.compile(
    rb"^<(?P<pri>\d+)>1 (?P<ts>\S+) (?P<host>\S+) (?P<app>\S+) - (?P<msgid>\S+) "
    rb"\[sikker@32473 (?P<params>(?:[^\]\\]|\\.)*)\] \xef\xbb\xbf(?P<msg>.*)$",
    re.DOTALL,
)


def parse_syslog(line: bytes) -> tuple[re.Match[bytes], dict[str, Any]]:
    m = SYSLOG.match(line)
    assert m, line[:200]
    return m, json.loads(m["msg"])


# --- webhook receiver ------------------------------------------------------------------


def receiver_url(server: Receiver) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/audit"


def test_webhook_receiver_verifies_signature_and_gets_records(receiver: Receiver) -> None:
    import time

    records = [make_record(1), make_record(2, severity="high", action="machine:auth:lockout")]
    sink = WebhookSink(receiver_url(receiver), SECRET, allowed_networks=LOOPBACK)
    try:
        sink.deliver(records)
    finally:
        sink.close()
    _, headers, body = receiver.received.get(timeout=WAIT)
    assert formats.verify_webhook(
        SECRET, headers[formats.TIMESTAMP_HEADER], body, headers[formats.SIGNATURE_HEADER], now=time.time()
    )
    assert not formats.verify_webhook(
        b"wrong", headers[formats.TIMESTAMP_HEADER], body, headers[formats.SIGNATURE_HEADER], now=time.time()
    )
    assert json.loads(body)["records"] == records


def test_webhook_receiver_error_raises_delivery_error(receiver: Receiver) -> None:
    receiver.status = 500
    sink = WebhookSink(receiver_url(receiver), SECRET, allowed_networks=LOOPBACK)
    try:
        with pytest.raises(DeliveryError, match="HTTP 500"):
            sink.deliver([make_record(1)])
    finally:
        sink.close()
    assert receiver.received.qsize() == 1


def test_webhook_unreachable_receiver_raises_delivery_error() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/", SECRET, timeout=1.0, allowed_networks=LOOPBACK)
    try:
        with pytest.raises(DeliveryError, match="unreachable: ConnectError"):
            sink.deliver([make_record(1)])
    finally:
        sink.close()


def test_webhook_to_loopback_is_refused_without_the_allowlist(receiver: Receiver) -> None:
    sink = WebhookSink(receiver_url(receiver), SECRET)
    try:
        with pytest.raises(DeliveryRefused, match=r"address 127\.0\.0\.1 is not allowed"):
            sink.deliver([make_record(1)])
    finally:
        sink.close()
    assert receiver.received.empty()


def test_webhook_sends_to_the_pinned_address_with_the_original_host(receiver: Receiver) -> None:
    answers = ["127.0.0.1"]
    port = receiver.server_address[1]
    sink = WebhookSink(
        f"http://localhost:{port}/audit",  # plain http only to a loopback name
        SECRET,
        allowed_networks=LOOPBACK,
        resolver=lambda host, _port: answers if host == "localhost" else [],
    )
    try:
        sink.deliver([make_record(1)])
        _, headers, _ = receiver.received.get(timeout=WAIT)
        assert headers["Host"] == f"localhost:{port}"
        answers[:] = ["10.1.2.3"]  # the name now points inside the network: refused
        with pytest.raises(DeliveryRefused, match=r"localhost \(10.1.2.3\) is not allowed"):
            sink.deliver([make_record(2)])
    finally:
        sink.close()
    assert receiver.received.empty()


@pytest.mark.parametrize("url", ["http://example.com/hook", "ftp://127.0.0.1/", "ws://localhost/"])
def test_webhook_refuses_url_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="https://"):
        WebhookSink(url, SECRET)


# --- syslog over UDP ------------------------------------------------------------------


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(WAIT)
        yield sock


def test_syslog_udp_sends_one_datagram_per_record(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    sink = SyslogSink("127.0.0.1", port, "udp", hostname="vault-1", allowed_networks=LOOPBACK)
    records = [make_record(1), make_record(2, severity="critical", source_ip='a"]\\b')]
    try:
        sink.deliver(records)
    finally:
        sink.close()
    datagrams = [udp_listener.recv(65535) for _ in records]
    first, msg1 = parse_syslog(datagrams[0])
    second, msg2 = parse_syslog(datagrams[1])
    assert (int(first["pri"]), int(second["pri"])) == (86, 82)
    assert first["host"] == b"vault-1" and first["msgid"] == b"machine.secret.read"
    assert b'ip="a\\"\\]\\\\b"' in second["params"]
    assert [msg1, msg2] == records


def test_syslog_udp_shrinks_oversized_records_to_fit_a_datagram(udp_listener: socket.socket) -> None:
    port = udp_listener.getsockname()[1]
    sink = SyslogSink("127.0.0.1", port, "udp", hostname="vault-1", allowed_networks=LOOPBACK)
    try:
        sink.deliver([make_record(7, reason="x" * 20_000)])
    finally:
        sink.close()
    datagram = udp_listener.recv(65535)
    assert len(datagram) <= UDP_MAX_DATAGRAM
    _, msg = parse_syslog(datagram)
    assert msg["truncated"] is True and msg["seq"] == 7


def test_syslog_follows_dns_only_to_allowed_addresses(udp_listener: socket.socket) -> None:
    answers = ["127.0.0.1"]
    port = udp_listener.getsockname()[1]
    sink = SyslogSink(
        "collector.test",
        port,
        "udp",
        hostname="vault-1",
        allowed_networks=LOOPBACK,
        resolver=lambda _host, _port: answers,
    )
    try:
        sink.deliver([make_record(1)])
        assert parse_syslog(udp_listener.recv(65535))[1]["seq"] == 1
        answers[:] = ["127.0.0.1", "192.168.0.10"]  # every address must be allowed
        with pytest.raises(DeliveryRefused, match=r"192\.168\.0\.10"):
            sink.deliver([make_record(2)])
        answers[:] = ["127.0.0.1"]
        sink.deliver([make_record(3)])
        assert parse_syslog(udp_listener.recv(65535))[1]["seq"] == 3
    finally:
        sink.close()


def test_syslog_to_loopback_is_refused_without_the_allowlist(udp_listener: socket.socket) -> None:
    sink = SyslogSink("127.0.0.1", udp_listener.getsockname()[1], "udp", hostname="vault-1")
    try:
        with pytest.raises(DeliveryRefused, match="not allowed"):
            sink.deliver([make_record(1)])
    finally:
        sink.close()
    udp_listener.settimeout(0.2)
    with pytest.raises(TimeoutError):
        udp_listener.recv(65535)


# --- syslog over TCP ------------------------------------------------------------------


class TcpCollector:
    """A loopback syslog collector that parses octet-counted frames in a thread."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen()
        self.listener.settimeout(0.05)
        self.port: int = self.listener.getsockname()[1]
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self.listener:
            while not self._stop.is_set():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                self.connections += 1
                with conn:
                    self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.05)
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return
            buffer += chunk
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                self.frames.put(rest[: int(length)])
                buffer = rest[int(length) :]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)


@pytest.fixture
def collector() -> Iterator[TcpCollector]:
    c = TcpCollector()
    yield c
    c.stop()


def test_syslog_tcp_frames_records_with_octet_counting(collector: TcpCollector) -> None:
    sink = SyslogSink("127.0.0.1", collector.port, "tcp", hostname="vault-1", allowed_networks=LOOPBACK)
    records = [make_record(1, reason="two\nlines"), make_record(2), make_record(3)]
    try:
        sink.deliver(records[:2])
        sink.deliver(records[2:])
    finally:
        sink.close()
    received = [parse_syslog(collector.frames.get(timeout=WAIT))[1] for _ in records]
    assert received == records
    assert collector.connections == 1  # one persistent connection across batches


def test_syslog_tcp_reconnects_after_the_collector_restarts(collector: TcpCollector) -> None:
    sink = SyslogSink("127.0.0.1", collector.port, "tcp", hostname="vault-1", allowed_networks=LOOPBACK)
    try:
        sink.deliver([make_record(1)])
        assert parse_syslog(collector.frames.get(timeout=WAIT))[1]["seq"] == 1
        collector.stop()

        restarted = TcpCollector(collector.port)
        try:
            sink.deliver([make_record(2)])
            assert parse_syslog(restarted.frames.get(timeout=WAIT))[1]["seq"] == 2
        finally:
            restarted.stop()
    finally:
        sink.close()


def test_syslog_tcp_down_collector_fails_then_recovers() -> None:
    down = TcpCollector()
    port = down.port
    down.stop()
    sink = SyslogSink("127.0.0.1", port, "tcp", hostname="vault-1", timeout=1.0, allowed_networks=LOOPBACK)
    try:
        with pytest.raises(
            DeliveryError, match=f"syslog tcp 127.0.0.1:{port} failed: ConnectionRefusedError"
        ):
            sink.deliver([make_record(1)])
        up = TcpCollector(port)
        try:
            sink.deliver([make_record(2)])
            assert parse_syslog(up.frames.get(timeout=WAIT))[1]["seq"] == 2
        finally:
            up.stop()
    finally:
        sink.close()


# --- email: STARTTLS verifies the mail server ---------------------------------------------


def test_starttls_refuses_a_mail_server_whose_certificate_is_not_trusted(tmp_path: Any) -> None:
    """A vault admin's email stream must not hand mail (and SMTP credentials) to whoever
    answers with any certificate: STARTTLS checks the chain and the host name."""
    import ssl

    from aiosmtpd.controller import Controller

    from sikker.service.streams.destination import DeliveryError
    from sikker.service.streams.email import EmailSink
    from tests.e2e.test_tls import self_signed
    from tests.support import free_port

    class Mailbox:
        messages: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.messages.append(envelope.content)
            return "250 OK"

    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True)
    smtp.start()
    try:
        sink = EmailSink(
            "localhost",
            port,
            "sikker@example.org",
            ["secops@example.org"],
            starttls=True,
            username="alerts",
            password="smtp-password",
            allowed_networks=["127.0.0.0/8", "::1/128"],
        )
        with pytest.raises(DeliveryError, match="SSL"):
            sink.deliver([make_record(1)])
    finally:
        smtp.stop()
    assert mailbox.messages == []
