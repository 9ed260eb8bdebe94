"""Limits at the HTTP edge, over real sockets against a real server (docs/operator/limits.md).

Every client here binds its own loopback address (the whole 127/8 is loopback on Linux), so
the per-address counts of one test do not meet another's.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import Server

READ_TIMEOUT_S = 20.0


def _server(base: Path, env: dict[str, str]) -> Iterator[Server]:
    server = Server(f"sqlite:///{base / 'sikker.db'}", base / "data", env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Default head size; short head and keep-alive timeouts."""
    env = {"SIKKER_HEADER_TIMEOUT_SECONDS": "2", "SIKKER_KEEPALIVE_TIMEOUT_SECONDS": "1"}
    yield from _server(tmp_path_factory.mktemp("edge"), env)


@pytest.fixture(scope="module")
def caps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Small connection caps; a head timeout long enough for held connections to stay."""
    env = {
        "SIKKER_HEADER_TIMEOUT_SECONDS": "60",
        "SIKKER_MAX_CONNECTIONS_PER_ADDRESS": "8",
        "SIKKER_MAX_CONNECTIONS": "30",
    }
    yield from _server(tmp_path_factory.mktemp("caps"), env)


def connect(server: Server, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(READ_TIMEOUT_S)
    sock.connect(("127.0.0.1", server.port))
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as a close)."""
    chunks = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.1 ") else 0


def get(server: Server, source: str, path: str = "/api/sys/status") -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(transport=transport, timeout=READ_TIMEOUT_S) as client:
        return client.get(server.url + path)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- request head size ------------------------------------------------------------------------


def test_endless_header_is_refused_before_it_is_sent_and_memory_stays_flat(edge: Server) -> None:
    assert edge.proc is not None
    before = rss_bytes(edge.proc.pid)
    total = 64 * 1024 * 1024
    chunk = b"a" * (1024 * 1024)
    sock = connect(edge, "127.0.0.2")
    sent = 0
    with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
        sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\nX-Big: ")
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
    # The server closed the connection long before the 64 MiB were through.
    assert sent < total // 4, sent
    with contextlib.suppress(OSError):
        response = read_all(sock)
        assert status_of(response) in (0, 431), response[:200]
    sock.close()
    grown = rss_bytes(edge.proc.pid) - before
    assert grown < 32 * 1024 * 1024, grown
    assert get(edge, "127.0.0.2").status_code == 200


def test_head_over_the_limit_in_one_write_gets_431(edge: Server) -> None:
    sock = connect(edge, "127.0.0.3")
    sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n")
    response = read_all(sock)
    sock.close()
    assert status_of(response) == 431, response[:200]
    assert b'{"error":"request head larger than 16384 bytes"}' in response


def test_head_under_the_limit_is_served(edge: Server) -> None:
    response = httpx.get(f"{edge.url}/api/sys/status", headers={"x-big": "a" * 15000}, timeout=30)
    assert response.status_code == 200


def test_too_many_headers_get_431(edge: Server) -> None:
    headers = b"".join(b"x-h%d: v\r\n" % i for i in range(101))
    sock = connect(edge, "127.0.0.4")
    sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    response = read_all(sock)
    sock.close()
    assert status_of(response) == 431, response[:200]


def test_a_large_body_is_not_counted_as_head(edge: Server) -> None:
    body = b'{"share": "' + b"a" * 500_000 + b'"}'
    sock = connect(edge, "127.0.0.5")
    head = b"POST /api/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    response = read_all(sock)
    sock.close()
    assert status_of(response) not in (0, 408, 431), response[:200]


def test_a_client_that_expects_100_continue_gets_it_before_sending_the_body(edge: Server) -> None:
    # curl sends bodies over 1 KiB this way: the server must answer the interim 100 on its own,
    # though its own first write of a response cycle is held to join the next one.
    body = b'{"share": "nope"}'
    sock = connect(edge, "127.0.0.10")
    head = b"POST /api/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    sock.sendall(
        head + b"Expect: 100-continue\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    sock.settimeout(READ_TIMEOUT_S)
    sock.sendall(body)
    response = read_all(sock)
    sock.close()
    assert status_of(response) == 409, response[:200]  # not initialised: the body was read, answered


def test_pipelined_requests_get_whole_responses_in_order(edge: Server) -> None:
    sock = connect(edge, "127.0.0.11")
    sock.sendall(
        b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /api/sys/unseal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 16\r\n\r\n{"share": "no"}\n'  # not initialised: 409
        b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    response = read_all(sock)
    sock.close()
    parts = response.split(b"HTTP/1.1 ")[1:]
    assert [int(p[:3]) for p in parts] == [200, 409, 200], response[:600]
    for part in parts:  # each head is followed by its whole body
        head, _, body = part.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        assert len(body) == length and body.startswith(b"{"), part[:300]


# -- time to send a head; idle connections ---------------------------------------------------


def test_half_sent_head_is_answered_408_and_closed_after_the_header_timeout(edge: Server) -> None:
    sock = connect(edge, "127.0.0.6")
    sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\n")
    response = read_all(sock)  # returns only once the server closes
    sock.close()
    assert status_of(response) == 408, response[:200]


def test_slowloris_trickle_is_closed_after_the_header_timeout(edge: Server) -> None:
    sock = connect(edge, "127.0.0.7")
    sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\n")
    closed = False
    for _ in range(200):  # far beyond the 2 s timeout if every byte re-armed a timer
        try:
            sock.sendall(b"x")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.1)
    sock.close()
    assert closed


def test_connection_that_sends_nothing_is_closed(edge: Server) -> None:
    sock = connect(edge, "127.0.0.8")
    assert read_all(sock) == b""
    sock.close()


def test_idle_keep_alive_connection_is_closed(edge: Server) -> None:
    sock = connect(edge, "127.0.0.9")
    sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\n\r\n")
    response = read_all(sock)  # the 200, then the close once the keep-alive timeout passes
    sock.close()
    assert status_of(response) == 200


# -- connection caps ---------------------------------------------------------------------------


def test_flood_from_one_address_is_capped_and_others_are_served(caps: Server) -> None:
    edge = caps
    flood = [connect(edge, "127.0.0.10") for _ in range(12)]
    try:
        refused = [read_all(sock) for sock in flood[8:]]
        assert all(status_of(r) in (0, 503) for r in refused), refused
        assert any(b"too many connections" in r for r in refused), refused
        assert get(edge, "127.0.0.11").status_code == 200
        # The admitted eight are live: each still answers a request.
        for sock in flood[:8]:
            sock.sendall(b"GET /api/sys/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert status_of(read_all(sock)) == 200
    finally:
        for sock in flood:
            sock.close()
    assert _eventually_served(edge, "127.0.0.10")


def test_total_cap_refuses_beyond_it_and_recovers_when_connections_close(caps: Server) -> None:
    edge = caps
    held = [connect(edge, f"127.0.1.{n}") for n in range(1, 6) for _ in range(7)]  # 35 > 30
    try:
        late = [read_all(sock) for sock in held[-5:]]  # the last five are beyond 30
        assert all(status_of(r) in (0, 503) for r in late), late
    finally:
        for sock in held:
            sock.close()
    assert _eventually_served(edge, "127.0.1.9")


def _eventually_served(server: Server, source: str) -> bool:
    """Closed connections are released by the server a moment after the client closes."""
    for _ in range(100):
        with contextlib.suppress(httpx.HTTPError):
            if get(server, source).status_code == 200:
                return True
        time.sleep(0.1)
    return False


def test_flood_from_one_address_does_not_exhaust_descriptors(tmp_path: Path) -> None:
    """The finding: idle connections past the descriptor limit made every request fail."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # the server inherits 256
    try:
        server = Server(f"sqlite:///{tmp_path / 'sikker.db'}", tmp_path / "data")
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    flood: list[socket.socket] = []
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                flood.append(connect(server, "127.0.2.1"))
        assert get(server, "127.0.2.2").status_code == 200
    finally:
        for sock in flood:
            sock.close()
        server.stop()
