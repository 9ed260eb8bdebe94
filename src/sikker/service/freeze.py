"""Project freezes: the checks every read makes, and the canary trip (in the reader's transaction)."""

from __future__ import annotations

from sikker import metrics
from sikker.core.audit import Action, Actor
from sikker.core.model import Project, Secret, Trip
from sikker.errors import Locked
from sikker.storage import audit as audit_store
from sikker.storage import canaries as canary_store
from sikker.storage.database import Connection


def check_not_frozen(project: Project) -> None:
    if project.frozen_ms is not None:
        raise Locked(f"project {project.id} is frozen (a canary was read); an admin must unfreeze it")


def trip_if_canary(conn: Connection, secret: Secret, actor: Actor, now_ms: int) -> bool:
    """In the caller's transaction: if ``secret`` is an enabled canary, freeze and record."""
    canary = canary_store.get_canary(conn, secret.id)
    if canary is None or not canary.enabled:
        return False
    targets = [secret.project_id, *(canary.related_project_ids if canary.freeze_related else [])]
    frozen = canary_store.freeze(conn, targets, now_ms, secret.id)
    canary_store.record_trip(
        conn, Trip(secret.id, secret.project_id, actor.kind, actor.id, actor.source_ip, now_ms, frozen)
    )
    audit_store.append(
        conn,
        secret.vault_id,
        now_ms,
        actor,
        Action.CANARY_TRIP,
        {"secret": secret.id, "project": secret.project_id, "frozen": ",".join(frozen)},
        "denied",
        "canary secret read: project frozen",
    )
    metrics.CANARY_TRIPS.inc()
    return True
