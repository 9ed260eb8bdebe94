"""``sikker agent``: rotate database credentials that the server asks this machine to rotate.

It signs its requests with the machine identity (as ``sikker get`` does) and reaches the
database with the admin credentials from each secret's sync-config.
"""

from __future__ import annotations

import logging
import threading

import click

from sikker.agent import Agent, AgentApi, get_provider, stop_on_signals
from sikker.agent.server import check_secret_id
from sikker.cli.machine import open_client, vault_option
from sikker.cli.options import JSON_ERRORS_HELP, json_option
from sikker.cli.output import emit_json
from sikker.errors import SikkerError

log = logging.getLogger("sikker.agent")


class _StderrHandler(logging.Handler):
    """Writes to whatever stderr is current (click's, under test runners)."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(self.format(record), err=True)


def _configure_logging() -> None:
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s sikker-agent %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


@click.group("agent")
def agent() -> None:
    """Run the database sync agent beside a database.

    The server decides when and how to rotate; the agent applies the new credentials as
    the database admin, checks that they log in, then confirms (or rolls back and rejects).
    """


@agent.command("start")
@click.option(
    "--secret",
    "secret_ids",
    multiple=True,
    required=True,
    metavar="ID",
    help="Secret to manage (repeatable).",
)
@vault_option
@click.option("--once", is_flag=True, help="One tick per secret, then exit (for tests and cron).")
@json_option(help=JSON_ERRORS_HELP + " The log stays text.", expose_value=False)
def start(secret_ids: tuple[str, ...], vault: str | None, ca_cert: str | None, once: bool) -> None:
    """Manage the given secrets until SIGTERM/SIGINT, or until none is left to manage.

    Each secret's sync-config is polled every pollIntervalSeconds. A 403 or 404 ends the
    management of that secret. With --once, the exit code is non-zero if any secret
    reported an error.
    """
    _configure_logging()
    ids = [check_secret_id(s) for s in secret_ids]
    client = open_client(vault, ca_cert)
    stop = threading.Event()
    runner = Agent(ids, AgentApi(client), providers=get_provider)
    try:
        with stop_on_signals(stop):
            results = runner.run(stop, once=once)
    finally:
        client.close()
    terminal = [w.terminal for w in runner.workers if w.terminal is not None]
    if terminal and len(terminal) == len(runner.workers):
        raise terminal[0]
    if once:
        failed = sorted(secret for secret, result in results.items() if result.status != "healthy")
        if failed:
            raise SikkerError(
                f"{len(failed)} of {len(runner.workers)} secrets reported errors: {', '.join(failed)}"
            )


@agent.command("test")
@click.option("--secret", "secret_id", required=True, metavar="ID", help="Secret whose database to check.")
@vault_option
@json_option()
def test(secret_id: str, vault: str | None, ca_cert: str | None, as_json: bool) -> None:
    """Check the database of one --secret: fetch its sync-config, log in as the admin,
    check the admin's privileges and that the engine supports the strategy (no dual on
    MariaDB). Prints every problem; exits non-zero if there is any (--json: the report on
    stdout, then the error on stderr).
    """
    client = open_client(vault, ca_cert)
    try:
        config = AgentApi(client).sync_config(check_secret_id(secret_id))
    finally:
        client.close()
    c = config.connection
    if not as_json:
        click.echo(
            f"{secret_id}: {config.provider_type} at {c.host}:{c.port}"
            f"{'/' + c.database if c.database else ''}, admin {c.admin_user!r},"
            f" managed user {config.managed_username!r}, strategy {config.strategy}"
        )
    provider = get_provider(config.provider_type, c)
    problems = provider.test_admin() or provider.check_strategy(config.strategy)
    if as_json:
        emit_json(
            {
                "secret": secret_id,
                "provider": config.provider_type,
                "host": c.host,
                "port": c.port,
                "database": c.database,
                "adminUser": c.admin_user,
                "managedUser": config.managed_username,
                "strategy": config.strategy,
                "problems": list(problems),
            }
        )
    else:
        for problem in problems:
            click.echo(f"  problem: {problem}")
    if problems:
        raise SikkerError(f"{len(problems)} problem(s) found for {secret_id}")
    if not as_json:
        click.echo(f"  OK: the admin can log in and manage users; {config.strategy} works here")
