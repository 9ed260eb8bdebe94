"""The HTTP edge: uvicorn's httptools protocol with bounds on what one client may hold.

uvicorn's httptools protocol buffers a request head of any size for any time. This subclass
adds, per server process (docs/operator/limits.md):

* a cap on open connections in total and per source address (core/connections.py): a
  connection over a cap is answered 503 and closed at once, before anything is read;
* ``max_header_bytes`` for a request head (request line and headers) and ``MAX_HEADERS``
  headers: 431 and close, as soon as the bytes received for an unfinished head pass the
  bound, so an endless header costs at most one socket read beyond it;
* ``header_timeout_seconds`` from connection (or from the first byte of a later request on
  a kept-alive connection) to the end of the head: 408 and close (a connection that sent
  nothing is closed silently);
* idle keep-alive connections close after ``keepalive_timeout_seconds`` (uvicorn's timer).

It also sends a response's head and the first part of its body in one ``write`` (one TCP
segment for a small response, instead of uvicorn's two: ``_JoinedWrites``).

The per-request cost of the bounds is a counter and a timer (the exact head size is computed
only when the raw bytes received during the head already exceed the bound); joining the
writes costs a wrapper object and one callback scheduled per response, against the system
call and the segment it saves.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from sikker.config import Settings
from sikker.core.connections import ConnectionCaps, source_of

MAX_HEADERS = 100
NOT_IN_HEAD = -1  # the head is complete; the body or the response is under way


def _response(status: int, message: str) -> bytes:
    body = orjson.dumps({"error": message})
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


BUSY = _response(503, "too many connections; retry shortly")
TIMED_OUT = _response(408, "request head not received in time")


class _JoinedWrites(asyncio.Transport):
    """The transport as one request's response cycle sees it. uvicorn writes a response's head
    and its body separately, and each write goes out at once: two system calls and two TCP
    segments per response. This holds the cycle's first write (the head) and sends it joined
    to the next one (the body), or alone at the loop's next step when nothing follows in the
    same step (a streamed body, a ``100 Continue``). Order is kept: the held bytes always leave
    before anything written after them, closing included."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._first:
            self._first = False
            self._held = bytes(data)
            self._loop.call_soon(self._flush)
            return
        held, self._held = self._held, None
        self._transport.write(data if held is None else held + data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a head that is over a bound."""


class EdgeProtocol(HttpToolsProtocol):
    """Set up per server by ``protocol_class``, which fills in the class attributes."""

    caps: ClassVar[ConnectionCaps]
    max_head_bytes: ClassVar[int]
    head_timeout: ClassVar[float]
    too_large: ClassVar[bytes]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._source: str | None = None  # counted against the caps while set
        self._head = 0  # bytes received since the current head began, or NOT_IN_HEAD
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        source = source_of(str(peer[0])) if isinstance(peer, tuple) else ""
        if not self.caps.admit(source):
            self.transport = transport
            transport.write(BUSY)
            transport.close()
            return
        self._source = source
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._source is not None:
            self.caps.release(self._source)
            self._source = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head != NOT_IN_HEAD:
            self._head += len(data)
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            # Also what a callback's exception becomes: ours leaves ``_head`` over the bound.
            if self._head > self.max_head_bytes:
                self._refuse(self.too_large)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # A head still unfinished after this read: refuse it once it is over the bound.
        if self._head > self.max_head_bytes and not self.transport.is_closing():
            self._refuse(self.too_large)

    def on_headers_complete(self) -> None:
        # Raw bytes bound the head from above: compute its size only when they pass the limit.
        if (self._head > self.max_head_bytes and self._head_size() > self.max_head_bytes) or len(
            self.headers
        ) > MAX_HEADERS:
            self._head = self.max_head_bytes + 1
            raise _HeadRefused
        self._head = NOT_IN_HEAD
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        cycle = self.cycle  # None after an upgrade request
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _JoinedWrites(self.transport, self.loop)

    def on_message_complete(self) -> None:
        self._head = 0
        super().on_message_complete()

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head > 0:
            self._refuse(TIMED_OUT)
        else:
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        """Answer a refused head and close; nothing more of the connection is read."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()


def protocol_class(settings: Settings) -> type[EdgeProtocol]:
    """An ``EdgeProtocol`` for one server process, with its own connection counts."""
    attributes = {
        "caps": ConnectionCaps(settings.max_connections, settings.max_connections_per_address),
        "max_head_bytes": settings.max_header_bytes,
        "head_timeout": float(settings.header_timeout_seconds),
        "too_large": _response(431, f"request head larger than {settings.max_header_bytes} bytes"),
    }
    return type("EdgeProtocol", (EdgeProtocol,), attributes)
