"""The server's Prometheus metrics (docs/operator/observability.md), defined once for every layer.

Labels are bounded, closed sets: a route TEMPLATE, a status class, a reason or outcome word.
Never an id, a name, a token or a value: ``tests/e2e/test_metrics.py`` scrapes after real
traffic and looks for every id and name it used.

With ``sikker server --workers N`` the parent sets ``PROMETHEUS_MULTIPROC_DIR`` (a private
directory) before this module is first imported, so that every worker writes its samples there
and a scrape of any worker sums them all (prometheus-client's multiprocess mode).
Gauges that describe the whole server (sealed, overdue rotations, stream lag) are computed at
scrape time by the process answering the scrape (api/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and say little here

# Latency buckets in seconds: the read lane answers in about a millisecond; admin calls that
# hash passwords take a few hundred.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "sikker_http_requests",
    "HTTP requests answered, by method, route template and status class.",
    ["method", "route", "status_class"],
)
HTTP_DURATION = Histogram(
    "sikker_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
SIGNED_READS = Counter(
    "sikker_signed_reads",
    "Signed machine reads of one secret (GET /v1/secret/{id}): served, or refused with a reason.",
    ["result", "reason"],
)
AUDIT_WRITE = Histogram(
    "sikker_audit_write_seconds",
    "Time to append a group of audit records to one chain inside its transaction.",
    buckets=LATENCY_BUCKETS,
)
READ_BATCH = Histogram(
    "sikker_read_commit_batch_size",
    "Signed reads committed together by one group commit of the read lane.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
PLAN_CACHE = Counter(
    "sikker_read_plan_cache",
    "Read-plan cache look-ups of the read lane: hit or miss.",
    ["result"],
)
ROTATIONS = Counter(
    "sikker_rotations",
    "Rotation outcomes: by trigger (schedule, manual, agent) and outcome.",
    ["trigger", "outcome"],
)
CANARY_TRIPS = Counter("sikker_canary_trips", "Canary secrets read (each trip froze projects).")
STREAM_LAG = Histogram(
    "sikker_audit_stream_delivery_lag_seconds",
    "For each batch an audit stream delivered: how long its oldest record waited.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
STREAM_BATCHES = Counter(
    "sikker_audit_stream_batches",
    "Audit stream delivery attempts (one batch of one chain): ok or failed.",
    ["result"],
)
DB_POOL_IN_USE = Gauge(
    "sikker_db_connections_in_use",
    "Database connections checked out of the pool (all worker processes together).",
    multiprocess_mode="livesum",
)
