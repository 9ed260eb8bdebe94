"""Cluster events over PostgreSQL LISTEN/NOTIFY (a no-op on SQLite, which has one node).

``notify`` runs inside the caller's transaction, so the event is delivered only
if the change commits. ``Listener`` keeps one dedicated connection in a thread
and calls back on every event; after a reconnect it calls back once with
``"*"`` (events may have been missed), so callers re-check everything.
Notifications are a fast path only: callers also poll, so a lost notification
delays a change by at most the poll interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)
CHANNEL = "sikker_events"


def notify(conn: Connection, event: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:channel, :event)"), {"channel": CHANNEL, "event": event})


class Listener:
    def __init__(self, url: str, callback: Callable[[str], object]) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._callback = callback
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sikker-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        import psycopg  # PostgreSQL only: a SQLite server never imports the driver

        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._deliver("*")  # anything may have happened while we were not listening
                    delay = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._deliver(note.payload)
            except psycopg.Error as e:
                log.warning("cluster listener lost its connection (%s); retrying", type(e).__name__)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)

    def _deliver(self, event: str) -> None:
        try:
            self._callback(event)
        except Exception:  # the listener must survive a failing handler; polling catches up
            log.exception("cluster event handler failed")
