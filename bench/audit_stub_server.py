"""Run ``sikker`` with audit writes stubbed out (benchmark only; see bench/signed_reads.py).

    python bench/audit_stub_server.py server --dev ...   # same argv as ``python -m sikker``

``sikker.storage.audit.append`` and ``append_many`` (the read lane's group commit) are
replaced by no-ops that return dummy ``Entry`` objects before the CLI is imported, so every
caller (which looks the function up on the module at call time) skips the chain-head lock,
the INSERT and the head UPDATE. Nothing in production code knows about this: it exists only
here.

Patching imports ``sikker.metrics`` (and so prometheus_client) before the CLI runs, which
``sikker server`` refuses with several workers unless the multiprocess metrics directory is
already set: so this launcher makes that directory first (private, removed at exit), as the
server itself would.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir = tempfile.mkdtemp(prefix="sikker-metrics-")
    _owner = os.getpid()
    # Only in this process: forked workers leave with os._exit and never run atexit.
    atexit.register(lambda: os.getpid() == _owner and shutil.rmtree(_metrics_dir, ignore_errors=True))

from sikker.core import audit as core_audit
from sikker.storage import audit as audit_store


def _no_append(
    conn: object,
    chain: str,
    now_ms: int,
    actor: core_audit.Actor,
    action: core_audit.Action,
    target: dict[str, str],
    result: str = "ok",
    reason: str = "",
) -> core_audit.Entry:
    return core_audit.Entry(chain, 0, now_ms, actor.kind, actor.id, "", "", str(action))


def _no_append_many(conn: object, chain: str, records: list[audit_store.Record]) -> list[core_audit.Entry]:
    return [_no_append(conn, chain, r[0], r[1], r[2], r[3]) for r in records]


audit_store.append = _no_append
audit_store.append_many = _no_append_many

from sikker.cli.main import main  # noqa: E402  (after the patch, on purpose)

if __name__ == "__main__":
    sys.argv[0] = "sikker"
    main()
