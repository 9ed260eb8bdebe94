"""The ``sikker`` command. Errors become exit codes here, and only here."""

from __future__ import annotations

import importlib
import sys

import click

from sikker import __version__
from sikker.cli import output
from sikker.cli.output import Invocation, emit_error_json
from sikker.errors import SikkerError

# Each top-level command: (module, attribute), and the subcommands other modules add to it.
# Imported when first asked for (get_command), so ``sikker server`` does not import the client
# commands (httpx, the agent, ...) and a client command does not import the server.
COMMANDS: dict[str, tuple[str, str]] = {
    "server": ("sikker.cli.server", "server"),
    "operator": ("sikker.cli.operator", "operator"),
    "status": ("sikker.cli.operator", "status"),
    "vault": ("sikker.cli.admin", "vault"),
    "project": ("sikker.cli.admin", "project"),
    "secret": ("sikker.cli.admin", "secret"),
    "dynamic": ("sikker.cli.dynamic", "dynamic"),
    "lease": ("sikker.cli.leases", "lease"),
    "audit": ("sikker.cli.audit", "audit"),
    "canary": ("sikker.cli.canaries", "canary"),
    "agent": ("sikker.cli.agent", "agent"),
    "token": ("sikker.cli.admin", "token"),
    "user": ("sikker.cli.people", "user"),
    "role": ("sikker.cli.people", "role"),
    "login": ("sikker.cli.people", "login"),
    "logout": ("sikker.cli.people", "logout"),
    "whoami": ("sikker.cli.people", "whoami"),
    "machine": ("sikker.cli.machines_admin", "machine"),
    "grant": ("sikker.cli.machines_admin", "grant"),
    "enroll-token": ("sikker.cli.machines_admin", "enroll_token"),
    "jwt-role": ("sikker.cli.jwt_roles", "jwt_role"),
    "get": ("sikker.cli.machine", "get_cmd"),
    "list": ("sikker.cli.machine", "list_cmd"),
    "export": ("sikker.cli.machine", "export_cmd"),
    "run": ("sikker.cli.machine", "run_cmd"),
    "completion": ("sikker.cli.completion", "completion"),
}
SUBCOMMANDS: dict[str, list[tuple[str, str]]] = {
    "machine": [("sikker.cli.machine", "bootstrap_command")],
    "operator": [
        ("sikker.cli.backup", "backup_command"),
        ("sikker.cli.backup", "restore_command"),
        ("sikker.cli.seal_migration", "migrate_seal_command"),
    ],
    "vault": [("sikker.cli.people", "require_mfa")],
    "secret": [
        ("sikker.cli.rotation", "secret_rotate"),
        ("sikker.cli.rotation", "rotation"),
        ("sikker.cli.rotation", "secret_manage"),
    ],
}


def _load(module: str, attribute: str) -> click.Command:
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{module}.{attribute} is not a click command")
    return command


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (``COMMANDS``); ``--help`` and shell
    completion list them all, so those import every one."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            command = _load(*COMMANDS[cmd_name])
            if isinstance(command, click.Group):
                for sub in SUBCOMMANDS.get(cmd_name, []):
                    command.add_command(_load(*sub))
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)


EXIT_CODES = """\
Every command takes --json: JSON output, and an error as {"error": "...", "code": N}
on stderr. Names work where ids do: --vault acme, --project acme/payments.

\b
Exit codes:
  0 success
  1 internal error
  2 invalid input: a bad option or value, a malformed id, an ambiguous name
  3 not authenticated, or permission denied
  4 not found
  5 conflict, or the project is frozen by a canary
  6 rate limited: slow down and retry
  7 unavailable: sealed, or the database is down; retry
  8 verification failed (sikker audit verify, sikker jwt-role test)
  130 interrupted
'sikker run' exits with its command's exit code.
"""


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="sikker")
def cli() -> None:
    """Sikker: a self-hosted secrets manager.

    Admins: start a dev server with 'sikker server --dev', then point the CLI at
    it with SIKKER_ADDR and SIKKER_TOKEN.

    Machines: 'sikker machine bootstrap' once, then 'sikker get', 'list',
    'export' and 'run' read with the identity in ~/.sikkerkey (SIKKERKEY_HOME).
    """


def _asks_for_json(argv: list[str]) -> bool:
    """``--json`` among sikker's own arguments (those before ``--``), for usage errors found
    before any option is read."""
    own = argv[: argv.index("--")] if "--" in argv else argv
    return "--json" in own


def main() -> None:
    invocation = Invocation()
    try:
        cli.main(standalone_mode=False, obj=invocation)
    except SikkerError as e:
        _fail(invocation.json, e.message, e.exit_code)
    except click.exceptions.Abort:
        if invocation.json:
            _fail(True, "aborted", 130)
        output.err_console.print("Aborted.")
        sys.exit(130)
    except click.ClickException as e:
        if invocation.json or (isinstance(e, click.UsageError) and _asks_for_json(sys.argv[1:])):
            _fail(True, e.format_message(), e.exit_code)
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)


def _fail(as_json: bool, message: str, code: int) -> None:
    if as_json:
        emit_error_json(message, code)
    else:
        from rich.text import Text

        # soft_wrap: a long path or URL in the message stays on one line, as given.
        output.err_console.print(Text.assemble(("Error:", "red"), " ", message), soft_wrap=True)
    sys.exit(code)
