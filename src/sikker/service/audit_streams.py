"""Audit streams: deliver new audit records to webhooks, syslog or a JSON-lines file.

Each stream keeps a cursor per chain (the last delivered ``seq``). Within a
chain, seq order is commit order (the chain head row serialises writers), so a
cursor never skips a record that commits late. Deliveries are at least once: a
crash between delivery and saving the cursor re-sends that batch; receivers
deduplicate on (chain, seq). Failures back off exponentially (with jitter) and
are kept in the delivery log. Stream deliveries are not themselves audited.

Where a stream may deliver is decided when it is added and again at every delivery (a
stream stored before a rule existed, or a host whose DNS changed, is refused then):
file (jsonl) streams are root-only and write inside ``Settings.stream_dir``; webhook,
syslog and email streams reach only public addresses plus the operator's
``Settings.stream_allowed_networks``. A refused delivery is logged at ERROR with the
stream id and kept in the delivery log; the dispatcher carries on with other streams.
Log lines name a sink by scheme, host and port only: a webhook's userinfo, path and query
often hold a token, so the HTTP client's own request log is turned down too.
"""

from __future__ import annotations

import logging
import random
import secrets as pysecrets
from dataclasses import asdict
from typing import Any

from sikker import metrics
from sikker.core import ids
from sikker.core import permissions as perm
from sikker.core.audit import SYSTEM_CHAIN, Action, Actor
from sikker.core.model import AuditStream, Principal
from sikker.errors import InvalidInput, NotFound, PermissionDenied, SikkerError
from sikker.service.base import Deps, require
from sikker.service.streams.email import EmailSink
from sikker.service.streams.formats import matches
from sikker.service.streams.retry import RetryState
from sikker.service.streams.sinks import (
    DeliveryError,
    DeliveryRefused,
    JsonlSink,
    NetworkSink,
    Sink,
    SyslogSink,
    WebhookSink,
    quiet_http_client_log,
)
from sikker.storage import audit as audit_store
from sikker.storage import streams as stream_store
from sikker.storage import vaults as vault_store

log = logging.getLogger(__name__)
BATCH = 200
LEASE_MS = 10_000
SEVERITIES = ("info", "low", "medium", "high", "critical")


def _aad(sink_id: str) -> bytes:
    return f"sikker/v1/stream-secret|{sink_id}".encode()


def _action(vault_id: str | None) -> str:
    """Streams of one vault are ``stream:manage`` there; streams of every vault are root's."""
    return perm.STREAM_MANAGE if vault_id is not None else perm.STREAM_ALL


class StreamService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self._sinks: dict[str, Sink] = {}
        quiet_http_client_log()

    # -- configuration --------------------------------------------------------------------
    def add(
        self,
        principal: Principal,
        actor: Actor,
        vault_id: str | None,
        kind: str,
        config: dict[str, Any],
        actions: list[str] | None,
        min_severity: str,
    ) -> tuple[AuditStream, str | None]:
        """Add a stream; returns it and, for webhooks, the HMAC secret (shown once).

        File streams need the root token and a path inside the stream directory (stored
        relative to it); network streams must resolve to allowed addresses."""
        missing = f"vault {vault_id} not found"
        if kind == "jsonl":
            require(principal, perm.STREAM_FILE, vault_id, missing=missing)
        require(principal, perm.STREAM_MANAGE if vault_id else perm.STREAM_ALL, vault_id, missing=missing)
        if min_severity not in SEVERITIES:
            raise InvalidInput(f"min severity must be one of {', '.join(SEVERITIES)}")
        secret = pysecrets.token_urlsafe(32) if kind == "webhook" else None
        sink_id = ids.new_id("sink")
        try:
            probe = self._build(kind, config, secret.encode() if secret else None)
        except ValueError as e:
            raise InvalidInput(str(e)) from e
        try:
            self._check_destination(kind, probe)
        finally:
            close = getattr(probe, "close", None)
            if close:
                close()
        if isinstance(probe, JsonlSink):
            config = config | {"path": str(probe.relative)}
        now = self.deps.clock()
        with self.deps.db.write() as conn:
            if vault_id is not None:
                ids.check("vault", vault_id)
                if vault_store.get_vault(conn, vault_id) is None:
                    raise NotFound(missing)
            heads = audit_store.heads(conn)  # start from now: only new records are streamed
            cursors = {vault_id: heads.get(vault_id, 0)} if vault_id else heads
            row = AuditStream(
                sink_id,
                vault_id,
                kind,
                config,
                self.deps.keyring.wrap(_aad(sink_id), secret.encode()) if secret else None,
                actions,
                min_severity,
                cursors,
                0,
                0,
                None,
                now,
            )
            stream_store.insert_sink(conn, row)
            audit_store.append(
                conn,
                vault_id or SYSTEM_CHAIN,
                now,
                actor,
                Action.ADMIN_STREAM_ADD,
                {"stream": sink_id, "kind": kind},
            )
        return row, secret

    def list_streams(self, principal: Principal, vault_id: str | None) -> list[AuditStream]:
        """The streams of ``vault_id`` (or of every vault ``principal`` manages streams of)."""
        if vault_id is not None:
            require(principal, perm.STREAM_MANAGE, vault_id, missing=f"vault {vault_id} not found")
        else:
            problem = perm.decide_anywhere(principal, perm.STREAM_MANAGE)
            if problem is not None:
                raise problem
        with self.deps.db.read() as conn:
            found = stream_store.list_sinks(conn, vault_id)
        return [s for s in found if perm.allowed(principal, _action(s.vault_id), s.vault_id)]

    def _visible(self, principal: Principal, sink_id: str) -> AuditStream:
        with self.deps.db.read() as conn:
            row = stream_store.get_sink(conn, sink_id)
        missing = f"audit stream {sink_id} not found"
        if row is None:
            raise NotFound(missing)
        problem = perm.decide(principal, _action(row.vault_id), row.vault_id, missing=missing)
        if problem is not None:  # a stream of every vault is not even shown to others
            raise NotFound(missing) if row.vault_id is None else problem
        return row

    def remove(self, principal: Principal, actor: Actor, sink_id: str) -> None:
        row = self._visible(principal, sink_id)
        with self.deps.db.write() as conn:
            stream_store.delete_sink(conn, sink_id)
            audit_store.append(
                conn,
                row.vault_id or SYSTEM_CHAIN,
                self.deps.clock(),
                actor,
                Action.ADMIN_STREAM_REMOVE,
                {"stream": sink_id, "kind": row.kind},
            )
        sink = self._sinks.pop(sink_id, None)
        close = getattr(sink, "close", None)
        if close:
            close()

    def deliveries(self, principal: Principal, sink_id: str, limit: int = 50) -> list[dict[str, Any]]:
        self._visible(principal, sink_id)
        with self.deps.db.read() as conn:
            return stream_store.deliveries(conn, sink_id, min(max(limit, 1), 500))

    @staticmethod
    def _check_destination(kind: str, probe: Sink) -> None:
        """Refuse a stream whose file leaves the stream directory or whose host resolves to
        an address that is not allowed (the same checks every delivery makes)."""
        if isinstance(probe, JsonlSink):
            try:
                probe.check()
            except DeliveryRefused as e:
                raise InvalidInput(e.message) from e
        elif isinstance(probe, NetworkSink):
            try:
                destination = probe.destination()
            except DeliveryError as e:
                raise InvalidInput(f"{e.message}; give a host name that resolves, or an IP address") from e
            if destination.refused:
                raise PermissionDenied(destination.refusal(f"{kind} stream to {destination.host}"))

    # -- delivery -------------------------------------------------------------------------
    def _build(self, kind: str, config: dict[str, Any], secret: bytes | None) -> Sink:
        """A sink for a stored or requested configuration; ValueError if it is unusable."""
        allowed = self.deps.settings.stream_allowed_networks
        try:
            if kind == "webhook":
                return WebhookSink(str(config["url"]), secret or b"", allowed_networks=allowed)
            if kind == "syslog":
                return SyslogSink(
                    str(config["host"]),
                    int(config["port"]),
                    config.get("protocol", "udp"),
                    allowed_networks=allowed,
                )
            if kind == "jsonl":
                return JsonlSink(self.deps.settings.stream_dir, str(config["path"]))
            if kind == "email":
                return EmailSink(
                    str(config["host"]),
                    int(config["port"]),
                    str(config["sender"]),
                    [str(r) for r in config["recipients"]],
                    bool(config.get("starttls", False)),
                    allowed_networks=allowed,
                )
        except (KeyError, TypeError) as e:
            raise ValueError(f"{kind} stream configuration is incomplete: {type(e).__name__}") from e
        raise ValueError("stream kind must be webhook, syslog, jsonl or email")

    def _sink(self, row: AuditStream) -> Sink:
        sink = self._sinks.get(row.id)
        if sink is None:
            secret = (
                self.deps.keyring.unwrap(_aad(row.id), row.wrapped_secret) if row.wrapped_secret else None
            )
            sink = self._sinks[row.id] = self._build(row.kind, row.config, secret)
        return sink

    def dispatch_due(self) -> int:
        """Deliver what is pending to every stream that is due. Returns records delivered."""
        if self.deps.keyring.sealed:
            return 0
        now = self.deps.clock()
        with self.deps.db.read() as conn:
            due = stream_store.list_sinks(conn, due_before_ms=now)
            heads = audit_store.heads(conn)
        delivered = 0
        for row in due:
            chains = [row.vault_id] if row.vault_id else list(heads)
            if not any(row.cursors.get(c, 0) < heads.get(c, 0) for c in chains):
                continue
            # Several nodes run this loop: a lease (compare-and-set on the due time) lets one
            # of them work on a stream; if it dies, the lease runs out and another takes over.
            with self.deps.db.write() as conn:
                if not stream_store.claim(conn, row.id, row.next_attempt_ms, now + LEASE_MS):
                    continue
            delivered += self._dispatch_one(row, heads)
        return delivered

    def _dispatch_one(self, row: AuditStream, heads: dict[str, int]) -> int:
        cursors = dict(row.cursors)
        chains = [row.vault_id] if row.vault_id else sorted(heads)
        retry = RetryState(row.attempts, row.next_attempt_ms / 1000)
        delivered, error, refused = 0, None, False
        for chain in chains:
            while cursors.get(chain, 0) < heads.get(chain, 0) and error is None:
                with self.deps.db.read() as conn:
                    batch = audit_store.list_entries(conn, chain, cursors.get(chain, 0), BATCH)
                if not batch:
                    break
                records = [asdict(s.entry) | {"hash": s.hash.hex()} for s in batch]
                chosen = [
                    r
                    for r in records
                    if matches(r, set(row.actions) if row.actions else None, row.min_severity)
                ]
                now = self.deps.clock()
                try:
                    if chosen:
                        self._sink(row).deliver(chosen)
                except (DeliveryRefused, ValueError) as e:  # refused by policy or unusable config
                    error, refused = str(e)[:500], True
                except (DeliveryError, OSError, SikkerError) as e:
                    error = str(e)[:500]
                with self.deps.db.write() as conn:
                    if chosen or error:
                        stream_store.log_delivery(
                            conn,
                            row.id,
                            now,
                            chain,
                            batch[0].entry.seq,
                            batch[-1].entry.seq,
                            len(chosen),
                            error,
                        )
                    if error is None:
                        cursors[chain] = batch[-1].entry.seq
                        delivered += len(chosen)
                        if chosen:  # how long the oldest record of the batch waited
                            metrics.STREAM_LAG.observe(max(0, now - batch[0].entry.time_ms) / 1000)
                    metrics.STREAM_BATCHES.labels("failed" if error else "ok").inc()
                    retry = (
                        retry.after_failure(now / 1000, random.random()) if error else retry.after_success()
                    )
                    stream_store.save_progress(
                        conn, row.id, cursors, retry.attempts, int(retry.next_attempt_at * 1000), error
                    )
        if error is None:
            with self.deps.db.write() as conn:  # release the lease even when nothing was sent
                stream_store.save_progress(conn, row.id, cursors, 0, 0, None)
        if error:
            level = logging.ERROR if refused else logging.WARNING
            what = "delivery refused" if refused else "delivery failed"
            log.log(level, "audit stream %s: %s (attempt %d): %s", row.id, what, retry.attempts, error)
        return delivered

    def backlog(self) -> int:
        """Audit records not yet delivered, summed over every stream and chain it follows."""
        with self.deps.db.read() as conn:
            sinks = stream_store.list_sinks(conn)
            heads = audit_store.heads(conn) if sinks else {}
        return sum(
            max(0, heads.get(chain, 0) - sink.cursors.get(chain, 0))
            for sink in sinks
            for chain in ([sink.vault_id] if sink.vault_id else heads)
        )

    def close(self) -> None:
        """Close every sink's connections (a new delivery opens them again)."""
        for sink in list(self._sinks.values()):
            close = getattr(sink, "close", None)
            if close:
                close()
        self._sinks.clear()
