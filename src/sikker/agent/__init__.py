"""The database sync agent (``sikker agent``): rotates credentials the server asks it to.

It runs beside a database with a machine identity, polls each managed secret's
sync-config, and for a pending rotation: preflights the live credentials, applies the
pending ones as the database admin (strategy single, dual or alternating), verifies them
by logging in, then confirms, or rolls back and rejects. After a grace period it disables
the previous user (alternating) or drops the old password (dual).

    config     wire documents (sync-config, secret values), parsed strictly
    server     the sync-agent routes over a signed requester (the CLI's MachineClient)
    rotation   one rotation, step by step, against a Provider
    loop       per-secret workers, heartbeats, signals
    (providers live in ``sikker.engines``, shared with the server's dynamic secrets)

Live-tested (tests/integration/test_agent_providers.py): PostgreSQL, MariaDB, Redis.
Not live-tested: MySQL 8 dual passwords (SQL unit-tested), MongoDB (wire fake, mockupdb),
SQL Server (SQL unit-tested with a recording fake connection).
"""

from sikker.agent.loop import Agent, SecretWorker, TickResult, stop_on_signals
from sikker.agent.server import AgentApi
from sikker.engines.base import Connection, Credentials, Provider, ProviderError, get_provider

__all__ = [
    "Agent",
    "AgentApi",
    "Connection",
    "Credentials",
    "Provider",
    "ProviderError",
    "SecretWorker",
    "TickResult",
    "get_provider",
    "stop_on_signals",
]
