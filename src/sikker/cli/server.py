"""``sikker server``: prepare the store, unseal if configured, serve HTTP."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sikker import config
from sikker.cli.options import JSON_ERRORS_HELP, hsm_options, json_option
from sikker.config import Settings
from sikker.core.audit import Actor

if TYPE_CHECKING:
    from sikker.service.bootstrap import Services

DEV_WARNING = "WARNING: dev mode. Not for production."
DEV_BANNER = """\
Data lives in {data_dir}{kept}; it unseals itself from a key file stored beside it.

  Server:     {url}
  Root token: {token}

  export SIKKER_ADDR={url}
  export SIKKER_TOKEN={token}
"""


def prepare(services: Services) -> str | None:
    """Migrate the schema; in dev mode initialise and unseal. Returns the dev root token."""
    settings = services.deps.settings
    services.deps.db.migrate()
    status = services.seal.status()
    if settings.dev:
        wanted = settings.dev_root_token.reveal() if settings.dev_root_token else None
        if not status.initialized:
            return services.seal.init(None, None, Actor("system", "dev"), wanted).root_token
        services.seal.auto_unseal()
        if wanted:
            services.tokens.ensure_root(wanted)
        return wanted or "(unchanged: the token printed when this data dir was created)"
    if status.initialized:
        services.seal.auto_unseal()
    return None


@click.command()
@click.option("--dev", is_flag=True, help="Dev mode: SQLite in a temp dir, self-initialising, unsealed.")
@click.option("--listen", default=None, help="HOST:PORT to listen on (default 127.0.0.1:8300).")
@click.option(
    "--database", default=None, help="sqlite:///PATH (default: DATA_DIR/sikker.db) or postgresql://..."
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Directory for the SQLite file."
)
@click.option("--public-url", default=None, help="URL machines use to reach this server.")
@click.option(
    "--seal-key-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Auto-unseal from this key file (created at init).",
)
@hsm_options(
    "Auto-unseal through this PKCS#11 module (an HSM); the PIN comes from --hsm-pin-file or SIKKER_HSM_PIN."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="TOML config file.",
)
@click.option("--dev-root-token", default=None, help="Dev mode: use this root token.")
@click.option(
    "--allow-maintenance-database",
    is_flag=True,
    default=None,
    help="Let --database name PostgreSQL's 'postgres' (or a template) database, which is refused "
    "by default (config allow_maintenance_database, env SIKKER_ALLOW_MAINTENANCE_DATABASE).",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="Serve HTTPS with this PEM certificate (chain).",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="The PEM private key for --tls-cert.",
)
@click.option(
    "--workers",
    metavar="N|auto",
    default=None,
    help="Server processes sharing the port (default auto: one per CPU, at most 4, when the "
    "server unseals itself with --dev or --seal-key-file; else 1). More than 1 needs such a "
    "server; after 'operator seal', restart it to unseal.",
)
@click.option(
    "--log-format",
    type=click.Choice(config.LOG_FORMATS),
    default=None,
    help="Log lines as json or text; auto (default): JSON unless stdout is a terminal "
    "(config log_format, env SIKKER_LOG_FORMAT).",
)
@click.option(
    "--log-level",
    type=click.Choice(config.LOG_LEVELS),
    default=None,
    help="Lowest level logged (default info; warning and above turn the access log off) "
    "(config log_level, env SIKKER_LOG_LEVEL).",
)
@click.option(
    "--metrics/--no-metrics",
    default=None,
    help="Serve GET /metrics in Prometheus text format (default on; config metrics, env SIKKER_METRICS).",
)
@click.option(
    "--metrics-listen",
    default=None,
    help="HOST:PORT for /metrics on a listener of its own instead of the main one "
    "(config metrics_listen, env SIKKER_METRICS_LISTEN).",
)
@click.option(
    "--metrics-token-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    default=None,
    help="Require 'Authorization: Bearer <the token in this file>' on /metrics "
    "(config metrics_token_file, env SIKKER_METRICS_TOKEN_FILE).",
)
@json_option(help=JSON_ERRORS_HELP, expose_value=False)
def server(
    dev: bool,
    listen: str | None,
    database: str | None,
    data_dir: Path | None,
    public_url: str | None,
    seal_key_file: Path | None,
    config_file: Path | None,
    dev_root_token: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    workers: str | None,
    allow_maintenance_database: bool | None,
    hsm_module: Path | None,
    hsm_token: str | None,
    hsm_key: str | None,
    hsm_pin_file: Path | None,
    log_format: str | None,
    log_level: str | None,
    metrics: bool | None,
    metrics_listen: str | None,
    metrics_token_file: Path | None,
) -> None:
    """Run the Sikker server (starts sealed unless --dev or an auto-unseal key file).

    --dev without --data-dir keeps its data (database, unseal key) in a temp dir that is removed
    when the server stops (Ctrl-C, SIGTERM); give --data-dir to keep it.
    """
    flags: dict[str, object] = {
        "dev": dev,
        "listen": listen,
        "database": database,
        "data_dir": data_dir,
        "public_url": public_url,
        "seal_key_file": seal_key_file,
        "dev_root_token": dev_root_token,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "workers": workers,
        "allow_maintenance_database": allow_maintenance_database or None,
        "hsm_module": hsm_module,
        "hsm_token": hsm_token,
        "hsm_key": hsm_key,
        "hsm_pin_file": hsm_pin_file,
        "log_format": log_format,
        "log_level": log_level,
        "metrics": metrics,
        "metrics_listen": metrics_listen,
        "metrics_token_file": metrics_token_file,
    }
    # Start-up imports and builds ~80,000 objects and leaves ~700 as garbage: collecting while
    # it runs costs ~10% of the start (measured: 265-290 vs 300-320 ms of imports). _serve_store
    # turns collection back on before the first request; this `finally`, on any other way out.
    gc.disable()
    try:
        _server(flags, config_file, dev, data_dir)
    finally:
        gc.enable()


def _server(flags: dict[str, object], config_file: Path | None, dev: bool, data_dir: Path | None) -> None:
    settings = config.load(flags, config_file)
    with _multiprocess_metrics(settings):
        if settings.database and not settings.allow_maintenance_database:
            from sikker.storage.database import refuse_maintenance_database

            refuse_maintenance_database(settings.database)
        if dev and data_dir is None and not settings.database:
            with _temp_data_dir() as temp:
                _serve(
                    config.load(flags | {"data_dir": temp}, config_file), flags, config_file, temporary=True
                )
            return
        _serve(settings, flags, config_file)


@contextlib.contextmanager
def _multiprocess_metrics(settings: Settings) -> Iterator[None]:
    """With several workers, /metrics must sum them all: prometheus-client's multiprocess mode,
    in a private directory (0700) made here, before prometheus_client is first imported (it
    picks its storage then), and removed when the server stops."""
    if settings.workers == 1 or not settings.metrics or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        yield
        return
    if "prometheus_client" in sys.modules:  # too late: each worker would count on its own
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    path = tempfile.mkdtemp(prefix="sikker-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    pid = os.getpid()
    try:
        yield
    finally:
        if os.getpid() == pid:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _temp_data_dir() -> Iterator[Path]:
    """A dev server's throwaway data dir, removed when the server stops: on return, on Ctrl-C
    (KeyboardInterrupt) and on SIGTERM, which is turned into SystemExit for the cleanup to run
    (uvicorn hands the signal back to this handler once it has shut down)."""

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    path = Path(tempfile.mkdtemp(prefix="sikker-dev-"))
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    pid = os.getpid()
    try:
        yield path
    finally:
        if os.getpid() == pid:  # not in a forked worker that unwinds (they leave with os._exit)
            signal.signal(signal.SIGTERM, previous)
            shutil.rmtree(path, ignore_errors=True)


def _serve(
    settings: Settings, flags: dict[str, object], config_file: Path | None, temporary: bool = False
) -> None:
    """Prepare the store, print the banner, serve until stopped."""
    dev = settings.dev
    if dev:
        settings = config.load(
            flags
            | {
                "data_dir": settings.data_dir,
                "seal_key_file": settings.seal_key_file or settings.data_dir / "dev-unseal.key",
            },
            config_file,
        )
    if not settings.database:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Imported here so that client commands start fast.
    from sikker.cli import logs
    from sikker.storage.database import store_lock

    chosen = logs.configure(settings.log_format, settings.log_level)
    with store_lock(settings.database_url, exclusive=False):  # a restore refuses a served store
        _serve_store(settings, chosen, temporary)


def _serve_store(settings: Settings, chosen: str, temporary: bool) -> None:
    """Build the services, prepare the store, print the banner and serve (under the store lock)."""
    import uvicorn

    from sikker.api.app import create_app
    from sikker.service.bootstrap import bootstrap

    dev = settings.dev
    services = bootstrap(settings)
    token = prepare(services)
    # click, not rich, prints here: a server starts ~30 ms sooner without importing rich.
    if dev:
        kept = " (removed when the server stops; keep it with --data-dir)" if temporary else ""
        click.secho(DEV_WARNING, fg="yellow", bold=True)
        click.echo(DEV_BANNER.format(data_dir=settings.data_dir, url=settings.url, token=token, kept=kept))
    else:
        state = services.seal.status()
        note = (
            "unsealed"
            if not state.sealed
            else (
                "sealed: run 'sikker operator unseal'"
                if state.initialized
                else "not initialised: run 'sikker operator init'"
            )
        )
        if chosen == "json":  # one format on stdout: log collectors parse every line
            logging.getLogger("sikker.server").info("Sikker listening on %s (%s)", settings.url, note)
        else:
            click.echo(f"Sikker listening on {settings.url} ({note})")
    # Start-up's objects stay put: no collection scans them again, and forked workers share
    # their pages (no copy-on-write by the collector). Then collect as usual.
    gc.freeze()
    gc.enable()
    if settings.workers == 1:
        try:
            uvicorn.run(
                create_app(services), host=settings.host, port=settings.port, **_uvicorn_options(settings)
            )
        finally:
            services.close()
        return
    services.close()  # the parent only supervises; each worker opens the store and unseals itself
    serve_forked(settings)


def _uvicorn_options(settings: Settings) -> dict[str, Any]:
    from sikker.api.edge import protocol_class

    return {
        "http": protocol_class(settings),  # head size and time, connection caps (api/edge.py)
        "timeout_keep_alive": settings.keepalive_timeout_seconds,
        "log_level": "warning",
        "log_config": None,  # uvicorn's records go through our handler (cli/logs.py)
        "access_log": False,  # ours is api/observe.py: a request id, no query string
        "server_header": False,
        "proxy_headers": False,  # X-Forwarded-* are not trusted: audit records the peer address
        "lifespan": "on",
        # No WebSocket routes: an Upgrade request is served as plain HTTP (uvicorn logs it), and
        # the websockets library is not imported.
        "ws": "none",
        "ssl_certfile": settings.tls_cert,
        "ssl_keyfile": settings.tls_key,
    }


def serve_forked(settings: Settings) -> None:
    """``settings.workers`` processes accept on one listening socket (bound here, before the
    fork). A worker that dies stops the others; SIGINT/SIGTERM stop them all gracefully."""
    import uvicorn

    from sikker.api.app import create_app
    from sikker.service.bootstrap import bootstrap

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    children: list[int] = []
    for _ in range(settings.workers):
        pid = os.fork()
        if pid == 0:  # a worker
            code = 1
            try:
                services = bootstrap(settings)
                services.seal.auto_unseal()
                app = create_app(services)
                uvicorn.Server(uvicorn.Config(app, **_uvicorn_options(settings))).run(sockets=[sock])
                code = 0
            finally:
                for handler in logging.getLogger().handlers:  # os._exit skips logging's own flush
                    handler.flush()
                os._exit(code)
        children.append(pid)
    sock.close()

    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failed = False
    while children:
        pid, status = os.wait()
        if pid in children:
            children.remove(pid)
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                from prometheus_client import multiprocess

                multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
            # uvicorn re-raises the stop signal once it has shut down: that death is expected.
            if os.waitstatus_to_exitcode(status) != 0 and not stopping:
                failed = True
                stop(0, None)
    if failed:
        raise SystemExit(1)
