from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sikker.service.streams import formats
from sikker.service.streams.sinks import (
    DeliveryError,
    DeliveryRefused,
    JsonlSink,
    Sink,
    SyslogSink,
    WebhookSink,
)

SECRET = b"whsec_unit"
NOW = 1_700_000_000.0
RECORDS: list[dict[str, Any]] = [
    {"chain": "vault_x", "seq": 1, "action": "admin:secret:read", "severity": "low", "hash": "00" * 32},
    {"chain": "vault_x", "seq": 2, "action": "admin:auth:fail", "severity": "medium", "hash": "11" * 32},
]


class Recorder:
    """An httpx handler that keeps every request and answers with a fixed status."""

    def __init__(self, status: int = 204, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, headers=self.headers)


class Dns:
    """A resolver whose answers the test changes between deliveries (DNS rebinding)."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.lookups = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.lookups += 1
        return self.addresses


PUBLIC = "93.184.216.34"


def webhook(
    handler: Any, url: str = "https://siem.example/hooks/T0K3N?key=s3cret", dns: Dns | None = None
) -> WebhookSink:
    return WebhookSink(
        url,
        SECRET,
        transport=httpx.MockTransport(handler),
        clock=lambda: NOW,
        resolver=dns or Dns(PUBLIC),
    )


# --- WebhookSink ----------------------------------------------------------------


def test_webhook_posts_signed_records() -> None:
    recorder = Recorder()
    webhook(recorder).deliver(RECORDS)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    assert request.headers[formats.TIMESTAMP_HEADER] == str(int(NOW))
    assert formats.verify_webhook(
        SECRET,
        request.headers[formats.TIMESTAMP_HEADER],
        request.content,
        request.headers[formats.SIGNATURE_HEADER],
        now=NOW,
    )
    assert json.loads(request.content) == {"records": RECORDS}


def test_webhook_connects_to_the_checked_address_with_the_original_host_and_sni() -> None:
    recorder = Recorder()
    dns = Dns(PUBLIC, "2606:4700::1111")
    webhook(recorder, "https://siem.example:8443/in?k=v", dns).deliver(RECORDS)
    (request,) = recorder.requests
    assert (request.url.host, request.url.port, request.url.query) == (PUBLIC, 8443, b"k=v")
    assert request.headers["host"] == "siem.example:8443"
    assert request.extensions["sni_hostname"] == "siem.example"
    assert dns.lookups == 1


def test_webhook_rechecks_the_address_at_every_delivery() -> None:
    recorder = Recorder()
    dns = Dns(PUBLIC)
    sink = webhook(recorder, dns=dns)
    sink.deliver(RECORDS)
    for answer in (["10.0.0.5"], ["169.254.169.254"], [PUBLIC, "127.0.0.1"], ["::ffff:127.0.0.1"]):
        dns.addresses = answer
        with pytest.raises(DeliveryRefused, match="not allowed") as caught:
            sink.deliver(RECORDS)
        assert "T0K3N" not in caught.value.message and "s3cret" not in caught.value.message
    assert len(recorder.requests) == 1


def test_webhook_unresolvable_host_is_a_delivery_error() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    recorder = Recorder()
    sink = WebhookSink(
        "https://siem.example/", SECRET, transport=httpx.MockTransport(recorder), resolver=fail
    )
    with pytest.raises(DeliveryError, match=r"cannot resolve siem\.example: OSError"):
        sink.deliver(RECORDS)
    assert recorder.requests == []


def test_webhook_empty_batch_sends_nothing() -> None:
    recorder = Recorder()
    webhook(recorder).deliver([])
    assert recorder.requests == []


@pytest.mark.parametrize("status", [400, 401, 404, 500, 503])
def test_webhook_non_2xx_is_a_delivery_error(status: int) -> None:
    with pytest.raises(DeliveryError, match=f"HTTP {status}"):
        webhook(Recorder(status)).deliver(RECORDS)


def test_webhook_redirect_is_not_followed() -> None:
    recorder = Recorder(307, {"location": "http://elsewhere.example/"})
    with pytest.raises(DeliveryError, match="HTTP 307"):
        webhook(recorder).deliver(RECORDS)
    assert len(recorder.requests) == 1


def test_webhook_transport_error_is_wrapped_without_leaking_url_or_records() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(DeliveryError) as caught:
        webhook(refuse).deliver(RECORDS)
    message = caught.value.message
    assert message == "webhook https://siem.example unreachable: ConnectError"
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    for leak in ("T0K3N", "s3cret", "vault_x", "admin:"):
        assert leak not in message


@pytest.mark.parametrize(
    "url",
    [
        "http://siem.example/hook",
        "http://10.0.0.1/hook",
        "http://localhost.evil.example/",
        "ftp://siem.example/",
        "file:///etc/passwd",
        "https://",
        "siem.example/hook",
    ],
)
def test_webhook_refuses_unsafe_urls(url: str) -> None:
    with pytest.raises(ValueError, match="webhook URL"):
        WebhookSink(url, SECRET)


@pytest.mark.parametrize(
    "url",
    ["https://siem.example/hook", "http://localhost:8080/in", "http://127.0.0.1/", "http://[::1]:9000/"],
)
def test_webhook_accepts_https_and_loopback_http(url: str) -> None:
    WebhookSink(url, SECRET).close()


def test_webhook_refuses_empty_secret() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookSink("https://siem.example/", b"")


def test_every_sink_satisfies_the_protocol(tmp_path: Path) -> None:
    sinks = [
        webhook(Recorder()),
        SyslogSink("127.0.0.1", 514, "udp", hostname="h"),
        JsonlSink(tmp_path, "a"),
    ]
    assert all(isinstance(s, Sink) for s in sinks)


# --- SyslogSink (construction only; sockets are in tests/integration) -------------------


@pytest.mark.parametrize(("port", "protocol"), [(0, "udp"), (70000, "tcp"), (514, "tls"), (514, "UDP")])
def test_syslog_refuses_bad_settings(port: int, protocol: Any) -> None:
    with pytest.raises(ValueError, match="syslog"):
        SyslogSink("127.0.0.1", port, protocol)


# --- JsonlSink ------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_jsonl_appends_batches(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(tmp_path, "audit.jsonl")
    sink.deliver(RECORDS[:1])
    sink.deliver([])
    sink.deliver(RECORDS[1:])
    assert read_lines(path) == RECORDS
    assert path.read_bytes().endswith(b"\n")


def test_jsonl_creates_file_0600_whatever_the_umask(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "streams" / "sub" / "audit.jsonl"
    JsonlSink(tmp_path / "streams", "sub/audit.jsonl").deliver(RECORDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700


def test_jsonl_keeps_the_mode_of_an_existing_file(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    path.chmod(0o640)
    JsonlSink(tmp_path, str(path)).deliver(RECORDS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert read_lines(path) == RECORDS


def test_jsonl_follows_rotation_by_rename(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = JsonlSink(tmp_path, "audit.jsonl")
    sink.deliver(RECORDS[:1])
    path.rename(tmp_path / "audit.jsonl.1")
    sink.deliver(RECORDS[1:])
    assert read_lines(tmp_path / "audit.jsonl.1") == RECORDS[:1]
    assert read_lines(path) == RECORDS[1:]


def test_jsonl_unwritable_path_is_a_delivery_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    sink = JsonlSink(tmp_path / "file", "audit.jsonl")
    with pytest.raises(DeliveryError, match=r"jsonl audit\.jsonl not written: FileExistsError"):
        sink.deliver(RECORDS)


@pytest.mark.parametrize("path", ["../x.jsonl", "/etc/passwd", "a/../../x", ""])
def test_jsonl_refuses_paths_outside_its_directory(tmp_path: Path, path: str) -> None:
    with pytest.raises(ValueError, match="stream directory"):
        JsonlSink(tmp_path / "streams", path)


def test_jsonl_does_not_follow_a_symlink_to_the_file_or_a_directory(tmp_path: Path) -> None:
    streams, target = tmp_path / "streams", tmp_path / "target"
    streams.mkdir()
    target.mkdir()
    (target / "rc").write_bytes(b"keep")
    (streams / "audit.jsonl").symlink_to(target / "rc")
    (streams / "sub").symlink_to(target, target_is_directory=True)
    for name in ("audit.jsonl", "sub/rc"):
        sink = JsonlSink(streams, name)
        with pytest.raises(DeliveryRefused, match="stream directory"):
            sink.check()
        with pytest.raises(DeliveryRefused, match="symlink"):
            sink.deliver(RECORDS)
    assert (target / "rc").read_bytes() == b"keep"


def test_jsonl_open_itself_refuses_a_symlink_inside_the_directory(tmp_path: Path) -> None:
    """The resolve check passes (the link stays inside); O_NOFOLLOW still refuses it."""
    (tmp_path / "real.jsonl").write_bytes(b"")
    (tmp_path / "audit.jsonl").symlink_to(tmp_path / "real.jsonl")
    with pytest.raises(DeliveryError, match="not written: OSError"):
        JsonlSink(tmp_path, "audit.jsonl").deliver(RECORDS)
    assert (tmp_path / "real.jsonl").read_bytes() == b""


def test_jsonl_refuses_a_fifo_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "audit.jsonl")
    with pytest.raises(DeliveryError, match="not written: OSError"):
        JsonlSink(tmp_path, "audit.jsonl").deliver(RECORDS)
