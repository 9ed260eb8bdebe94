"""Audit list/filter latency on a large log (SQLite; PostgreSQL too with --pg).

    .venv/bin/python bench/audit_list.py                      # 1,000,000 records, SQLite
    .venv/bin/python bench/audit_list.py --records 100000 --pg

1. Builds a store with the real schema (``Database(url).migrate()``) and bulk-loads
   --records audit records into ONE vault chain: ~100 actors, 30 actions, 5,000
   secrets (in the target JSON and the ``secret_id`` column), 5 severities, times
   spread over 30 days. Every row is valid: ``hash`` chains with
   ``sikker.core.audit.chain_hash`` and ``leaf_hash`` is ``merkle.leaf_hash`` of the
   canonical record (checked against the library functions on a sample while
   generating, and the whole chain is re-verified from the database unless
   --no-verify). The chain head row is set as ``append`` would leave it.
2. Times ``sikker.storage.audit.query(conn, chain, Filters(...), before_seq, limit=100)``
   --runs times per case (after --warm discarded calls) and prints the median and p95,
   the rows that match the filter and the rows returned, and ``EXPLAIN QUERY PLAN``
   (``EXPLAIN`` on PostgreSQL) of the exact SQL that ``query()`` sent.

SQLite is loaded with executemany in one transaction (synchronous off while loading
only); PostgreSQL with COPY, then ANALYZE. The SQLite file is left as the server
would leave it: no ANALYZE (the server never runs it), unless --analyze.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import procfs
from sqlalchemy import event

from sikker.core import audit, merkle
from sikker.storage import audit as audit_store
from sikker.storage.database import Database
from sikker.storage.tables import audit_log

DAY_MS = 86_400_000
SEVERITIES = ["info", "low", "medium", "high", "critical"]
SEVERITY_WEIGHTS = [55, 25, 12, 6, 2]
COLUMNS = audit_store.COLUMNS


# -- data ------------------------------------------------------------------------------------
def _suffix(rng: random.Random) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=16))


@dataclass
class Population:
    chain: str
    actors: list[tuple[str, str, str, str]]  # kind, id, source_ip, user_agent
    actor_cum: list[float]
    actions: list[str]
    action_cum: list[float]
    secrets: list[tuple[str, str]]  # secret id, project id
    start_ms: int


def zipf_cum(n: int) -> list[float]:
    """Cumulative weights 1/rank: a few very busy actors/actions, a long tail."""
    return list(itertools.accumulate(1.0 / r for r in range(1, n + 1)))


def population(rng: random.Random, n_actors: int, n_secrets: int, now_ms: int) -> Population:
    chain = "vault_" + _suffix(rng)
    actors = [("root", "root", "10.0.0.1", "sikker-cli/0.1.0")]
    for i in range(n_actors - 1):
        if i % 4 == 0:
            actors.append(("admin", "tok_" + _suffix(rng), f"10.0.1.{i % 250}", "sikker-cli/0.1.0"))
        else:
            actors.append(
                (
                    "machine",
                    str(uuid.UUID(int=rng.getrandbits(128))),
                    f"10.2.{i // 250}.{i % 250}",
                    "sikkerkey-python/1.3.0",
                )
            )
    # The busiest sources of records are machines reading: put them first in the Zipf order.
    actors.sort(key=lambda a: a[0] != "machine")
    secret_first = [
        audit.Action.MACHINE_SECRET_READ,
        audit.Action.MACHINE_SECRET_EXPORT,
        audit.Action.MACHINE_SECRET_POLL,
        audit.Action.ADMIN_SECRET_READ,
        audit.Action.ADMIN_SECRET_UPDATE,
        audit.Action.MACHINE_SECRET_LIST,
    ]
    rest = [a for a in audit.Action if a not in secret_first and not a.startswith("operator:")]
    actions = [str(a) for a in (secret_first + rest)[:30]]
    projects = ["proj_" + _suffix(rng) for _ in range(50)]
    secrets = [("sec_" + _suffix(rng), projects[i % len(projects)]) for i in range(n_secrets)]
    return Population(
        chain, actors, zipf_cum(len(actors)), actions, zipf_cum(len(actions)), secrets, now_ms - 30 * DAY_MS
    )


def _target(action: str, rng: random.Random, pop: Population, actor_id: str) -> dict[str, str]:
    subject = action.split(":")[1]
    if subject == "secret":
        sid, project = pop.secrets[rng.randrange(len(pop.secrets))]
        return {"project": project, "secret": sid, "version": str(rng.randint(1, 9))}
    if subject in ("machine", "membership", "grant"):
        return {"machine": actor_id if actor_id.count("-") == 4 else str(uuid.UUID(int=rng.getrandbits(128)))}
    if subject in ("token", "enroll-token", "audit-stream"):
        return {"id": "tok_" + _suffix(rng)}
    if subject == "project":
        return {"project": pop.secrets[rng.randrange(len(pop.secrets))][1]}
    return {}


def records(pop: Population, count: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """Rows for audit_log in seq order, hash-chained; library-checked on a sample."""
    rng = random.Random(seed)
    step = 30 * DAY_MS / count
    prev = audit.GENESIS
    t = float(pop.start_ms)
    batch = 10_000
    for base in range(0, count, batch):
        n = min(batch, count - base)
        actors = rng.choices(pop.actors, cum_weights=pop.actor_cum, k=n)
        actions = rng.choices(pop.actions, cum_weights=pop.action_cum, k=n)
        severities = rng.choices(SEVERITIES, weights=SEVERITY_WEIGHTS, k=n)
        for i in range(n):
            seq = base + i + 1
            t += rng.expovariate(1.0 / step)
            kind, actor_id, ip, ua = actors[i]
            action = actions[i]
            target = _target(action, rng, pop, actor_id)
            denied = rng.random() < 0.03
            fields = {
                "chain": pop.chain,
                "seq": seq,
                "time_ms": int(t),
                "actor_kind": kind,
                "actor_id": actor_id,
                "source_ip": ip,
                "user_agent": ua,
                "action": action,
                "target": target,
                "result": "denied" if denied else "ok",
                "reason": "machine has no grant on this secret" if denied else "",
                "severity": severities[i],
            }
            canonical = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
            digest = hashlib.sha256(prev + canonical).digest()
            if seq % 50_000 == 1:  # the shortcut must equal the library, byte for byte
                entry = audit.Entry(**fields)
                assert canonical == audit.canonical(entry)
                assert digest == audit.chain_hash(prev, entry)
            yield (
                pop.chain,
                seq,
                int(t),
                kind,
                actor_id,
                ip,
                ua,
                action,
                orjson.dumps(target, option=orjson.OPT_SORT_KEYS).decode(),
                fields["result"],
                fields["reason"],
                severities[i],
                prev,
                digest,
                target.get("secret"),
                merkle.leaf_hash(canonical),
            )
            prev = digest


# -- loading ---------------------------------------------------------------------------------
def progress(done: int | None) -> None:
    """A live counter on a terminal; nothing in a log."""
    if sys.stdout.isatty():
        print(
            f"\r  loaded {done:,} records" if done is not None else "", end="" if done else "\n", flush=True
        )


def load_sqlite(path: Path, pop: Population, count: int, seed: int) -> tuple[bytes, float]:
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    t0 = time.monotonic()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # loading only; the server opens it with FULL
    conn.execute("PRAGMA cache_size=-262144")
    conn.execute("BEGIN")
    # Column names are this file's constants, not input.
    sql = f"INSERT INTO audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"  # noqa: S608
    last = audit.GENESIS
    rows = records(pop, count, seed)
    while chunk := list(itertools.islice(rows, 50_000)):
        conn.executemany(sql, chunk)
        last = chunk[-1][13]
        progress(chunk[-1][1])
    conn.execute("INSERT INTO audit_heads (chain, seq, hash) VALUES (?, ?, ?)", (pop.chain, count, last))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    progress(None)
    return last, time.monotonic() - t0


def load_pg(url: str, pop: Population, count: int, seed: int) -> tuple[bytes, float]:
    import psycopg

    Database(url).migrate()
    t0 = time.monotonic()
    with psycopg.connect(url) as conn:
        last = audit.GENESIS
        with conn.cursor() as cur, cur.copy(f"COPY audit_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in records(pop, count, seed):
                copy.write_row(row)
                last = row[13]
                if row[1] % 50_000 == 0:
                    progress(row[1])
        conn.execute(
            "INSERT INTO audit_heads (chain, seq, hash) VALUES (%s, %s, %s)", (pop.chain, count, last)
        )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE audit_log")
    progress(None)
    return last, time.monotonic() - t0


def verify_chain(db: Database, chain: str, count: int) -> float:
    """Recompute every hash and leaf hash from the stored rows, through ``list_entries``."""
    t0 = time.monotonic()
    prev, after = audit.GENESIS, 0
    with db.read() as conn:
        while after < count:
            page = audit_store.list_entries(conn, chain, after, 20_000)
            if not page:
                break
            for stored in page:
                if stored.prev_hash != prev or audit.chain_hash(prev, stored.entry) != stored.hash:
                    raise SystemExit(f"chain broken at seq {stored.entry.seq}")
                prev = stored.hash
            after = page[-1].entry.seq
        leaves = audit_store.leaf_hashes(conn, chain, 0, 1000)
        first = audit_store.list_entries(conn, chain, 0, 1000)
        for leaf, stored in zip(leaves, first, strict=True):
            assert leaf == merkle.leaf_hash(audit.canonical(stored.entry))
    if after != count:
        raise SystemExit(f"expected {count} records, found {after}")
    return time.monotonic() - t0


# -- cases -----------------------------------------------------------------------------------
@dataclass
class Case:
    name: str
    filters: audit_store.Filters
    before_seq: int | None = None
    extra: bool = False  # not in the brief's list: a rarer value of the same filter


def pick_values(db: Database, chain: str) -> dict[str, Any]:
    """Concrete filter values: a busy and a rare one where it matters, chosen from the data."""
    from sqlalchemy import func, select

    log = audit_log.c
    with db.read() as conn:

        def ranked(column: str) -> list[tuple[str, int]]:
            col, n = log[column], func.count().label("n")
            q = select(col, n).where(log.chain == chain, col.is_not(None)).group_by(col)
            return [(r[0], r[1]) for r in conn.execute(q.order_by(n.desc(), col))]

        actors, actions, secrets = ranked("actor_id"), ranked("action"), ranked("secret_id")
        t_min, t_max = conn.execute(
            select(func.min(log.time_ms), func.max(log.time_ms)).where(log.chain == chain)
        ).one()
    # A machine actor with a mid-sized share, the busiest action, a typical secret.
    actor = actors[min(9, len(actors) - 1)][0]
    return {
        "actor": actor,
        "actor_rare": actors[-1][0],
        "action": actions[0][0],
        "action_rare": actions[-1][0],
        "secret": secrets[len(secrets) // 2][0],
        "mid_day": (t_min + (t_max - t_min) // 2) // DAY_MS * DAY_MS,
        "t_max": t_max,
        # An action a vault chain could hold but this one never did (the filter finds nothing).
        "action_absent": next(
            str(a) for a in audit.Action if str(a) not in dict(actions) and not a.startswith("operator:")
        ),
    }


def cases(v: dict[str, Any], count: int) -> list[Case]:
    F = audit_store.Filters
    day = v["mid_day"]
    return [
        Case("no filter (newest 100)", F()),
        Case("actor", F(actor=v["actor"])),
        Case("action", F(action=v["action"])),
        Case("secret", F(secret=v["secret"])),
        Case("severity=high", F(severity="high")),
        Case("since/until 1 day (mid)", F(since_ms=day, until_ms=day + DAY_MS)),
        Case("actor + action", F(actor=v["actor"], action=v["action"])),
        Case("deep page (before_seq=N/2)", F(), before_seq=count // 2),
        Case("actor (rarest)", F(actor=v["actor_rare"]), extra=True),
        Case("action (rarest)", F(action=v["action_rare"]), extra=True),
        Case("severity=critical", F(severity="critical"), extra=True),
        Case("since/until last day", F(since_ms=v["t_max"] - DAY_MS, until_ms=v["t_max"] + 1), extra=True),
        Case("since/until 7 days (mid)", F(since_ms=day - 3 * DAY_MS, until_ms=day + 4 * DAY_MS), extra=True),
        Case("action never logged here", F(action=v["action_absent"]), extra=True),
    ]


@contextlib.contextmanager
def captured_sql(db: Database) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)


def matching(conn: Any, case: Case, chain: str) -> int:
    from sqlalchemy import func, select

    f = case.filters
    q = select(func.count()).select_from(audit_log).where(audit_log.c.chain == chain)
    for column, value in (
        ("actor_id", f.actor),
        ("action", f.action),
        ("secret_id", f.secret),
        ("severity", f.severity),
    ):
        if value:
            q = q.where(audit_log.c[column] == value)
    if f.since_ms is not None:
        q = q.where(audit_log.c.time_ms >= f.since_ms)
    if f.until_ms is not None:
        q = q.where(audit_log.c.time_ms < f.until_ms)
    if case.before_seq is not None:
        q = q.where(audit_log.c.seq < case.before_seq)
    return int(conn.execute(q).scalar_one())


FILTER_COLUMNS = {
    "actor": "actor_id",
    "action": "action",
    "secret": "secret_id",
    "severity": "severity",
    "since_ms": "time_ms",
    "until_ms": "time_ms",
}
INDEXES = [
    "uq_audit_chain_seq",
    "sqlite_autoindex_audit_log_1",
    "ix_audit_time",
    "ix_audit_action",
    "ix_audit_actor",
    "ix_audit_secret",
    "ix_audit_severity",
    "audit_log_pkey",
]


def plan(db: Database, statement: str, params: Any, case: Case) -> tuple[str, str]:
    """(the plan on one line, a summary: index, which filters it does not cover, sort)."""
    with db.read() as conn:
        if db.is_sqlite:
            lines = [r[-1] for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)]
        else:
            lines = [r[0].strip() for r in conn.exec_driver_sql("EXPLAIN " + statement, params)]
    text = " | ".join(lines)
    used = [n for n in INDEXES if n in text]
    if not used:
        return text, "NO INDEX (table scan)" if ("SCAN audit_log" in text or "Seq Scan" in text) else "?"
    summary = ", ".join("uq_audit_chain_seq" if n == "sqlite_autoindex_audit_log_1" else n for n in used)
    # What the index seeks on: SQLite prints it in parentheses, PostgreSQL as "Index Cond".
    if db.is_sqlite:
        seek = " ".join(line[line.find("(") :] for line in lines if "USING INDEX" in line)
    else:
        seek = " ".join(line for line in lines if line.startswith("Index Cond"))
    wanted = {col for name, col in FILTER_COLUMNS.items() if getattr(case.filters, name) not in (None, "")}
    unsought = sorted(col for col in wanted if col not in seek)
    if unsought:
        summary += " + row filter on " + ",".join(unsought)
    if "TEMP B-TREE" in text or "Sort" in text:
        summary += " + sort"
    return text, summary


@dataclass
class Timing:
    case: Case
    matches: int
    returned: int
    median_ms: float
    p95_ms: float
    first_ms: float
    index: str
    plan: str


def time_case(db: Database, chain: str, case: Case, runs: int, warm: int) -> Timing:
    samples: list[float] = []
    returned = 0
    with captured_sql(db) as seen, db.read() as conn:
        for i in range(warm + runs):
            t0 = time.perf_counter()
            page = audit_store.query(conn, chain, case.filters, case.before_seq, limit=100)
            dt = (time.perf_counter() - t0) * 1000
            returned = len(page)
            samples.append(dt)
            if i == 0:
                statement, params = seen[-1]
        matches = matching(conn, case, chain)
    timed = sorted(samples[warm:])
    p95 = timed[min(len(timed) - 1, -(-95 * len(timed) // 100) - 1)]  # nearest rank
    text, index = plan(db, statement, params, case)
    return Timing(case, matches, returned, statistics.median(timed), p95, samples[0], index, text)


def report(title: str, timings: list[Timing], runs: int, show_plans: bool) -> None:
    print(f"\n{title}: audit.query(..., limit=100), {runs} timed runs each (warm cache)")
    head = (
        f"{'case':<34} {'matching':>9} {'returned':>8} {'median ms':>9} {'p95 ms':>8} {'1st ms':>8}  "
        f"index used"
    )
    print(head)
    print("-" * (len(head) + 30))
    for t in timings:
        mark = " (extra)" if t.case.extra else ""
        print(
            f"{t.case.name + mark:<34} {t.matches:>9,} {t.returned:>8} {t.median_ms:>9.2f} {t.p95_ms:>8.2f} "
            f"{t.first_ms:>8.2f}  {t.index}"
        )
    if show_plans:
        print("\nplans:")
        for t in timings:
            print(f"  {t.case.name}: {t.plan}")


def run_store(db: Database, chain: str, count: int, args: argparse.Namespace, title: str) -> list[Timing]:
    values = pick_values(db, chain)
    timings = [time_case(db, chain, c, args.runs, args.warm) for c in cases(values, count)]
    report(title, timings, args.runs, not args.no_plans)
    return timings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--actors", type=int, default=100)
    ap.add_argument("--secrets", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=20, help="timed runs per case")
    ap.add_argument("--warm", type=int, default=2, help="discarded calls before the timed runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", type=Path, help="SQLite file to build (kept) or reuse if it exists")
    ap.add_argument("--analyze", action="store_true", help="run ANALYZE on SQLite before timing")
    ap.add_argument("--no-verify", action="store_true", help="skip re-verifying the whole chain")
    ap.add_argument("--no-plans", action="store_true", help="do not print the full query plans")
    ap.add_argument(
        "--pg", action="store_true", help="also PostgreSQL, in a fresh database dropped afterwards"
    )
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()

    machine = procfs.describe()
    print("audit list/filter latency")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"sqlite {sqlite3.sqlite_version}; load average before: {procfs.loadavg()}")
    rng = random.Random(args.seed)
    now_ms = int(time.time() * 1000)
    pop = population(rng, args.actors, args.secrets, now_ms)

    with tempfile.TemporaryDirectory(prefix="sikker-auditbench-") as tmp:
        path = args.db or Path(tmp) / "audit.db"
        if path.exists():
            with contextlib.closing(sqlite3.connect(path)) as c:
                chain, count = c.execute(
                    "SELECT chain, seq FROM audit_heads ORDER BY seq DESC LIMIT 1"
                ).fetchone()
            print(f"reusing {path}: chain {chain}, {count:,} records")
        else:
            print(
                f"building {path}: {args.records:,} records, {args.actors} actors, 30 actions, "
                f"{args.secrets} secrets, 5 severities, 30 days"
            )
            _, load_s = load_sqlite(path, pop, args.records, args.seed)
            chain, count = pop.chain, args.records
            size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
            print(f"  generated + inserted in {load_s:.1f} s; file {size / 2**20:.0f} MiB")
        if args.analyze:
            with contextlib.closing(sqlite3.connect(path)) as c:
                c.execute("ANALYZE")
            print("  ANALYZE done")
        db = Database(f"sqlite:///{path}")
        if not args.no_verify:
            print(f"  whole chain re-verified from the database in {verify_chain(db, chain, count):.1f} s")
        print(f"load average before timing: {procfs.loadavg()}")
        run_store(db, chain, count, args, f"SQLite ({count:,} records)")
        db.dispose()

    if args.pg:
        run_pg(args, pop)
    return 0


def run_pg(args: argparse.Namespace, pop: Population) -> None:
    import psycopg

    name = f"sikker_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        version = admin.execute("SHOW server_version").fetchone()
    url = args.pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        server = version[0] if version else "?"
        print(f"\nPostgreSQL {server}: building {name} with {args.records:,} records (COPY)")
        _, load_s = load_pg(url, pop, args.records, args.seed)
        print(f"  generated + copied + VACUUM ANALYZE in {load_s:.1f} s")
        db = Database(url)
        print(f"load average before timing: {procfs.loadavg()}")
        run_store(db, pop.chain, args.records, args, f"PostgreSQL ({args.records:,} records)")
        db.dispose()
    finally:
        with psycopg.connect(args.pg_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"  dropped {name}")


if __name__ == "__main__":
    sys.exit(main())
